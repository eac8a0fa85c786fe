// Go pattern: the concurrent prime sieve (go.dev/doc/play/sieve.go).
//
// A generator sends 2, 3, 4, ...; each prime found gets a filter goroutine
// that passes on only the numbers it does not divide. The chain grows by one
// goroutine per prime, and the first number out of the last filter is the
// next prime. When main has its primes it returns, and csp::run destroys the
// goroutines still blocked in the chain, as Go's main would.
#include <csp/csp.hpp>
#include <cstdio>

csp::task<> generate(csp::channel<int> out) {
    for (int i = 2;; ++i) co_await out.send(i);
}

csp::task<> filter(csp::channel<int> in, csp::channel<int> out, int prime) {
    for (;;) {
        int i = *co_await in.recv();
        if (i % prime != 0) co_await out.send(i);
    }
}

int main() {
    constexpr int count = 100;
    int last = csp::run([]() -> csp::task<int> {
        auto ch = csp::make_channel<int>();
        csp::go(generate(ch));
        int prime = 0;
        for (int n = 0; n < count; ++n) {
            prime = *co_await ch.recv();
            std::printf("%d%c", prime, n % 20 == 19 ? '\n' : ' ');
            auto next = csp::make_channel<int>();
            csp::go(filter(ch, next, prime));
            ch = next;
        }
        co_return prime;
    });
    std::printf("prime number %d is %d\n", count, last);
    return last == 541 ? 0 : 1;
}
