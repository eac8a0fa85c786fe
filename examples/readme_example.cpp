// The example of README.md, kept identical to it; CTest builds and runs it.
#include <csp/csp.hpp>
#include <cstdio>

csp::task<> numbers(csp::channel<int> out, int n) {              // stage 1: 1..n
    for (int i = 1; i <= n; ++i) co_await out.send(i);
    out.close();                                                  // no more values
}

csp::task<> odds(csp::channel<int> in, csp::channel<int> out) {  // stage 2: keep the odd ones
    while (auto v = co_await in.recv())                           // nullopt once closed and drained
        if (*v % 2 == 1) co_await out.send(*v);
    out.close();
}

csp::task<int> sum_of_odds(int n) {
    auto all = csp::make_channel<int>();                          // unbuffered: each send is a rendezvous
    auto odd = csp::make_channel<int>(8);                         // buffered: room for 8 values
    csp::go(numbers(all, n));                                     // two goroutines, no threads
    csp::go(odds(all, odd));
    int sum = 0;
    while (auto v = co_await odd.recv()) sum += *v;
    co_return sum;
}

int main() {
    int sum = csp::sync_wait(sum_of_odds(100));                   // block main until the task is done
    std::printf("sum of the odd numbers in 1..100 = %d\n", sum);  // 2500
    return sum == 2500 ? 0 : 1;
}
