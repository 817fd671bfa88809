// permessage-deflate's message codec (libdeflate) per level, on three
// payloads: ~100-byte JSON chat messages, a 16 KiB JSON array of them, and
// 16 KiB of random bytes. Throughput counts uncompressed bytes; `ratio` is
// uncompressed / sent bytes (a message that would not shrink is sent plain),
// `plain` the share of messages sent uncompressed.
//
//   build/bench/proto_deflate_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

using namespace cnetmod::ws;

namespace {

enum payload_kind { chat_messages, json_array, random_bytes };
constexpr const char* kind_names[] = {"chat ~100 B", "JSON 16 KiB", "random 16 KiB"};

std::string chat_message(unsigned i) {
    static constexpr const char* names[] = {"alice", "bob", "carol", "dave", "erin"};
    static constexpr const char* texts[] = {"hello everyone", "is the build green?",    "lunch at noon?",
                                            "ship it",        "see the logs on node 3", "brb, meeting"};
    return R"({"type":"chat","name":")" + std::string(names[i % 5]) + R"(","text":")" + texts[(i * 7) % 6] + " (" +
           std::to_string(i * 37 % 1009) + ")\",\"ts\":" + std::to_string(1700000000 + i * 17) + "}";
}

std::vector<std::string> payloads(payload_kind kind) {
    std::vector<std::string> out;
    if (kind == chat_messages) {
        for (unsigned i = 0; i < 256; ++i) out.push_back(chat_message(i));
    } else if (kind == json_array) {
        std::string array = "[";
        for (unsigned i = 0; array.size() < (16 << 10) - 120; ++i) array += chat_message(i) + ",";
        array.back() = ']';
        out.push_back(std::move(array));
    } else {
        std::mt19937 rng(42);
        std::string bytes(16 << 10, '\0');
        for (auto& c : bytes) c = static_cast<char>(rng());
        out.push_back(std::move(bytes));
    }
    return out;
}

std::span<const std::byte> as_bytes(const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

void set_labels(benchmark::State& state, const std::vector<std::string>& messages, int level) {
    std::size_t in = 0, sent = 0, plain = 0;
    std::string out;
    for (const auto& m : messages) {
        out.clear();
        const auto n = compress_message(as_bytes(m), level, out);
        in += m.size();
        sent += n ? n : m.size();
        plain += n == 0;
    }
    state.counters["ratio"] = static_cast<double>(in) / static_cast<double>(sent);
    state.counters["plain"] = static_cast<double>(plain) / static_cast<double>(messages.size());
    state.SetLabel(kind_names[state.range(0)]);
}

void BM_compress(benchmark::State& state) {
    const auto messages = payloads(static_cast<payload_kind>(state.range(0)));
    const int level = static_cast<int>(state.range(1));
    std::string out;
    std::size_t bytes = 0, i = 0;
    for (auto _ : state) {
        const auto& m = messages[i++ % messages.size()];
        out.clear();
        benchmark::DoNotOptimize(compress_message(as_bytes(m), level, out));
        bytes += m.size();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    set_labels(state, messages, level);
}

void BM_decompress(benchmark::State& state) {
    const auto kind = static_cast<payload_kind>(state.range(0));
    const int level = static_cast<int>(state.range(1));
    std::vector<std::string> compressed;
    std::vector<std::size_t> sizes;
    for (const auto& m : payloads(kind)) {
        std::string c;
        if (compress_message(as_bytes(m), level, c) == 0) continue;  // sent plain: nothing to inflate
        compressed.push_back(std::move(c));
        sizes.push_back(m.size());
    }
    if (compressed.empty()) {
        state.SkipWithError("incompressible: every message is sent plain");
        return;
    }
    std::string out;
    std::size_t bytes = 0, i = 0;
    for (auto _ : state) {
        const auto k = i++ % compressed.size();
        out.clear();
        if (decompress_message(as_bytes(compressed[k]), 1 << 20, out) != inflate_status::ok) {
            state.SkipWithError("inflate failed");
            return;
        }
        bytes += sizes[k];
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    set_labels(state, payloads(kind), level);
}

BENCHMARK(BM_compress)->ArgNames({"payload", "level"})->ArgsProduct({{0, 1, 2}, {1, 3, 6, 9, 12}});
BENCHMARK(BM_decompress)->ArgNames({"payload", "level"})->ArgsProduct({{0, 1}, {1, 3, 6, 9, 12}});

}  // namespace

BENCHMARK_MAIN();
