# Builds and runs the consumer program (main.cpp) the way a user of csp would:
#   install       cmake --install, then find_package(csp) in a CMake project
#   subdirectory  add_subdirectory(<csp source>) in a CMake project
#   fetchcontent  FetchContent_Declare(csp SOURCE_DIR <csp source>) in a CMake project
#   pkgconfig     cmake --install, then a plain compiler command with `pkg-config --cflags --libs csp`
#
# Usage: cmake -DMODE=<mode> -DCSP_BUILD=<csp build dir> -DCSP_SOURCE=<csp source>
#              -DWORK=<scratch dir> -DCXX=<compiler> -P run.cmake
file(REMOVE_RECURSE ${WORK})

# Runs a command; stops with its output if it fails.
function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc)
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n${out}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "install" OR MODE STREQUAL "pkgconfig")
  step("cmake --install of csp" ${CMAKE_COMMAND} --install ${CSP_BUILD} --prefix ${WORK}/prefix)
endif()

if(MODE STREQUAL "pkgconfig")
  set(ENV{PKG_CONFIG_PATH} ${WORK}/prefix/share/pkgconfig)
  step("pkg-config --cflags --libs csp" pkg-config --cflags --libs csp)
  separate_arguments(flags UNIX_COMMAND "${step_output}")
  # The include directory must be the installed one (the .pc file is relocatable).
  string(REGEX MATCH "-I[^;]+" include_flag "${flags}")
  string(SUBSTRING "${include_flag}" 2 -1 include_dir)
  file(REAL_PATH "${include_dir}" include_dir)
  file(REAL_PATH "${WORK}/prefix/include" installed)
  if(NOT include_dir STREQUAL installed)
    message(FATAL_ERROR "pkg-config's include directory is not the installed one: ${flags}")
  endif()
  step("compiling the consumer with pkg-config's flags"
       ${CXX} ${CSP_SOURCE}/tests/package/main.cpp -o ${WORK}/consumer ${flags})
  step("running the consumer" ${WORK}/consumer)
  return()
endif()

set(configure ${CMAKE_COMMAND} -S ${CSP_SOURCE}/tests/package -B ${WORK}/consumer -DCMAKE_CXX_COMPILER=${CXX})
if(MODE STREQUAL "install")
  list(APPEND configure -DCMAKE_PREFIX_PATH=${WORK}/prefix)
elseif(MODE STREQUAL "subdirectory")
  list(APPEND configure -DCSP_SUBDIRECTORY=${CSP_SOURCE})
elseif(MODE STREQUAL "fetchcontent")
  list(APPEND configure -DCSP_FETCH_FROM=${CSP_SOURCE})
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
step("configuring the consumer" ${configure})
step("building the consumer" ${CMAKE_COMMAND} --build ${WORK}/consumer)
step("running the consumer" ${WORK}/consumer/consumer)
