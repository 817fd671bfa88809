// A multi-core TCP echo server: one io_context per core, each with its own
// SO_REUSEPORT listener on the same port. Every byte received is sent back.
//
//   tcp_echo --port 9000 --cores 2
#include <cnetmod/engine/engine.hpp>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

using namespace cnetmod;

namespace {

task<void> echo(tcp_stream s) {
    try {
        for (;;) {
            auto view = co_await s.recv_view();
            if (view.empty()) break;
            s.queue_received(view.size());  // the receive buffer itself is sent: no copy
            if (s.queued_bytes() > 1024 * 1024) co_await s.drain();
        }
        co_await s.close();
    } catch (const std::system_error&) {
        // the peer reset the connection: nothing to answer
    }
}

task<void> serve(io_context& ctx, tcp_listener listener) {
    for (;;) spawn(ctx, echo(co_await listener.accept()));
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"cnetmod TCP echo server: echoes every byte on every connection, one reactor per core"};
    std::uint16_t port = 9000;
    std::size_t cores = 0;
    std::string address = "127.0.0.1";
    app.add_option("--port", port, "TCP port to listen on")->capture_default_str();
    app.add_option("--cores", cores, "cores to run on (0: every core this process may use)")->capture_default_str();
    app.add_option("--address", address, "numeric address to bind")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    net_init guard;
    // Block SIGINT/SIGTERM before the core threads start, so only sigwait sees them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const ip_endpoint endpoint(address, port);
    runtime rt({.cores = cores});
    try {
        rt.start([&](io_context& ctx, std::size_t) { spawn(ctx, serve(ctx, tcp_listener::bind(ctx, endpoint))); });
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcp_echo: %s\n", e.what());
        return 1;
    }
    std::printf("tcp echo server on %s (%zu cores); Ctrl-C to stop\n", endpoint.to_string().c_str(), rt.size());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&signals, &sig);
    std::printf("stopping\n");
    rt.stop();
    rt.wait();
}
