// Go pattern: "Pipelines and cancellation" (go.dev/blog/pipelines).
//
// A generator feeds numbers to three squaring workers (fan-out); a merge
// stage copies their outputs onto one channel (fan-in). The consumer wants
// only the first few results, so it closes a `done` channel: every stage
// selects on `done` beside each send, sees it closed and returns. Nothing is
// left blocked; the wait_group proves it (if a stage ignored `done`, the
// final wait would never end and csp::run would report a deadlock).
#include <csp/csp.hpp>
#include <cstdio>
#include <vector>

using ints = csp::channel<int>;

// Sends `v` on `out` unless `done` is closed first. False: cancelled.
csp::task<bool> send_or_cancel(ints out, ints done, int v) {
    auto r = co_await csp::select(out.send(v), done.recv());
    co_return r.index() == 0;
}

csp::task<> generate(ints done, ints out, csp::wait_group& stages) {
    for (int i = 1;; ++i)                                  // endless: only `done` stops it
        if (!co_await send_or_cancel(out, done, i)) break;
    out.close();
    stages.done();
}

csp::task<> square(ints done, ints in, ints out, csp::wait_group& stages) {
    while (auto v = co_await in.recv())
        if (!co_await send_or_cancel(out, done, *v * *v)) break;
    out.close();
    stages.done();
}

// Fan-in: one goroutine per input copies it to `out`; the last to finish closes `out`.
csp::task<> forward(ints done, ints in, ints out, csp::wait_group& copiers) {
    while (auto v = co_await in.recv())
        if (!co_await send_or_cancel(out, done, *v)) break;
    copiers.done();
}
csp::task<> close_when_done(csp::wait_group& copiers, ints out, csp::wait_group& stages) {
    co_await copiers.wait();
    out.close();
    stages.done();
}

int main() {
    constexpr int workers = 3, wanted = 10;
    return csp::run([]() -> csp::task<int> {
        ints done = csp::make_channel<int>();          // never sent on: closing it broadcasts
        ints numbers = csp::make_channel<int>();
        ints merged = csp::make_channel<int>();
        csp::wait_group stages, copiers;               // every goroutine of the pipeline; the fan-in copiers

        stages.add(1 + workers + 1);
        csp::go(generate(done, numbers, stages));
        copiers.add(workers);
        for (int w = 0; w < workers; ++w) {
            ints squares = csp::make_channel<int>();
            csp::go(square(done, numbers, squares, stages));
            csp::go(forward(done, squares, merged, copiers));
        }
        csp::go(close_when_done(copiers, merged, stages));

        std::vector<int> got;
        while (got.size() < wanted) got.push_back(*co_await merged.recv());
        done.close();                                  // cancel: we have what we need
        co_await stages.wait();                        // every stage saw `done` and returned

        bool ok = true;
        for (int v : got) {                            // each result is a perfect square of 1, 2, ...
            int root = 1;
            while (root * root < v) ++root;
            ok = ok && root * root == v;
        }
        std::printf("took %d squares from %d workers, then cancelled the pipeline: %s\n", wanted, workers,
                    ok ? "all stages stopped" : "WRONG RESULT");
        co_return ok ? 0 : 1;
    });
}
