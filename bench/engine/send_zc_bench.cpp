// Where does a zero-copy send (IORING_OP_SEND_ZC from a registered buffer)
// beat copying into the send queue? The sender streams messages of one size
// to a receiver process on the other CPU that only drains; each run reports
// throughput and the sender's CPU time per byte.
//
// Arguments: message size, mode (0 = copied send, 1 = SEND_ZC from a
// registered buffer).
#include <cnetmod/engine/engine.hpp>

#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <vector>

using namespace cnetmod;
using namespace std::chrono_literals;

namespace {

const std::vector<int> usable_cpus = runtime::allowed_cpus();

void pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(usable_cpus[static_cast<std::size_t>(cpu) % usable_cpus.size()], &set);
    ::sched_setaffinity(0, sizeof set, &set);
}

double own_cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// A drain-only receiver in a child process on the other CPU.
struct receiver_process {
    pid_t pid = -1;
    std::uint16_t port = 0;
    receiver_process() {
        int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        ::listen(lfd, 16);
        socklen_t len = sizeof addr;
        ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
        port = ntohs(addr.sin_port);
        pid = ::fork();
        if (pid == 0) {
            pin_to_cpu(1);
            int c = ::accept(lfd, nullptr, nullptr);
            std::vector<char> buf(1 << 20);
            while (::recv(c, buf.data(), buf.size(), 0) > 0) {
            }
            std::_Exit(0);
        }
        ::close(lfd);
    }
    ~receiver_process() {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
};

void BM_send(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const bool zero_copy = state.range(1) == 1;
    state.SetLabel(zero_copy ? "SEND_ZC registered" : "copied send");
    receiver_process receiver;
    pin_to_cpu(0);
    io_context ctx({.registered_buffer_count = 16,
                    .registered_buffer_size = 1024 * 1024,
                    .send_zc_threshold = zero_copy ? 0 : SIZE_MAX});
    const std::vector<std::byte> payload(size, std::byte{'z'});
    for (auto _ : state) {
        double bytes = 0, seconds = 0, cpu = 0;
        auto run = [&]() -> task<void> {
            auto s = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(receiver.port));
            auto send_for = [&](std::chrono::nanoseconds d) -> task<std::uint64_t> {
                std::uint64_t sent = 0;
                const auto end = std::chrono::steady_clock::now() + d;
                while (std::chrono::steady_clock::now() < end) {
                    if (zero_copy) {
                        auto buf = ctx.acquire_registered_buffer();
                        if (!buf) {  // all 16 in flight: wait for the kernel to let one go
                            co_await s.drain();
                            co_await yield(ctx);
                            continue;
                        }
                        buf->resize(size);
                        s.queue(std::move(*buf));
                    } else {
                        s.queue(payload);
                    }
                    sent += size;
                    if (s.queued_bytes() >= 4 * 1024 * 1024) co_await s.drain();
                }
                co_return sent;
            };
            co_await send_for(200ms);  // warm up
            const double c0 = own_cpu_seconds();
            const auto t0 = std::chrono::steady_clock::now();
            bytes = static_cast<double>(co_await send_for(2s));
            seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            cpu = own_cpu_seconds() - c0;
            s.abort();
        };
        sync_wait(ctx, run());
        state.SetIterationTime(seconds);
        state.counters["MB_per_s"] = bytes / seconds / 1e6;
        state.counters["sender_ns_per_KiB"] = 1e9 * cpu / (bytes / 1024);
    }
}

void send_arguments(benchmark::internal::Benchmark* b) {
    for (long size : {4096L, 16384L, 65536L, 262144L, 1048576L})
        for (long mode : {0L, 1L}) b->Args({size, mode});
}
BENCHMARK(BM_send)->Apply(send_arguments)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
