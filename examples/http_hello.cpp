// A small HTTP/1.1 "hello, world" server with keep-alive: one goroutine per
// connection, requests parsed just enough to find where each ends.
//
//   example_http_hello [address:port] [max_connections] [threads]
//
// Prints "listening on ADDRESS". Try: curl http://ADDRESS/
#include <csp/csp.hpp>

#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

using csp::net::tcp_stream;

/// Serves requests on one connection until the client closes it or asks to.
csp::task<> serve(tcp_stream conn, csp::wait_group& finished) {
    constexpr std::string_view body = "Hello, world!\n";
    std::string pending;
    char buf[4096];
    try {
        for (;;) {
            std::size_t end;
            while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
                std::size_t n = co_await conn.read(std::span(buf));
                if (n == 0) throw std::runtime_error("client went away");
                pending.append(buf, n);
                if (pending.size() > 64 * 1024) throw std::runtime_error("request head too large");
            }
            std::string head = pending.substr(0, end);
            pending.erase(0, end + 4);
            bool close = head.find("Connection: close") != std::string::npos ||
                         head.find("connection: close") != std::string::npos;
            std::string response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                                   std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" +
                                   std::string(body);
            co_await conn.write_all(response);
            if (close) break;
        }
    } catch (const std::exception&) {
        // A client that disconnects mid-request is normal for a web server.
    }
    finished.done();
}

int main(int argc, char** argv) {
    std::string at = argc > 1 ? argv[1] : "127.0.0.1:0";
    long max_connections = argc > 2 ? std::atol(argv[2]) : -1;
    csp::run_options options;
    if (argc > 3) options.threads = std::size_t(std::atoi(argv[3]));
    return csp::run(options, [&]() -> csp::task<int> {
        auto listener = csp::net::tcp_listener::bind(csp::net::address::parse(at));
        std::printf("listening on %s\n", listener.local_address().to_string().c_str());
        std::fflush(stdout);
        csp::wait_group finished;
        for (long served = 0; max_connections < 0 || served < max_connections; ++served) {
            finished.add(1);
            csp::go(serve(co_await listener.accept(), finished));
        }
        co_await finished.wait();
        co_return 0;
    });
}
