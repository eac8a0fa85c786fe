// A one-file program against the generated single header only (CTest
// compiles it with single_include/ as its one include directory): a
// goroutine, a channel, a select with a timeout and the runtime.
#include <csp/csp_single.hpp>

#include <chrono>

int main() {
    using namespace std::chrono_literals;
    int v = csp::run([]() -> csp::task<int> {
        auto ch = csp::make_channel<int>();
        csp::go([](csp::channel<int> c) -> csp::task<> { co_await c.send(42); }, ch);
        auto r = co_await csp::select(ch.recv(), csp::after(1h));
        co_return r.index() == 0 ? *r.get<0>() : -1;
    });
    return v == 42 ? 0 : 1;
}
