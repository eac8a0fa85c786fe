// Go pattern: a chat server whose shared state is owned by one goroutine
// (the "hub") and reached only through channels, as in Go's
// gorilla/websocket chat example and "Share memory by communicating".
//
// Every connection gets two goroutines: a reader that turns lines from the
// socket into messages for the hub, and a writer that sends the lines the
// hub broadcasts back to the socket. The hub keeps the set of clients; it is
// the only goroutine that touches it, so there is no lock. A client too slow
// to take a line (its outgoing channel full) misses it rather than stalling
// everyone: the hub sends with select + default.
//
//   example_chat_server [address:port]     serve; try: nc ADDRESS PORT
//   example_chat_server --demo             (CTest) a server and 4 clients in one process:
//                                          each client says hello, every client must hear all 4
#include <csp/csp.hpp>

#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

using csp::net::tcp_listener;
using csp::net::tcp_stream;
using line_channel = csp::channel<std::string>;

/// What the hub hears: clients joining and leaving, and lines to broadcast.
struct hub_channels {
    csp::channel<line_channel> join = csp::make_channel<line_channel>();
    csp::channel<line_channel> leave = csp::make_channel<line_channel>();
    line_channel broadcast = csp::make_channel<std::string>(64);
};

/// The hub: owns the client set; ends when `broadcast` is closed.
csp::task<> hub(hub_channels ch) {
    std::vector<line_channel> clients;
    for (;;) {
        auto r = co_await csp::select(ch.join.recv(), ch.leave.recv(), ch.broadcast.recv());
        if (r.index() == 0) {
            clients.push_back(*r.get<0>());
        } else if (r.index() == 1) {
            line_channel gone = *r.get<1>();
            std::erase(clients, gone);
            gone.close();  // its writer finishes
        } else {
            std::optional<std::string> line = std::move(r.get<2>());
            if (!line) break;  // shutting down
            for (auto& c : clients)
                (void)co_await csp::select(c.send(*line), csp::default_case);  // full: this client misses it
        }
    }
    for (auto& c : clients) c.close();
}

/// Writes what the hub sends this client until the hub closes its channel.
csp::task<> client_writer(std::shared_ptr<tcp_stream> conn, line_channel out) {
    try {
        while (auto line = co_await out.recv()) co_await conn->write_all(*line);
        conn->shutdown(csp::net::shutdown_how::write);
    } catch (const std::system_error&) {
        // The peer went away; the reader notices too and leaves the hub.
    }
}

/// Reads lines from the socket and hands them to the hub, then leaves.
/// `joined` (if given) counts the client once the hub has it in its set.
csp::task<> client_reader(std::shared_ptr<tcp_stream> conn, hub_channels ch, csp::wait_group& clients,
                          csp::wait_group* joined) {
    line_channel out = csp::make_channel<std::string>(16);
    co_await ch.join.send(out);  // unbuffered: the hub has taken it, and adds it before its next select
    if (joined) joined->done();
    csp::go(client_writer(conn, out));
    std::string pending;
    char buf[512];
    try {
        while (std::size_t n = co_await conn->read(std::span(buf))) {
            pending.append(buf, n);
            for (std::size_t eol; (eol = pending.find('\n')) != std::string::npos; pending.erase(0, eol + 1))
                co_await ch.broadcast.send(pending.substr(0, eol + 1));
        }
    } catch (const std::system_error&) {
    }
    co_await ch.leave.send(out);
    clients.done();
}

/// Accepts `max_clients` connections (or forever, if negative).
csp::task<> serve(tcp_listener& listener, hub_channels ch, long max_clients, csp::wait_group& clients,
                  csp::wait_group* joined = nullptr) {
    for (long i = 0; max_clients < 0 || i < max_clients; ++i) {
        auto conn = std::make_shared<tcp_stream>(co_await listener.accept());
        clients.add(1);
        csp::go(client_reader(std::move(conn), ch, clients, joined));
    }
}

/// The demo's client: says hello once every client has joined the hub, then
/// reads until it has heard every hello, and checks them.
csp::task<bool> demo_client(csp::net::address server, int id, int total, csp::wait_group& joined) {
    tcp_stream s = co_await tcp_stream::connect(server);
    co_await joined.wait();  // all are in the hub's set before anyone speaks
    co_await s.write_all("hello from " + std::to_string(id) + "\n");
    std::string heard;
    char buf[256];
    auto lines = [&] { return std::count(heard.begin(), heard.end(), '\n'); };
    while (lines() < total) {
        std::size_t n = co_await s.read(std::span(buf));
        if (n == 0) break;
        heard.append(buf, n);
    }
    bool ok = lines() == total;
    for (int i = 0; i < total; ++i) ok = ok && heard.find("hello from " + std::to_string(i) + "\n") != std::string::npos;
    std::printf("client %d heard %ld lines: %s\n", id, long(lines()), ok ? "all hellos" : "WRONG");
    co_return ok;
}

int main(int argc, char** argv) {
    bool demo = argc > 1 && std::strcmp(argv[1], "--demo") == 0;
    std::string at = argc > 1 && !demo ? argv[1] : "127.0.0.1:0";
    return csp::run([&]() -> csp::task<int> {
        auto listener = tcp_listener::bind(csp::net::address::parse(at));
        std::printf("chat server listening on %s\n", listener.local_address().to_string().c_str());
        std::fflush(stdout);
        hub_channels ch;
        csp::wait_group hub_done, clients;
        hub_done.add(1);
        csp::go([ch, &hub_done]() -> csp::task<> {
            co_await hub(ch);
            hub_done.done();
        });
        if (!demo) {
            co_await serve(listener, ch, -1, clients);  // forever
            co_return 0;
        }
        constexpr int total = 4;
        csp::wait_group joined, finished;
        joined.add(total);
        finished.add(total);
        csp::go(serve(listener, ch, total, clients, &joined));
        auto results = csp::make_channel<bool>(total);
        for (int id = 0; id < total; ++id)
            csp::go([&, id]() -> csp::task<> {
                co_await results.send(co_await demo_client(listener.local_address(), id, total, joined));
                finished.done();
            });
        co_await finished.wait();  // the demo clients hung up: their readers leave the hub
        co_await clients.wait();
        ch.broadcast.close();
        co_await hub_done.wait();
        bool ok = true;
        for (int i = 0; i < total; ++i) ok = *co_await results.recv() && ok;
        std::printf("%s\n", ok ? "every client heard every hello" : "WRONG RESULT");
        co_return ok ? 0 : 1;
    });
}
