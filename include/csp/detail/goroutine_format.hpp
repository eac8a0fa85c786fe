// csp/detail/goroutine_format.hpp - the text of a goroutine dump.
//
// One formatter for csp::dump() and for the deadlock error of csp::run, so
// both say the same thing the same way. Each goroutine takes two lines:
//
//   goroutine 7 [receive from channel 0x5581e0c0 (chan<int>, cap 0), 1.250s]:
//       started at server.cpp:42 in serve
//
// The formatter works on snapshots taken under the registry lock, so the
// slow parts (demangling, string building) run without it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cxxabi.h>
#include <memory>
#include <string>
#include <typeinfo>

#include "goroutine_wait.hpp"
#include "source_location.hpp"

namespace csp::detail {

/// What a dump knows about one goroutine at one moment.
struct goroutine_snapshot {
    std::uint64_t id = 0;
    csp::source_location origin;
    wait_snapshot wait;
};

/// The readable name of a type ("int", "std::vector<int, std::allocator<int> >"),
/// with std::string spelled as such.
inline std::string type_name(const std::type_info& t) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(t.name(), nullptr, nullptr, &status), std::free);
    std::string out = status == 0 && name ? std::string(name.get()) : std::string(t.name());
    const std::string long_string = "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >";
    for (std::size_t at; (at = out.find(long_string)) != std::string::npos;) out.replace(at, long_string.size(), "std::string");
    return out;
}

/// "35ms", "1.250s", "12m03s"; empty below a millisecond (the coarse
/// clock's resolution is a few milliseconds anyway).
inline std::string format_duration(std::int64_t ns) {
    char buf[32] = "";
    std::int64_t ms = ns / 1'000'000;
    if (ms >= 60'000)
        std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                      static_cast<long long>(ms / 1000 % 60));
    else if (ms >= 1000)
        std::snprintf(buf, sizeof buf, "%lld.%03llds", static_cast<long long>(ms / 1000),
                      static_cast<long long>(ms % 1000));
    else if (ms >= 1)
        std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
    return buf;
}

/// The bracketed state: what the goroutine waits on, on what, for how long.
inline std::string format_wait(const wait_snapshot& w, std::int64_t now_ns) {
    if (w.torn) return "changing state";
    if (!w.what) return "runnable or running";
    std::string out = w.what;
    if (w.object) {
        char address[32];
        std::snprintf(address, sizeof address, " %p", w.object);
        out += address;
    }
    if (w.detail.element) {
        out += " (chan<" + type_name(*w.detail.element) + ">";
        if (w.object) out += ", cap " + std::to_string(w.detail.count);
        out += ')';
    } else if (w.detail.count) {
        out += " (" + std::to_string(w.detail.count) + (w.detail.count == 1 ? " case)" : " cases)");
    }
    if (std::string d = format_duration(now_ns - w.since_ns); !d.empty()) out += ", " + d;
    return out;
}

/// Appends the two lines of one goroutine, indented by `indent`.
inline void format_goroutine(std::string& out, const goroutine_snapshot& g, std::int64_t now_ns,
                             const char* indent = "  ") {
    out += indent;
    out += "goroutine " + std::to_string(g.id) + " [" + format_wait(g.wait, now_ns) + "]:\n";
    out += indent;
    out += "    started at ";
    if (g.origin.line()) {
        out += g.origin.file_name();
        out += ':' + std::to_string(g.origin.line());
        if (*g.origin.function_name()) {
            out += " in ";
            out += g.origin.function_name();
        }
    } else {
        out += "(unknown: started with arguments)";
    }
    out += '\n';
}

}  // namespace csp::detail
