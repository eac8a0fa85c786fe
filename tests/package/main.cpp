#include <csp/csp.hpp>

int main() {
    int v = csp::run([]() -> csp::task<int> {
        auto ch = csp::make_channel<int>();
        csp::go([](csp::channel<int> c) -> csp::task<> { co_await c.send(42); }(ch));
        co_return *co_await ch.recv();
    });
    return v == 42 ? 0 : 1;
}
