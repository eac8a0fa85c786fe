// Go pattern: none -- Go has one scheduler. csp's channels and select only
// need an executor that can `post` a coroutine handle, so goroutines can run
// on someone else's event loop. Here some run on a (standalone) Boost.Asio
// io_context, beside others on csp's own work-stealing pool, and the two
// talk through channels.
//
// The producer and the collector run on the io_context (driven by main's
// thread); four squaring workers run on the pool. Each coroutine always
// resumes on its own executor: the collector checks that it is back on the
// io_context thread after every receive, however the pool woke it.
#include <csp/csp.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <coroutine>
#include <cstdio>
#include <optional>
#include <thread>

/// A csp executor on an asio::io_context: a resumption is an asio handler.
class asio_executor {
public:
    explicit asio_executor(asio::io_context& io) : io_(io) {}

    void post(std::coroutine_handle<> h) {
        asio::post(io_, [this, h] {
            csp::executor_scope scope(*this);  // so go(), select and channels know where they run
            h.resume();
            registry_.rethrow_if_failed();     // an exception escaping a goroutine leaves io.run()
        });
    }
    /// The goroutines spawned here; the ones still alive are destroyed with the executor.
    csp::goroutine_registry& goroutines() { return registry_; }

private:
    asio::io_context& io_;
    csp::goroutine_registry registry_;
};

using ints = csp::channel<int>;

csp::task<> produce(ints jobs, int n) {
    for (int i = 1; i <= n; ++i) co_await jobs.send(i);
    jobs.close();
}

csp::task<> square(ints jobs, ints results, csp::wait_group& workers) {
    while (auto v = co_await jobs.recv()) co_await results.send(*v * *v);
    workers.done();
}

struct outcome {
    long sum = 0;
    int wrong_thread = 0;  // resumptions of the collector away from the io_context thread
};

csp::task<> collect(ints results, int n, csp::wait_group& workers, outcome& out,
                    std::optional<asio::executor_work_guard<asio::io_context::executor_type>>& keep_running) {
    const auto io_thread = std::this_thread::get_id();
    for (int i = 0; i < n; ++i) {
        out.sum += *co_await results.recv();
        if (std::this_thread::get_id() != io_thread) ++out.wrong_thread;
    }
    co_await workers.wait();  // the pool's goroutines have all returned
    keep_running.reset();     // now io.run() may return once it is idle
}

int main() {
    constexpr int n = 1000, worker_count = 4;
    csp::work_stealing_pool pool(2);  // declared first: destroyed last
    asio::io_context io;
    asio_executor on_io(io);
    // Goroutines parked on channels are not asio work: without the guard,
    // io.run() would return as soon as its queue was momentarily empty.
    std::optional keep_running{asio::make_work_guard(io)};

    auto jobs = csp::make_channel<int>(), results = csp::make_channel<int>(16);
    csp::wait_group workers;
    outcome out;
    workers.add(worker_count);
    for (int w = 0; w < worker_count; ++w) csp::spawn(pool, square(jobs, results, workers));
    csp::spawn(on_io, produce(jobs, n));
    csp::spawn(on_io, collect(results, n, workers, out, keep_running));
    io.run();

    bool ok = out.sum == long(n) * (n + 1) * (2 * n + 1) / 6 && out.wrong_thread == 0;
    std::printf("sum of squares 1..%d = %ld, collector always on the io_context thread: %s\n", n, out.sum,
                ok ? "ok" : "WRONG RESULT");
    return ok ? 0 : 1;
}
