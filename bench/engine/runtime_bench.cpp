// Cross-core messaging over IORING_OP_MSG_RING: a round trip (core 0 asks
// core 1 and is resumed with the answer), and one-way throughput with the
// sender batching many messages per loop turn.
#include <cnetmod/engine/engine.hpp>

#include <benchmark/benchmark.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

using namespace cnetmod;

namespace {

constexpr std::int64_t batch = 1000;

void BM_cross_core_round_trip(benchmark::State& state) {
    runtime rt({.cores = 2});
    rt.start();
    for (auto _ : state) {
        std::promise<void> done;
        rt.submit_to(0, [&] {
            spawn(rt.core(0), co_invoke([&]() -> task<void> {
                      for (std::int64_t i = 0; i < batch; ++i)
                          benchmark::DoNotOptimize(co_await rt.invoke_on(1, [] { return 1; }));
                      done.set_value();
                  }));
        });
        done.get_future().wait();
    }
    rt.stop();
    rt.wait();
    state.counters["round_trip_ns"] = benchmark::Counter(static_cast<double>(state.iterations() * batch) / 1e9,
                                                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_cross_core_round_trip)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_cross_core_one_way(benchmark::State& state) {
    const std::int64_t per_turn = state.range(0);
    runtime rt({.cores = 2});
    rt.start();
    std::atomic<std::int64_t> received{0};
    for (auto _ : state) {
        std::promise<void> done;
        const std::int64_t target = received.load() + batch * 100;
        rt.submit_to(0, [&] {
            spawn(rt.core(0), co_invoke([&]() -> task<void> {
                      for (std::int64_t i = 0; i < batch * 100; i += per_turn) {
                          for (std::int64_t k = 0; k < per_turn; ++k)
                              rt.submit_to(1, [&] {
                                  if (received.fetch_add(1, std::memory_order_relaxed) + 1 == target) done.set_value();
                              });
                          co_await yield(rt.core(0));  // end the turn: the batch goes out
                      }
                  }));
        });
        done.get_future().wait();
    }
    rt.stop();
    rt.wait();
    state.SetItemsProcessed(state.iterations() * batch * 100);
}
BENCHMARK(BM_cross_core_one_way)->Arg(1)->Arg(16)->Arg(256)->UseRealTime()->Unit(benchmark::kMillisecond);

// The VM's floor for waking a blocked thread and back: two threads
// ping-ponging through blocking eventfds, no io_uring at all.
void BM_eventfd_round_trip_baseline(benchmark::State& state) {
    const int ping = ::eventfd(0, 0), pong = ::eventfd(0, 0);
    std::atomic<bool> done{false};
    std::thread peer([&] {
        std::uint64_t v;
        while (::read(ping, &v, sizeof v) == sizeof v && !done.load()) {
            v = 1;
            [[maybe_unused]] auto n = ::write(pong, &v, sizeof v);
        }
    });
    for (auto _ : state) {
        std::uint64_t v = 1;
        [[maybe_unused]] auto n = ::write(ping, &v, sizeof v);
        n = ::read(pong, &v, sizeof v);
    }
    done = true;
    std::uint64_t v = 1;
    [[maybe_unused]] auto n = ::write(ping, &v, sizeof v);
    peer.join();
    ::close(ping);
    ::close(pong);
    state.counters["round_trip_ns"] = benchmark::Counter(static_cast<double>(state.iterations()) / 1e9,
                                                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_eventfd_round_trip_baseline)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
