# CTest tests of the ways to consume csp (packaging, single header) and of the
# documentation's coverage, included from tests/CMakeLists.txt.

# A consumer project builds and runs against an installed csp
# (find_package(csp CONFIG) and pkg-config), the source tree
# (add_subdirectory) and FetchContent. Plain builds only: the consumer does
# not carry the sanitizer flags.
if(CSP_SANITIZE STREQUAL "")
  set(modes install subdirectory fetchcontent)
  find_program(CSP_PKG_CONFIG pkg-config)
  if(CSP_PKG_CONFIG)
    list(APPEND modes pkgconfig)
  else()
    message(WARNING "csp: pkg-config not found, the pkg-config package test is not run")
  endif()
  foreach(mode IN LISTS modes)
    set(test "package: a consumer project builds with ${mode}")
    add_test(NAME ${test}
             COMMAND ${CMAKE_COMMAND} -DMODE=${mode} -DCSP_BUILD=${PROJECT_BINARY_DIR}
                     -DCSP_SOURCE=${PROJECT_SOURCE_DIR} -DWORK=${CMAKE_CURRENT_BINARY_DIR}/package-${mode}
                     -DCXX=${CMAKE_CXX_COMPILER} -P ${PROJECT_SOURCE_DIR}/tests/package/run.cmake)
    set_tests_properties(${test} PROPERTIES TIMEOUT 300)
  endforeach()
endif()

# The generated single header (single_include/csp/csp_single.hpp) is in sync
# with include/csp/: regenerated into the build tree and compared.
# And every public name of include/csp/ is documented under docs/.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME "single header: csp_single.hpp is in sync with include/"
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/amalgamate.py
                   --check ${CMAKE_CURRENT_BINARY_DIR}/csp_single.hpp)
  add_test(NAME "docs: every public name of include/csp is documented"
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check-docs.py)
else()
  message(WARNING "csp: python3 not found, the single-header sync and docs coverage tests are not run")
endif()

# A one-file program compiles against the single header alone and runs.
add_executable(single_header_program ${PROJECT_SOURCE_DIR}/tests/single_header/main.cpp)
target_include_directories(single_header_program PRIVATE ${PROJECT_SOURCE_DIR}/single_include)
target_compile_features(single_header_program PRIVATE cxx_std_20)
target_link_libraries(single_header_program PRIVATE Threads::Threads csp_dev_flags)
add_test(NAME "single header: a one-file program builds and runs" COMMAND single_header_program)
