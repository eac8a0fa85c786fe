// csp/net.hpp - TCP networking for goroutines: calls that look blocking and
// suspend only the calling goroutine.
//
//   auto listener = csp::net::tcp_listener::bind(csp::net::address::parse("127.0.0.1:0"));
//   for (;;) {
//       csp::net::tcp_stream conn = co_await listener.accept();
//       csp::go([c = std::move(conn)]() mutable -> csp::task<> {
//           char buf[4096];
//           while (std::size_t n = co_await c.read(std::span(buf))) co_await c.write_all(std::span(buf, n));
//       });
//   }
//
// Every socket is non-blocking and registered once with the poller of the
// executor that created it (poller.hpp). An operation first tries its system
// call; only on EAGAIN does the goroutine wait for readiness, so a worker
// thread never blocks in the kernel. Errors are std::system_error (codes
// from std::system_category, plus csp::net::errc for end of stream and use
// of a closed socket). Writes use MSG_NOSIGNAL: SIGPIPE is never raised.
//
// Timeouts: every waiting operation takes an optional deadline and then
// fails with std::errc::timed_out, and `select(csp::readable(fd),
// csp::after(d))` works for raw descriptors.
//
// Closing while another goroutine uses the socket (Go's fdMutex, reduced):
// each operation counts itself in `users_` while it runs; close() first
// cancels the poller registration (waiters wake with net::errc::closed),
// then marks the socket closed, and the fd is closed by whoever is last:
// close() itself, or the last operation to finish. So a system call never
// runs on an fd number that was closed and possibly reused meanwhile.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#include <resolv.h>  // res_nclose, in libc itself since glibc 2.34 (before: libresolv)
namespace csp::detail {
/// Frees the calling thread's resolver state. A DNS query leaves it holding
/// heap copies of the name servers' addresses, which glibc frees only as the
/// thread exits.
inline void free_resolver_state() noexcept { ::res_nclose(&_res); }
}  // namespace csp::detail
#else
namespace csp::detail {
inline void free_resolver_state() noexcept {}  // nothing to free, or no res_nclose without -lresolv
}  // namespace csp::detail
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "channel.hpp"
#include "poller.hpp"
#include "select.hpp"
#include "task.hpp"
#include "timer.hpp"

namespace csp::net {

// ---------------------------------------------------------------- errors

/// Errors that are not an errno: csp.net's own category.
enum class errc {
    end_of_stream = 1,  ///< read_exact: the peer closed before the buffer was full
    closed,             ///< the socket was closed (by this process) before or during the call
};

namespace detail {
class net_category_impl : public std::error_category {
public:
    const char* name() const noexcept override { return "csp.net"; }
    std::string message(int value) const override {
        switch (errc(value)) {
            case errc::end_of_stream: return "end of stream before the buffer was filled";
            case errc::closed: return "use of a closed socket";
        }
        return "unknown csp.net error";
    }
};
}  // namespace detail

inline const std::error_category& net_category() noexcept {
    static const detail::net_category_impl category;
    return category;
}

inline std::error_code make_error_code(errc e) noexcept { return {int(e), net_category()}; }

}  // namespace csp::net

template <>
struct std::is_error_code_enum<csp::net::errc> : std::true_type {};

namespace csp::net {

namespace detail {
using csp::detail::throw_errno;  // poller.hpp's: errno as std::system_error
[[noreturn]] inline void throw_net(errc e, const char* what) { throw std::system_error(make_error_code(e), what); }
}  // namespace detail

// ---------------------------------------------------------------- addresses

/// An IPv4 or IPv6 address and a port. Parsing is numeric only (it never
/// blocks); use resolve() for names.
class address {
public:
    address() noexcept { std::memset(&storage_, 0, sizeof storage_); }

    /// Parses "1.2.3.4:80" or "[::1]:80". Throws std::invalid_argument.
    static address parse(std::string_view text) {
        std::string_view host, port_text;
        if (!text.empty() && text.front() == '[') {
            auto close = text.find(']');
            if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
                throw std::invalid_argument("csp::net::address: expected [ipv6]:port, got '" + std::string(text) + "'");
            host = text.substr(1, close - 1);
            port_text = text.substr(close + 2);
        } else {
            auto colon = text.rfind(':');
            if (colon == std::string_view::npos)
                throw std::invalid_argument("csp::net::address: expected host:port, got '" + std::string(text) + "'");
            host = text.substr(0, colon);
            port_text = text.substr(colon + 1);
        }
        return from_ip(host, parse_port(port_text));
    }

    /// A numeric IPv4 or IPv6 address (no brackets) and a port.
    static address from_ip(std::string_view ip, std::uint16_t port) {
        std::string host(ip);
        address a;
        if (::inet_pton(AF_INET, host.c_str(), &a.v4().sin_addr) == 1) {
            a.v4().sin_family = AF_INET;
            a.v4().sin_port = htons(port);
            return a;
        }
        if (::inet_pton(AF_INET6, host.c_str(), &a.v6().sin6_addr) == 1) {
            a.v6().sin6_family = AF_INET6;
            a.v6().sin6_port = htons(port);
            return a;
        }
        throw std::invalid_argument("csp::net::address: not a numeric IP address: '" + host + "'");
    }

    static address loopback_v4(std::uint16_t port = 0) { return from_ip("127.0.0.1", port); }
    static address loopback_v6(std::uint16_t port = 0) { return from_ip("::1", port); }
    static address any_v4(std::uint16_t port = 0) { return from_ip("0.0.0.0", port); }
    static address any_v6(std::uint16_t port = 0) { return from_ip("::", port); }

    /// From a socket address the kernel filled in.
    static address from_sockaddr(const sockaddr* sa, socklen_t len) {
        address a;
        if (len > socklen_t(sizeof a.storage_) || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
            throw std::invalid_argument("csp::net::address: not an IPv4 or IPv6 socket address");
        std::memcpy(&a.storage_, sa, len);
        return a;
    }

    bool is_v4() const noexcept { return storage_.ss_family == AF_INET; }
    bool is_v6() const noexcept { return storage_.ss_family == AF_INET6; }
    int family() const noexcept { return storage_.ss_family; }

    std::uint16_t port() const noexcept {
        return is_v4() ? ntohs(v4c().sin_port) : is_v6() ? ntohs(v6c().sin6_port) : 0;
    }
    address with_port(std::uint16_t port) const noexcept {
        address a = *this;
        if (is_v4()) a.v4().sin_port = htons(port);
        if (is_v6()) a.v6().sin6_port = htons(port);
        return a;
    }

    /// The IP without the port ("127.0.0.1", "::1").
    std::string ip() const {
        char buf[INET6_ADDRSTRLEN] = {};
        if (is_v4()) ::inet_ntop(AF_INET, &v4c().sin_addr, buf, sizeof buf);
        else if (is_v6()) ::inet_ntop(AF_INET6, &v6c().sin6_addr, buf, sizeof buf);
        return buf;
    }

    /// "127.0.0.1:80" or "[::1]:80" (parse() reads it back).
    std::string to_string() const {
        if (is_v6()) return "[" + ip() + "]:" + std::to_string(port());
        return ip() + ":" + std::to_string(port());
    }

    const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
    socklen_t size() const noexcept {
        return is_v4() ? socklen_t(sizeof(sockaddr_in)) : is_v6() ? socklen_t(sizeof(sockaddr_in6)) : 0;
    }

    friend bool operator==(const address& a, const address& b) noexcept {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
    }

private:
    static std::uint16_t parse_port(std::string_view text) {
        unsigned value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size() || value > 65535)
            throw std::invalid_argument("csp::net::address: bad port '" + std::string(text) + "'");
        return std::uint16_t(value);
    }
    sockaddr_in& v4() noexcept { return *reinterpret_cast<sockaddr_in*>(&storage_); }
    sockaddr_in6& v6() noexcept { return *reinterpret_cast<sockaddr_in6*>(&storage_); }
    const sockaddr_in& v4c() const noexcept { return *reinterpret_cast<const sockaddr_in*>(&storage_); }
    const sockaddr_in6& v6c() const noexcept { return *reinterpret_cast<const sockaddr_in6*>(&storage_); }

    sockaddr_storage storage_;
};

/// Resolves a host name (or numeric address) to its addresses with `port`,
/// IPv4 and IPv6, in the resolver's order. getaddrinfo blocks, so it runs on
/// a short-lived thread of its own while the calling goroutine waits on a
/// channel: no worker ever blocks. Throws std::system_error on failure.
inline task<std::vector<address>> resolve(std::string host, std::uint16_t port) {
    try {
        co_return std::vector<address>{address::from_ip(host, port)};  // numeric: no lookup needed
    } catch (const std::invalid_argument&) {
    }
    struct outcome {
        std::vector<address> addresses;
        int error = 0;
        std::string message;
    };
    auto result = make_channel<outcome>(1);  // the thread never blocks on it
    std::thread([result, host = std::move(host), port]() mutable {
        outcome out;
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* list = nullptr;
        int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
        if (rc != 0) {
            out.error = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
            out.message = "csp::net::resolve(" + host + "): " + ::gai_strerror(rc);
        } else {
            for (addrinfo* ai = list; ai; ai = ai->ai_next)
                if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
                    out.addresses.push_back(address::from_sockaddr(ai->ai_addr, ai->ai_addrlen).with_port(port));
            ::freeaddrinfo(list);
            if (out.addresses.empty()) {
                out.error = EHOSTUNREACH;
                out.message = "csp::net::resolve(" + host + "): no IPv4 or IPv6 address";
            }
        }
        // The thread is detached: a program that ends right after its last
        // resolve could end while this thread is still exiting, with its
        // resolver state allocated, and LeakSanitizer would report it. Free
        // it now, before the result is sent; the thread makes no other query.
        csp::detail::free_resolver_state();
        (void)result.try_send(std::move(out));
    }).detach();
    std::optional<outcome> out = co_await result.recv();
    if (out->error) throw std::system_error(out->error, std::system_category(), out->message);
    co_return std::move(out->addresses);
}

namespace detail {

using deadline_t = std::optional<clock::time_point>;

/// A non-blocking socket registered with a poller, with the close protocol
/// described at the top of this file. The base of tcp_stream and tcp_listener.
class socket_base {
public:
    socket_base() = default;
    socket_base(socket_base&& other) noexcept { take(other); }
    socket_base& operator=(socket_base&& other) noexcept {
        if (this != &other) {
            close();
            take(other);
        }
        return *this;
    }
    ~socket_base() { close(); }

    bool is_open() const noexcept { return fd_ >= 0 && !(users_.load(std::memory_order_acquire) & closed_bit); }
    int native_handle() const noexcept { return fd_; }

    /// Closes the socket. Goroutines waiting on it wake with errc::closed;
    /// an operation in a system call finishes first. Idempotent.
    void close() noexcept {
        if (fd_ < 0) return;
        if (users_.load(std::memory_order_acquire) & closed_bit) return;
        poller_->remove(source_);  // cancels waits; new waits fail at once
        // acq_rel: our cancel happens before the last user's close, and we
        // see every earlier user's completed system calls.
        unsigned before = users_.fetch_or(closed_bit, std::memory_order_acq_rel);
        if (before & closed_bit) return;
        if (before == 0) release_fd();
    }

    address local_address() const { return sockname(::getsockname, "getsockname"); }

    /// Readiness of this socket as a select case (or awaitable): to wait for
    /// input with a timeout or a cancellation channel,
    /// `co_await csp::select(conn.readable(), csp::after(1s), done.recv())`,
    /// then read. Yields operation_canceled once the socket is closed.
    csp::detail::io_wait readable() const {
        if (fd_ < 0) detail::throw_net(errc::closed, "csp::net: socket is not open");
        return csp::detail::io_wait(source_, csp::detail::io_direction::read);
    }
    /// Like readable(), for room to write.
    csp::detail::io_wait writable() const {
        if (fd_ < 0) detail::throw_net(errc::closed, "csp::net: socket is not open");
        return csp::detail::io_wait(source_, csp::detail::io_direction::write);
    }

protected:
    /// Wraps a new non-blocking fd, registering it with the current
    /// executor's poller. Closes `fd` if that fails.
    explicit socket_base(int fd) : fd_(fd) {
        try {
            poller_ = &csp::detail::current_poller();
            source_ = poller_->add(fd);
        } catch (...) {
            ::close(fd);
            fd_ = -1;
            throw;
        }
    }

    /// Counts an operation in progress for its lifetime (see the top).
    class user {
    public:
        explicit user(socket_base& s) : s_(&s) {
            if (s.fd_ < 0) detail::throw_net(errc::closed, "csp::net: socket is not open");
            // acquire: pairs with close()'s fetch_or; a closed socket is refused.
            if (s.users_.fetch_add(count_one, std::memory_order_acquire) & closed_bit) {
                release();
                detail::throw_net(errc::closed, "csp::net: use of a closed socket");
            }
        }
        ~user() { release(); }
        user(const user&) = delete;
        user& operator=(const user&) = delete;

    private:
        void release() noexcept {
            // acq_rel: the last user's system calls happen before the close.
            if (s_->users_.fetch_sub(count_one, std::memory_order_acq_rel) == (closed_bit | count_one))
                s_->release_fd();
        }
        socket_base* s_;
    };

    /// Waits until the socket may be ready in direction `d`, or `deadline`.
    task<> wait(csp::detail::io_direction d, deadline_t deadline) {
        csp::detail::io_wait ready(source_, d);
        if (!deadline) {
            try {
                co_await ready;
            } catch (const std::system_error&) {
                detail::throw_net(errc::closed, "csp::net: socket closed while waiting");
            }
            co_return;
        }
        auto r = co_await csp::select(std::move(ready), csp::at(*deadline));
        if (r.index() == 1) throw std::system_error(std::make_error_code(std::errc::timed_out), "csp::net: deadline");
        if (r.get<0>()) detail::throw_net(errc::closed, "csp::net: socket closed while waiting");
    }

    int fd_ = -1;

private:
    static constexpr unsigned closed_bit = 1, count_one = 2;

    void take(socket_base& other) noexcept {
        fd_ = std::exchange(other.fd_, -1);
        source_ = std::exchange(other.source_, nullptr);
        poller_ = std::exchange(other.poller_, nullptr);
        users_.store(other.users_.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
    }

    void release_fd() noexcept {
        ::close(fd_);
        poller_->release(source_);
    }

protected:
    template <class F>
    address sockname(F f, const char* what) const {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        if (f(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) detail::throw_errno(errno, what);
        return address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    }

    csp::detail::io_source* source_ = nullptr;
    poller* poller_ = nullptr;
    std::atomic<unsigned> users_{0};
};

inline int new_socket(int family) {
    int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) detail::throw_errno(errno, "csp::net: socket");
    return fd;
}

}  // namespace detail

/// Which direction shutdown() ends.
enum class shutdown_how { read = SHUT_RD, write = SHUT_WR, both = SHUT_RDWR };

/// A connected TCP socket. Move-only; closed on destruction. One goroutine
/// may read while another writes; close() from any goroutine wakes both.
class tcp_stream : public detail::socket_base {
public:
    tcp_stream() = default;

    /// Connects to `to`, waiting (until `deadline`, if given) for the
    /// handshake. Throws std::system_error (e.g. connection_refused,
    /// timed_out).
    static task<tcp_stream> connect(address to, std::optional<clock::time_point> deadline = std::nullopt) {
        tcp_stream s(detail::new_socket(to.family()));
        {
            user u(s);
            int rc;
            do rc = ::connect(s.fd_, to.data(), to.size());
            while (rc != 0 && errno == EINTR);
            if (rc != 0) {
                if (errno != EINPROGRESS) detail::throw_errno(errno, "csp::net::tcp_stream::connect");
                co_await s.wait(csp::detail::io_direction::write, deadline);
                int err = 0;
                socklen_t len = sizeof err;
                ::getsockopt(s.fd_, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) detail::throw_errno(err, "csp::net::tcp_stream::connect");
            }
        }
        co_return std::move(s);
    }

    /// Resolves `host` and connects to its addresses in turn.
    static task<tcp_stream> connect(std::string host, std::uint16_t port,
                                    std::optional<clock::time_point> deadline = std::nullopt) {
        std::vector<address> candidates = co_await resolve(std::move(host), port);
        std::exception_ptr last;
        for (const address& a : candidates) {
            try {
                co_return co_await connect(a, deadline);
            } catch (const std::system_error&) {
                last = std::current_exception();
            }
        }
        std::rethrow_exception(last);
    }

    /// Reads what is available, up to buf.size() bytes, waiting for at least
    /// one. Returns 0 at end of stream (the peer shut down its side).
    task<std::size_t> read(std::span<std::byte> buf, std::optional<clock::time_point> deadline = std::nullopt) {
        user u(*this);
        for (;;) {
            ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
            if (n >= 0) co_return std::size_t(n);
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) detail::throw_errno(errno, "csp::net::tcp_stream::read");
            co_await wait(csp::detail::io_direction::read, deadline);
        }
    }
    task<std::size_t> read(std::span<char> buf, std::optional<clock::time_point> deadline = std::nullopt) {
        return read(std::as_writable_bytes(buf), deadline);
    }

    /// Fills `buf` completely. Throws errc::end_of_stream if the peer
    /// closes first.
    task<> read_exact(std::span<std::byte> buf, std::optional<clock::time_point> deadline = std::nullopt) {
        while (!buf.empty()) {
            std::size_t n = co_await read(buf, deadline);
            if (n == 0) detail::throw_net(errc::end_of_stream, "csp::net::tcp_stream::read_exact");
            buf = buf.subspan(n);
        }
    }
    task<> read_exact(std::span<char> buf, std::optional<clock::time_point> deadline = std::nullopt) {
        return read_exact(std::as_writable_bytes(buf), deadline);
    }

    /// Writes all of `data`, waiting while the socket buffer is full (a
    /// peer that never reads blocks this goroutine, not the worker).
    task<> write_all(std::span<const std::byte> data, std::optional<clock::time_point> deadline = std::nullopt) {
        user u(*this);
        while (!data.empty()) {
            ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n >= 0) {
                data = data.subspan(std::size_t(n));
                continue;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) detail::throw_errno(errno, "csp::net::tcp_stream::write_all");
            co_await wait(csp::detail::io_direction::write, deadline);
        }
    }
    task<> write_all(std::string_view data, std::optional<clock::time_point> deadline = std::nullopt) {
        return write_all(std::as_bytes(std::span(data.data(), data.size())), deadline);
    }
    task<> write_all(std::span<const char> data, std::optional<clock::time_point> deadline = std::nullopt) {
        return write_all(std::as_bytes(data), deadline);
    }
    task<> write_all(const std::string& data, std::optional<clock::time_point> deadline = std::nullopt) {
        return write_all(std::string_view(data), deadline);
    }

    /// Ends one or both directions (shutdown(2)): after shutdown(write) the
    /// peer reads end of stream.
    void shutdown(shutdown_how how = shutdown_how::write) {
        user u(*this);
        if (::shutdown(fd_, int(how)) != 0 && errno != ENOTCONN)
            detail::throw_errno(errno, "csp::net::tcp_stream::shutdown");
    }

    /// Disables (true) or enables Nagle's algorithm.
    void set_no_delay(bool on = true) {
        user u(*this);
        int v = on ? 1 : 0;
        if (::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
            detail::throw_errno(errno, "csp::net::tcp_stream::set_no_delay");
    }

    address peer_address() const { return sockname(::getpeername, "getpeername"); }

private:
    friend class tcp_listener;
    explicit tcp_stream(int fd) : socket_base(fd) {}
};

/// A listening TCP socket.
class tcp_listener : public detail::socket_base {
public:
    tcp_listener() = default;

    /// Binds to `at` (port 0: an ephemeral port, see local_address()) and
    /// listens. SO_REUSEADDR is set. Throws std::system_error.
    static tcp_listener bind(address at, int backlog = 1024) {
        tcp_listener l(detail::new_socket(at.family()));
        int one = 1;
        ::setsockopt(l.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(l.fd_, at.data(), at.size()) != 0) detail::throw_errno(errno, "csp::net::tcp_listener::bind");
        if (::listen(l.fd_, backlog) != 0) detail::throw_errno(errno, "csp::net::tcp_listener::listen");
        return l;
    }

    /// Waits for the next connection. When the process is out of file
    /// descriptors (EMFILE, ENFILE) or kernel memory, it backs off (5 ms,
    /// doubling up to 1 s) and retries instead of spinning, as Go's HTTP
    /// server does. A connection reset before it was accepted is skipped.
    task<tcp_stream> accept(std::optional<clock::time_point> deadline = std::nullopt) {
        user u(*this);
        auto backoff = std::chrono::milliseconds(0);
        for (;;) {
            int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) co_return tcp_stream(fd);
            int err = errno;
            if (err == EINTR || err == ECONNABORTED) continue;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                co_await wait(csp::detail::io_direction::read, deadline);
                backoff = std::chrono::milliseconds(0);
                continue;
            }
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                backoff = std::min<std::chrono::milliseconds>(std::max(backoff * 2, std::chrono::milliseconds(5)),
                                                              std::chrono::seconds(1));
                auto until = clock::now() + backoff;
                if (deadline && *deadline <= until) {
                    co_await sleep_until(*deadline);
                    throw std::system_error(std::make_error_code(std::errc::timed_out), "csp::net: deadline");
                }
                co_await sleep_until(until);
                if (!is_open()) detail::throw_net(errc::closed, "csp::net::tcp_listener::accept");
                continue;
            }
            detail::throw_errno(err, "csp::net::tcp_listener::accept");
        }
    }

    /// Takes ownership of an already listening socket (inherited from a
    /// parent, socket activation) and makes it non-blocking.
    static tcp_listener adopt(int fd) {
        int flags = ::fcntl(fd, F_GETFL);
        if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
            detail::throw_errno(errno, "csp::net::tcp_listener::adopt");
        return tcp_listener(fd);
    }

private:
    explicit tcp_listener(int fd) : socket_base(fd) {}
};

}  // namespace csp::net
