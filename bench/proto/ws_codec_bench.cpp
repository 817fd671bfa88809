// The WebSocket codec's hot loops: unmasking and UTF-8 validation per SIMD
// level beside the scalar path, on buffers that stay in L2, and the cost of
// parsing one frame header.
//
//   build/bench/proto_ws_codec_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/mask.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <benchmark/benchmark.h>

#include <random>
#include <vector>

using namespace cnetmod::ws;

namespace {

constexpr simd_level levels[] = {simd_level::scalar, simd_level::sse2, simd_level::avx2, simd_level::avx512};

void BM_unmask(benchmark::State& state) {
    const auto level = levels[state.range(0)];
    if (level > detected_simd_level()) {
        state.SkipWithError("not supported by this CPU");
        return;
    }
    state.SetLabel(std::string(to_string(level)));
    std::vector<std::byte> data(static_cast<std::size_t>(state.range(1)), std::byte{0x5A});
    const std::uint8_t key[4] = {1, 2, 3, 4};
    const auto fn = detail::mask_for(level);
    for (auto _ : state) {
        fn(data.data(), data.size(), key, 0);
        benchmark::DoNotOptimize(data.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * state.range(1));
}
BENCHMARK(BM_unmask)->ArgsProduct({{0, 1, 2, 3}, {16 * 1024, 256 * 1024}});

std::vector<std::uint8_t> text_of(bool ascii, std::size_t n) {
    std::vector<std::uint8_t> out;
    std::mt19937 rng(1);
    const char* pieces[] = {"a", "b", "c", " ", "é", "€", "😀", "ü"};
    while (out.size() < n) {
        const char* p = pieces[rng() % (ascii ? 4 : 8)];
        while (*p && out.size() < n) out.push_back(static_cast<std::uint8_t>(*p++));
    }
    while (!out.empty() && out.back() >= 0x80) out.pop_back();  // end on a character
    return out;
}

void BM_utf8(benchmark::State& state) {
    const auto level = levels[state.range(0)];
    if (level > detected_simd_level()) {
        state.SkipWithError("not supported by this CPU");
        return;
    }
    const bool ascii = state.range(1) == 1;
    state.SetLabel(std::string(to_string(level)) + (ascii ? " ascii" : " mixed"));
    const auto text = text_of(ascii, 64 * 1024);
    for (auto _ : state) {
        auto st = detail::utf8_at_level(utf8_validator::accept, text.data(), text.size(), level);
        benchmark::DoNotOptimize(st);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_utf8)->ArgsProduct({{0, 1, 2, 3}, {1, 0}});

void BM_parse_frame_header(benchmark::State& state) {
    // A stream of masked frames of mixed lengths, parsed one after another.
    std::vector<std::byte> stream;
    const std::uint8_t key[4] = {9, 8, 7, 6};
    for (std::uint64_t len : {5ull, 125ull, 126ull, 1000ull, 70000ull, 32ull, 0ull, 300ull}) {
        std::byte h[max_header_size];
        const auto n = encode_frame_header(h, opcode::binary, len, true, false, key);
        stream.insert(stream.end(), h, h + n);
    }
    std::size_t frames = 0;
    for (auto _ : state) {
        std::span<const std::byte> rest(stream);
        while (!rest.empty()) {
            auto r = parse_frame_header(rest);
            benchmark::DoNotOptimize(r);
            rest = rest.subspan(r.size);
            ++frames;
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(frames));
    state.counters["ns_per_frame"] =
        benchmark::Counter(static_cast<double>(frames), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_parse_frame_header);

}  // namespace

BENCHMARK_MAIN();
