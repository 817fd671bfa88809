// TCP echo on loopback: cnetmod's io_uring echo server against a plain epoll
// echo loop written for this benchmark, each in its own process pinned to
// CPU 0, driven by the same io_uring load generator (cnetmod's client side)
// pinned to CPU 1. Each run reports messages per second, both processes' CPU
// share, and the server's CPU time per message.
//
//   engine_tcp_echo_bench --benchmark_filter='echo/.*' --benchmark_repetitions=5
//
// Arguments: server (0 = cnetmod io_uring, 1 = epoll), message size,
// messages in flight per connection, connections, and a fixed total rate in
// messages per second (0: closed loop, as fast as the pair goes). At a fixed
// rate neither process is saturated, so the server's CPU time per message is
// the fair comparison on a two-core machine.
#include <cnetmod/engine/engine.hpp>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace cnetmod;
using namespace std::chrono_literals;

namespace {

// The CPUs the benchmark may use, read once before anything is pinned.
const std::vector<int> usable_cpus = runtime::allowed_cpus();

void pin_to_cpu(int cpu) {
    const auto& cpus = usable_cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus[static_cast<std::size_t>(cpu) % cpus.size()], &set);
    ::sched_setaffinity(0, sizeof set, &set);
}

// ---- the two servers, each run in a child process ----

task<void> uring_echo_session(tcp_stream s) {
    try {
        for (;;) {
            auto view = co_await s.recv_view();
            if (view.empty()) break;
            s.queue_received(view.size());  // sends the receive buffer itself
        }
    } catch (const std::system_error&) {
    }
}

task<void> uring_accept_loop(io_context& ctx, tcp_listener& listener) {
    for (;;) spawn(ctx, uring_echo_session(co_await listener.accept()));
}

[[noreturn]] void run_uring_server(int listen_fd_ready_pipe) {
    io_context ctx({.defer_taskrun = std::getenv("CNETMOD_NO_DEFER") == nullptr});
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    const std::uint16_t port = listener.port();
    [[maybe_unused]] auto n = ::write(listen_fd_ready_pipe, &port, sizeof port);
    spawn(ctx, uring_accept_loop(ctx, listener));
    ctx.run();
    std::_Exit(0);
}

// The conventional design: level-triggered epoll, read then write back at
// once, EPOLLOUT only when the socket buffer is full.
[[noreturn]] void run_epoll_server(int ready_pipe) {
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(lfd, 4096);
    socklen_t len = sizeof addr;
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
    const std::uint16_t port = ntohs(addr.sin_port);
    [[maybe_unused]] auto w = ::write(ready_pipe, &port, sizeof port);

    int ep = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    std::vector<std::string> pending(65536);  // unsent bytes per fd
    std::vector<char> buf(256 * 1024);
    epoll_event events[1024];
    for (;;) {
        int n = ::epoll_wait(ep, events, 1024, -1);
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
                    if (c < 0) break;
                    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event cev{};
                    cev.events = EPOLLIN;
                    cev.data.fd = c;
                    ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            auto& out = pending[static_cast<std::size_t>(fd)];
            if (events[i].events & EPOLLOUT) {
                ssize_t s = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
                if (s > 0) out.erase(0, static_cast<std::size_t>(s));
                if (out.empty()) {
                    epoll_event cev{};
                    cev.events = EPOLLIN;
                    cev.data.fd = fd;
                    ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
                }
                continue;
            }
            ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
            if (r <= 0) {
                ::close(fd);
                out.clear();
                continue;
            }
            const char* p = buf.data();
            std::size_t left = static_cast<std::size_t>(r);
            if (out.empty()) {
                ssize_t s = ::send(fd, p, left, MSG_NOSIGNAL);
                if (s > 0) {
                    p += s;
                    left -= static_cast<std::size_t>(s);
                }
            }
            if (left > 0) {
                out.append(p, left);
                epoll_event cev{};
                cev.events = EPOLLIN | EPOLLOUT;
                cev.data.fd = fd;
                ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
            }
        }
    }
}

struct server_process {
    pid_t pid = -1;
    std::uint16_t port = 0;

    explicit server_process(int kind) {
        int fds[2];
        if (::pipe(fds) != 0) throw std::runtime_error("pipe");
        pid = ::fork();
        if (pid == 0) {
            ::close(fds[0]);
            pin_to_cpu(0);
            if (kind == 0)
                run_uring_server(fds[1]);
            else
                run_epoll_server(fds[1]);
        }
        ::close(fds[1]);
        if (::read(fds[0], &port, sizeof port) != sizeof port) throw std::runtime_error("server did not start");
        ::close(fds[0]);
    }
    ~server_process() {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
    // User + system CPU seconds the server has used.
    double cpu_seconds() const {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        std::getline(stat, line);
        // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
        std::size_t pos = line.rfind(')');
        std::vector<std::string> fields;
        std::string field;
        for (std::size_t i = pos + 2; i <= line.size(); ++i) {
            if (i == line.size() || line[i] == ' ') {
                fields.push_back(field);
                field.clear();
            } else {
                field += line[i];
            }
        }
        const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
        return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
    }
};

double own_cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---- the load generator: closed loop, `inflight` messages per connection ----

struct load_counters {
    std::uint64_t messages = 0;
    std::uint64_t skipped = 0;  // fixed rate: a tick found the previous message unanswered
    bool stop = false;
};

task<void> load_connection(io_context& ctx, std::uint16_t port, std::size_t size, int inflight, load_counters& c,
                           const std::vector<std::byte>& message) {
    auto s = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(port));
    for (int i = 0; i < inflight; ++i) s.queue(message);
    std::size_t partial = 0;
    while (!c.stop) {
        auto view = co_await s.recv_view();
        if (view.empty()) break;
        partial += view.size();
        s.consume(view.size());
        while (partial >= size) {
            partial -= size;
            ++c.messages;
            s.queue(message);
        }
    }
}

// Fixed rate: a connection sends when the pacer tells it to, if its last
// message was answered; it counts answers.
struct paced_connection {
    tcp_stream stream;
    bool outstanding = false;
};

task<void> paced_reader(paced_connection& pc, std::size_t size, load_counters& c) {
    std::size_t partial = 0;
    while (!c.stop) {
        auto view = co_await pc.stream.recv_view();
        if (view.empty()) break;
        partial += view.size();
        pc.stream.consume(view.size());
        if (partial >= size) {
            partial -= size;
            ++c.messages;
            pc.outstanding = false;
        }
    }
}

// One pacer for all connections, ticking every millisecond and sending the
// messages due since the last tick, round robin: a timer per message would
// cost the load side more than the server's whole work.
task<void> pacer(io_context& ctx, std::uint16_t port, std::size_t size, int connections, double rate, load_counters& c,
                 const std::vector<std::byte>& message) {
    std::vector<std::unique_ptr<paced_connection>> conns;
    for (int i = 0; i < connections; ++i) {
        auto pc = std::make_unique<paced_connection>();
        pc->stream = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(port));
        spawn(ctx, paced_reader(*pc, size, c));
        conns.push_back(std::move(pc));
    }
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t sent = 0;
    std::size_t next = 0;
    while (!c.stop) {
        co_await async_sleep(ctx, 1ms);
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const auto due = static_cast<std::uint64_t>(elapsed * rate);
        for (; sent < due; ++sent) {
            auto& pc = *conns[next];
            next = (next + 1) % conns.size();
            if (pc.outstanding) {
                ++c.skipped;
                continue;
            }
            pc.outstanding = true;
            pc.stream.queue(message);
        }
    }
}

void BM_echo(benchmark::State& state) {
    const int kind = static_cast<int>(state.range(0));
    const auto size = static_cast<std::size_t>(state.range(1));
    const int inflight = static_cast<int>(state.range(2));
    const int connections = static_cast<int>(state.range(3));
    const double rate = static_cast<double>(state.range(4));
    state.SetLabel(kind == 0 ? "cnetmod-io_uring" : "epoll");

    server_process server(kind);
    pin_to_cpu(1);
    const std::vector<std::byte> message(size, std::byte{'x'});
    for (auto _ : state) {
        io_context ctx;
        load_counters counters;
        double messages = 0, seconds = 0, server_cpu = 0, client_cpu = 0;
        auto run = [&]() -> task<void> {
            if (rate > 0)
                spawn(ctx, pacer(ctx, server.port, size, connections, rate, counters, message));
            else
                for (int i = 0; i < connections; ++i)
                    spawn(ctx, load_connection(ctx, server.port, size, inflight, counters, message));
            co_await async_sleep(ctx, 300ms);  // warm up
            const auto m0 = counters.messages;
            const double s0 = server.cpu_seconds(), c0 = own_cpu_seconds();
            const auto t0 = std::chrono::steady_clock::now();
            co_await async_sleep(ctx, 2s);
            seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            messages = static_cast<double>(counters.messages - m0);
            server_cpu = server.cpu_seconds() - s0;
            client_cpu = own_cpu_seconds() - c0;
            counters.stop = true;
        };
        sync_wait(ctx, run());
        state.SetIterationTime(seconds);
        state.counters["msgs_per_s"] = messages / seconds;
        state.counters["server_cpu_pct"] = 100.0 * server_cpu / seconds;
        state.counters["load_cpu_pct"] = 100.0 * client_cpu / seconds;
        state.counters["server_us_per_msg"] = 1e6 * server_cpu / messages;
        state.counters["skipped"] = static_cast<double>(counters.skipped);
    }
}

void echo_arguments(benchmark::internal::Benchmark* b) {
    for (int kind : {0, 1})
        for (int size : {64, 4096})
            for (int inflight : {1, 16}) b->Args({kind, size, inflight, 100, 0});
    // Fixed rates every peer sustains, for CPU time per message.
    for (int kind : {0, 1})
        for (int size : {64, 4096}) b->Args({kind, size, 1, 100, 50'000});
}
BENCHMARK(BM_echo)->Apply(echo_arguments)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
