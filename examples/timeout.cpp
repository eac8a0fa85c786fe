// The runtime example of README.md, kept identical to it; CTest builds and runs it.
#include <csp/csp.hpp>
#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

csp::task<> query(csp::channel<std::string> out, std::string name, std::chrono::milliseconds delay) {
    co_await csp::sleep_for(delay);                                   // pretend to work
    co_await out.send(name);
}

int main() {
    return csp::run([]() -> csp::task<int> {                          // the main goroutine, on all cores
        auto replies = csp::make_channel<std::string>(2);             // room for both replies
        csp::go(query(replies, "fast replica", 10ms));
        csp::go(query(replies, "slow replica", 10s));                 // far too slow
        int got = 0;
        for (;;) {
            auto r = co_await csp::select(replies.recv(), csp::after(250ms));
            if (r.index() == 1) break;                                // nothing for 250 ms: give up
            std::printf("reply from %s\n", r.get<0>()->c_str());
            ++got;
        }
        std::printf("%d reply, then a timeout\n", got);               // the slow query is abandoned
        co_return got == 1 ? 0 : 1;
    });
}
