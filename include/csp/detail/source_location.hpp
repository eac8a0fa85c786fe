// csp/detail/source_location.hpp - where a goroutine was started.
//
// std::source_location is not usable with clang 14 on libstdc++ 12 (it needs
// __builtin_source_location), so csp records file, line and function with the
// builtins that GCC and clang both have. As a default argument, current()
// is evaluated at the caller's call site, like std::source_location's.
#pragma once

#include <cstdint>

namespace csp {

class source_location {
public:
    constexpr source_location() noexcept = default;
    static constexpr source_location current(const char* file = __builtin_FILE(),
                                             unsigned line = __builtin_LINE(),
                                             const char* function = __builtin_FUNCTION()) noexcept {
        source_location l;
        l.file_ = file;
        l.line_ = line;
        l.function_ = function;
        return l;
    }
    constexpr const char* file_name() const noexcept { return file_; }
    constexpr unsigned line() const noexcept { return unsigned(line_); }
    /// The enclosing function's plain name ("main", "operator()"); may be empty.
    constexpr const char* function_name() const noexcept { return function_; }

private:
    const char* file_ = "";
    const char* function_ = "";
    // A full word, not an unsigned and 4 bytes of padding: a location is
    // built in a temporary at every csp::go call site and then copied out
    // word by word, and a copy that loads 8 bytes over a 4-byte store cannot
    // take the value from the store buffer; the load then waits for every
    // older store of the spawn to reach the cache (on a spawner whose
    // frames come back from another core, for their lines to arrive).
    std::uint64_t line_ = 0;
};

}  // namespace csp
