// Go pattern: wrapping a callback API in channels, as Go code does with cgo
// callbacks or os/signal.Notify.
//
// `sensor_library` stands for a thread-based C or C++ library: it runs its
// own thread and reports through callbacks. Its callbacks feed two channels
// that goroutines consume:
//  - readings: every value matters, so the callback blocks its (library)
//    thread until a goroutine has room: `csp::sync_wait(ch.send(v))`.
//    Back-pressure reaches the library, nothing is lost.
//  - status: only the latest matters, so the callback never blocks:
//    `try_send` into a one-slot channel, dropping the update if it is full.
#include <csp/csp.hpp>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

// ---- a stand-in for a third-party library with a thread and callbacks ----
class sensor_library {
public:
    struct callbacks {
        std::function<void(int)> on_reading;
        std::function<void(const std::string&)> on_status;
        std::function<void()> on_finished;
    };
    void start(int readings, callbacks cb) {
        thread_ = std::thread([readings, cb = std::move(cb)] {
            for (int i = 1; i <= readings; ++i) {
                cb.on_reading(i);
                if (i % 10 == 0) cb.on_status("read " + std::to_string(i));
            }
            cb.on_finished();
        });
    }
    ~sensor_library() {
        if (thread_.joinable()) thread_.join();
    }

private:
    std::thread thread_;
};

// ---- the csp side ----
csp::task<long> sum_readings(csp::channel<int> readings) {
    long sum = 0;
    while (auto v = co_await readings.recv()) sum += *v;
    co_return sum;
}

csp::task<int> count_status(csp::channel<std::string> status) {
    int seen = 0;
    while (auto s = co_await status.recv()) ++seen;
    co_return seen;
}

int main() {
    constexpr int n = 1000;
    // The library thread talks to the runtime with try_send and close, which
    // the deadlock detector cannot see (docs/runtime.md, "Blind spots"), so it is off.
    csp::run_options options{.detect_deadlocks = false};
    auto [sum, updates] = csp::run(options, []() -> csp::task<std::pair<long, int>> {
        auto readings = csp::make_channel<int>(16);
        auto status = csp::make_channel<std::string>(1);
        sensor_library sensor;
        sensor.start(n, {
            .on_reading = [readings](int v) mutable { csp::sync_wait(readings.send(v)); },  // waits for room
            .on_status = [status](const std::string& s) mutable { (void)status.try_send(s); },  // drops if full
            .on_finished = [readings, status]() mutable { readings.close(); status.close(); },
        });
        auto sum_task = csp::make_channel<long>(1);
        csp::go([](csp::channel<int> r, csp::channel<long> out) -> csp::task<> {
            long s = co_await sum_readings(r);
            co_await out.send(s);
        }, readings, sum_task);
        int updates = co_await count_status(status);
        long sum = *co_await sum_task.recv();
        co_return std::pair{sum, updates};
        // ~sensor_library joins the library thread; it has already finished.
    });
    bool ok = sum == long(n) * (n + 1) / 2 && updates >= 1 && updates <= n / 10;
    std::printf("sum of %d readings = %ld, %d of %d status updates kept: %s\n", n, sum, updates, n / 10,
                ok ? "ok" : "WRONG RESULT");
    return ok ? 0 : 1;
}
