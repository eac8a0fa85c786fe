// A two-stage pipeline: a generator goroutine feeds numbers to a squarer,
// whose results the main task sums. Each stage closes its output when done,
// so the next stage's `while (auto v = co_await in.recv())` loop ends.
#include <csp/csp.hpp>
#include <cstdio>

csp::task<> generate(csp::channel<int> out, int n) {
    for (int i = 1; i <= n; ++i) co_await out.send(i);
    out.close();
}

csp::task<> square(csp::channel<int> in, csp::channel<long> out) {
    while (auto v = co_await in.recv()) co_await out.send(long(*v) * *v);
    out.close();
}

csp::task<long> pipeline(int n) {
    auto numbers = csp::make_channel<int>();
    auto squares = csp::make_channel<long>(16);
    csp::go(generate(numbers, n));
    csp::go(square(numbers, squares));
    long sum = 0;
    while (auto s = co_await squares.recv()) sum += *s;
    co_return sum;
}

int main() {
    long sum = csp::sync_wait(pipeline(1000));
    std::printf("sum of squares 1..1000 = %ld\n", sum);
    return sum == 333'833'500 ? 0 : 1;
}
