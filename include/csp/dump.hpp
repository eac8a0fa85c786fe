// csp/dump.hpp - goroutine dumps: what every live goroutine is doing.
//
//   csp::dump();                           // to stderr, now
//   std::string text = csp::dump_string();
//   csp::install_dump_on_signal();         // `kill -QUIT <pid>` dumps, like a Go program
//
// A dump lists every executor that has live goroutines (pools, run_loops,
// the loops of sync_wait) and, for each goroutine, its id, what it is
// blocked on (the channel operation and the channel, a select, a sleep, a
// wait_group) and for how long, and where it was started. docs/debugging.md
// explains how to read one. The deadlock error of csp::run uses the same
// per-goroutine format.
//
// A dump may be taken at any time from any thread, while goroutines run: it
// only takes the registries' locks and reads each goroutine's wait record
// consistently (detail/goroutine_wait.hpp). Being a snapshot of a moving
// system, it may show a goroutine as still blocked just after it was woken.
#pragma once

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <mutex>
#include <ostream>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include "detail/goroutine_format.hpp"
#include "detail/goroutine_registry.hpp"

namespace csp {

/// The last line of every dump, so that a reader of a pipe knows it has it all.
inline constexpr const char* dump_end_marker = "csp: end of goroutine dump";

/// The goroutine dump as text.
inline std::string dump_string() {
    struct executor_block {
        const void* registry;
        std::string kind;
        std::vector<detail::goroutine_snapshot> goroutines;
    };
    std::vector<executor_block> blocks;
    detail::registry_list::instance().for_each([&](const detail::goroutine_registry& r) {
        auto goroutines = r.snapshot();
        if (!goroutines.empty()) blocks.push_back({&r, r.kind(), std::move(goroutines)});
    });

    std::size_t total = 0;
    for (const executor_block& b : blocks) total += b.goroutines.size();
    std::int64_t now = detail::coarse_now_ns();
    std::string out = "csp: goroutine dump: " + std::to_string(total) + (total == 1 ? " goroutine" : " goroutines") +
                      " on " + std::to_string(blocks.size()) + (blocks.size() == 1 ? " executor\n" : " executors\n");
    for (const executor_block& b : blocks) {
        char id[32];
        std::snprintf(id, sizeof id, " %p", b.registry);
        out += b.kind + id + ": " + std::to_string(b.goroutines.size()) +
               (b.goroutines.size() == 1 ? " goroutine\n" : " goroutines\n");
        for (const detail::goroutine_snapshot& g : b.goroutines) detail::format_goroutine(out, g, now);
    }
    out += dump_end_marker;
    out += '\n';
    return out;
}

/// Writes a dump to `os`.
inline void dump(std::ostream& os) { os << dump_string() << std::flush; }

/// Writes a dump to a file descriptor with write(2): unbuffered, so it
/// reaches a terminal or a log even if the program dies right after.
inline void dump_to_fd(int fd) {
    std::string text = dump_string();
    for (std::size_t done = 0; done < text.size();) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::system_error(errno, std::generic_category(), "csp::dump: write");
        done += std::size_t(n);
    }
}

/// Writes a dump to stderr.
inline void dump() { dump_to_fd(STDERR_FILENO); }

namespace detail {

/// Turns a signal into a dump. The handler only writes one byte to a pipe,
/// which is async-signal-safe; a background thread waits on the pipe and
/// does the dump, which takes locks and allocates (never allowed in a
/// handler: the signal may have interrupted a thread holding those locks).
///
/// The pipe is created once and never closed, so a handler still running on
/// another thread while uninstall() restores the previous action can never
/// write to a closed (or reused) descriptor.
class dump_signal_service {
public:
    static dump_signal_service& instance() {
        static dump_signal_service service;
        return service;
    }

    void install(int sig, int out_fd) {
        std::lock_guard lock(mu_);
        if (thread_.joinable())
            throw std::logic_error("csp::install_dump_on_signal: already installed (on signal " + std::to_string(sig_) +
                                   "); call csp::uninstall_dump_on_signal() first");
        open_pipe();
        drain();  // bytes from signals that arrived after the last uninstall
        struct sigaction action {};
        action.sa_handler = &on_signal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESTART;
        thread_ = std::thread([this, out_fd] { serve(out_fd); });
        if (::sigaction(sig, &action, &previous_) != 0) {
            int error = errno;
            stop_thread();
            throw std::system_error(error, std::generic_category(), "csp::install_dump_on_signal: sigaction");
        }
        sig_ = sig;
    }

    /// Restores the handler that was installed before and stops the thread.
    /// Does nothing if no dump handler is installed.
    void uninstall() {
        std::lock_guard lock(mu_);
        if (!thread_.joinable()) return;
        ::sigaction(sig_, &previous_, nullptr);
        stop_thread();
    }

    ~dump_signal_service() { uninstall(); }

private:
    dump_signal_service() = default;

    static constexpr char dump_byte = 'd';
    static constexpr char quit_byte = 'q';

    // std::atomic<int> is lock-free, so reading it is async-signal-safe.
    static inline std::atomic<int> wake_fd_{-1};

    static void on_signal(int) noexcept {
        int saved = errno;  // a handler must not change errno under the interrupted code
        // relaxed: the descriptor was published before the handler was installed.
        int fd = wake_fd_.load(std::memory_order_relaxed);
        char byte = dump_byte;
        if (fd >= 0) (void)!::write(fd, &byte, 1);  // a full pipe: a dump is pending anyway
        errno = saved;
    }

    void open_pipe() {
        if (pipe_[0] >= 0) return;
        if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0)
            throw std::system_error(errno, std::generic_category(), "csp::install_dump_on_signal: pipe2");
        wake_fd_.store(pipe_[1], std::memory_order_relaxed);  // relaxed: sigaction comes later in this thread
    }

    void drain() noexcept {
        char buf[64];
        while (::read(pipe_[0], buf, sizeof buf) > 0) {
        }
    }

    void stop_thread() {
        char byte = quit_byte;
        // The write end is non-blocking; a pipe full of dump requests
        // empties as the thread serves them.
        while (::write(pipe_[1], &byte, 1) != 1) std::this_thread::yield();
        thread_.join();
    }

    void serve(int out_fd) {
        for (;;) {
            pollfd p{pipe_[0], POLLIN, 0};
            if (::poll(&p, 1, -1) < 0 && errno != EINTR) return;
            // Take every byte that is there: signals that arrived meanwhile
            // coalesce into one dump.
            bool dump_requested = false;
            char buf[64];
            for (ssize_t n; (n = ::read(pipe_[0], buf, sizeof buf)) > 0;)
                for (ssize_t i = 0; i < n; ++i) {
                    if (buf[i] == quit_byte) return;
                    dump_requested = true;
                }
            if (!dump_requested) continue;  // EAGAIN / EINTR: poll again
            try {
                dump_to_fd(out_fd);
            } catch (...) {
                // out_fd is unusable (closed, a broken pipe): nothing to report to.
            }
        }
    }

    std::mutex mu_;
    int pipe_[2] = {-1, -1};
    int sig_ = 0;
    struct sigaction previous_ {};
    std::thread thread_;
};

}  // namespace detail

/// Makes signal `sig` write a goroutine dump to `fd` (default: stderr), like
/// SIGQUIT in a Go program, except that the program keeps running. Opt-in:
/// csp installs no signal handler by itself. The previous handler is kept
/// and restored by uninstall_dump_on_signal(). Throws std::logic_error if a
/// dump handler is already installed, std::system_error if the system refuses.
inline void install_dump_on_signal(int sig = SIGQUIT, int fd = STDERR_FILENO) {
    detail::dump_signal_service::instance().install(sig, fd);
}

/// Restores the handler that install_dump_on_signal() replaced and stops
/// its thread. Does nothing if none is installed.
inline void uninstall_dump_on_signal() { detail::dump_signal_service::instance().uninstall(); }

}  // namespace csp
