// The WebSocket codec's hot loops: unmasking and UTF-8 validation per SIMD
// level beside the scalar path, on buffers that stay in L2, UTF-8 validation
// of text in several scripts at message sizes from 16 B to 64 KiB, and the
// cost of parsing one frame header.
//
//   build/bench/proto_ws_codec_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/mask.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <random>
#include <string>
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

// Text by script, as a user's messages would carry it: words of each script
// with spaces and punctuation, cut at a character boundary near `n` bytes.
enum class script { ascii, cyrillic, cjk, emoji, mixed };
constexpr const char* script_names[] = {"ascii", "cyrillic", "cjk", "emoji", "mixed"};

std::string text_in(script s, std::size_t n) {
    static const std::vector<std::string> words[] = {
        {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "42,", "ok."},
        {"Привет", "мир,", "съешь", "же", "ещё", "этих", "мягких", "французских", "булок", "чаю."},
        {"東京都", "の天気は", "晴れです。", "我们", "在这里", "说中文，", "한국어", "텍스트"},
        {"😀", "🎉🎉", "👍🏽", "❤️", "🚀", "🇺🇦", "👩‍💻", "ok 😂"},
        {}};
    std::mt19937 rng(static_cast<unsigned>(s) + 1);
    std::string out;
    while (out.size() < n) {
        const auto& pool = s == script::mixed ? words[rng() % 4] : words[static_cast<int>(s)];
        out += pool[rng() % pool.size()];
        out += ' ';
    }
    std::size_t cut = n;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // a character starts at cut
    out.resize(cut);
    return out;
}

// The public whole-message check, as ws::machine runs it on an unfragmented text message.
void BM_utf8_script(benchmark::State& state) {
    const auto s = static_cast<script>(state.range(0));
    const auto text = text_in(s, static_cast<std::size_t>(state.range(1)));
    if (!is_valid_utf8(text)) {
        state.SkipWithError("generated text is not UTF-8");
        return;
    }
    state.SetLabel(std::string(script_names[state.range(0)]) + " " + std::to_string(text.size()) + " B");
    for (auto _ : state) {
        benchmark::DoNotOptimize(text.data());
        bool ok = is_valid_utf8(text);
        benchmark::DoNotOptimize(ok);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_utf8_script)->ArgsProduct({{0, 1, 2, 3, 4}, {16, 64, 200, 1024, 64 * 1024}});

// What detail::utf8_simd_threshold weighs, on short text: the state machine
// (range(0) == 0) against a call into simdjson (1).
void BM_utf8_short(benchmark::State& state) {
    const bool simd = state.range(0) == 1;
    const auto s = static_cast<script>(state.range(1));
    const auto text = text_in(s, static_cast<std::size_t>(state.range(2)));
    const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
    state.SetLabel(std::string(simd ? "simdjson " : "state machine ") + script_names[state.range(1)] + " " +
                   std::to_string(text.size()) + " B");
    for (auto _ : state) {
        benchmark::DoNotOptimize(p);
        const bool ok = simd ? simdjson::validate_utf8(text.data(), text.size())
                             : detail::utf8_scalar(utf8_validator::accept, p, text.size()) == utf8_validator::accept;
        benchmark::DoNotOptimize(ok);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_utf8_short)->ArgsProduct({{0, 1}, {0, 4}, {4, 8, 12, 16, 20, 24, 32, 48, 64}});

// A 64 KiB mixed-script message validated as it arrives in chunks of
// state.range(0) bytes, cut wherever the chunk ends (mid-character too).
void BM_utf8_fed(benchmark::State& state) {
    const auto text = text_in(script::mixed, 64 * 1024);
    const auto chunk = static_cast<std::size_t>(state.range(0));
    state.SetLabel("mixed, " + std::to_string(chunk) + " B chunks");
    for (auto _ : state) {
        utf8_validator v;
        bool ok = true;
        for (std::size_t i = 0; i < text.size() && ok; i += chunk) ok = v.feed(std::string_view(text).substr(i, chunk));
        ok = ok && v.complete();
        benchmark::DoNotOptimize(ok);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_utf8_fed)->Arg(1500)->Arg(16 * 1024);

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
