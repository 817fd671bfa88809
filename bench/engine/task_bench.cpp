// Cost of the coroutine machinery: awaiting a task, spawning a detached one,
// and a suspend/resume through the loop's ready queue.
#include <cnetmod/engine/engine.hpp>

#include <benchmark/benchmark.h>

using namespace cnetmod;

namespace {

task<int> ready_value(int v) {
    co_return v;
}

task<void> noop() {
    co_return;
}

task<void> yielding(io_context& ctx) {
    co_await yield(ctx);
}

void BM_await_task(benchmark::State& state) {
    io_context ctx;
    auto body = [&]() -> task<void> {
        int sum = 0;
        for (auto _ : state) sum += co_await ready_value(1);
        benchmark::DoNotOptimize(sum);
    };
    sync_wait(ctx, body());
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_await_task);

void BM_spawn_completing_task(benchmark::State& state) {
    io_context ctx;
    auto body = [&]() -> task<void> {
        for (auto _ : state) spawn(ctx, noop());
        co_return;
    };
    sync_wait(ctx, body());
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_spawn_completing_task);

// spawn + suspend + resume by the loop + completion: the life of a request.
void BM_spawn_and_resume(benchmark::State& state) {
    io_context ctx;
    auto body = [&]() -> task<void> {
        for (auto _ : state) {
            spawn(ctx, yielding(ctx));
            co_await yield(ctx);  // lets the loop resume the spawned task
        }
    };
    sync_wait(ctx, body());
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_spawn_and_resume);

}  // namespace

BENCHMARK_MAIN();
