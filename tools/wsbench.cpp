// wsbench: a load generator for any WebSocket server, on cnetmod's client.
//
// Modes: echo (closed loop with N messages in flight per connection, or open
// loop at a fixed rate with latency measured from each message's intended
// send time, so that a stalled server cannot hide behind a slowed client),
// connect (a storm of handshakes), and broadcast (publishers send, every
// other connection receives; latency from publish to each receipt).
//
// Every echoed payload is checked byte for byte. The load must cost wsbench
// far less than it costs the server, so echo and broadcast connections do
// not go through ws::connection: after ws::handshake, each connection is its
// stream's reader (a read_waiter, no coroutine), called once per batch of
// received bytes, in which a frame_reader finds every message in place and
// the replies are built, masked, straight into the send queue; all of a loop
// turn's frames leave in one system call per socket. Nothing is allocated
// per message and the clock is read once per loop turn. wsbench measures
// its own CPU share and says when it was the bottleneck; with --server-pid
// it reports the server's CPU per message, and with --metrics-url the
// change in the server's Prometheus counters over the run.
#include "wsbench/frame_reader.hpp"
#include "wsbench/server_metrics.hpp"
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/mask.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>
#include <x86intrin.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace cnetmod;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------- time

// Nanoseconds on CLOCK_MONOTONIC (the clock of cnetmod's deadlines), read
// from the TSC when it is invariant: a few ns per reading instead of ~20.
class clock_ns {
public:
    static void calibrate() {
        std::ifstream cpuinfo("/proc/cpuinfo");
        std::string line;
        bool constant = false, nonstop = false;
        while (std::getline(cpuinfo, line)) {
            if (line.rfind("flags", 0) != 0) continue;
            constant = line.find(" constant_tsc") != std::string::npos;
            nonstop = line.find(" nonstop_tsc") != std::string::npos;
            break;
        }
        if (!constant || !nonstop) return;
        const auto t0 = steady();
        const auto c0 = __rdtsc();
        std::this_thread::sleep_for(20ms);
        const auto t1 = steady();
        const auto c1 = __rdtsc();
        scale_ = static_cast<double>(t1 - t0) / static_cast<double>(c1 - c0);
        base_tsc_ = c1;
        base_ns_ = t1;
        use_tsc_ = true;
    }
    static std::uint64_t now() noexcept {
        if (use_tsc_) return base_ns_ + static_cast<std::uint64_t>(static_cast<double>(__rdtsc() - base_tsc_) * scale_);
        return steady();
    }
    static std::uint64_t steady() noexcept {
        return static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(deadline::clock::now().time_since_epoch()).count());
    }
    static deadline at(std::uint64_t ns) noexcept {
        return deadline{deadline::clock::time_point(std::chrono::nanoseconds(ns))};
    }

private:
    static inline bool use_tsc_ = false;
    static inline double scale_ = 1.0;
    static inline std::uint64_t base_tsc_ = 0;
    static inline std::uint64_t base_ns_ = 0;
};

// ---------------------------------------------------------------- counting

// A counter written by one thread and read by any: a plain increment, no
// locked instruction, and a well-defined read from the reporting thread.
struct counter {
    std::atomic<std::uint64_t> v{0};
    void add(std::uint64_t n = 1) noexcept {
        v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

// A high-dynamic-range histogram of nanoseconds: 128 linear buckets per
// power of two, so every value is kept within 0.8 %, from 1 ns to hours,
// in fixed memory and with one increment per value.
class histogram {
public:
    static constexpr int sub_bits = 7;
    static constexpr std::size_t sub_count = std::size_t{1} << sub_bits;
    static constexpr std::size_t bucket_count = (64 - sub_bits + 1) * sub_count;

    histogram() : counts_(bucket_count) {}

    void record(std::uint64_t v) noexcept {
        auto& c = counts_[index(v)];
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (v > max_.load(std::memory_order_relaxed)) max_.store(v, std::memory_order_relaxed);
        sum_.store(sum_.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    }

    // Adds this histogram's counts into a summary.
    void add_to(std::vector<std::uint64_t>& counts, std::uint64_t& max, long double& sum) const {
        for (std::size_t i = 0; i < bucket_count; ++i) counts[i] += counts_[i].load(std::memory_order_relaxed);
        max = std::max(max, max_.load(std::memory_order_relaxed));
        sum += static_cast<long double>(sum_.load(std::memory_order_relaxed));
    }

    static std::size_t index(std::uint64_t v) noexcept {
        if (v < sub_count) return static_cast<std::size_t>(v);
        const int e = 63 - __builtin_clzll(v);
        const int shift = e - sub_bits;
        return (static_cast<std::size_t>(shift + 1) << sub_bits) + static_cast<std::size_t>((v >> shift) - sub_count);
    }
    static std::uint64_t lower(std::size_t i) noexcept {
        const std::size_t g = i >> sub_bits;
        const std::uint64_t m = i & (sub_count - 1);
        return g == 0 ? m : (m + sub_count) << (g - 1);
    }

private:
    std::vector<std::atomic<std::uint64_t>> counts_;
    std::atomic<std::uint64_t> max_{0};
    std::atomic<std::uint64_t> sum_{0};
};

struct summary {
    std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(histogram::bucket_count);
    std::uint64_t max = 0;
    long double sum = 0;

    std::uint64_t total() const {
        std::uint64_t n = 0;
        for (auto c : counts) n += c;
        return n;
    }
    // The value at percentile p (0..100): the middle of its bucket, never above the maximum.
    double percentile(double p) const {
        const std::uint64_t n = total();
        if (n == 0) return 0;
        const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(p / 100.0 * n)));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts.size(); ++i) {
            seen += counts[i];
            if (seen >= rank) {
                const double lo = static_cast<double>(histogram::lower(i));
                const double hi = static_cast<double>(histogram::lower(i + 1));
                return std::min((lo + hi) / 2, static_cast<double>(max));
            }
        }
        return static_cast<double>(max);
    }
    double mean() const {
        const auto n = total();
        return n ? static_cast<double>(sum / n) : 0;
    }
};

// ---------------------------------------------------------------- settings

// Echo messages read from --payload-file: its non-empty lines, without
// their line ends, back to back. Connection i starts at line i * count /
// connections (so that connections send different streams, as the rooms of
// a chat would) and takes the next line for each message, round the file.
struct payload_lines {
    std::vector<std::byte> bytes;
    std::vector<std::size_t> starts{0};  // line k is bytes [starts[k], starts[k + 1])
    std::size_t count() const noexcept { return starts.size() - 1; }
    std::span<const std::byte> line(std::uint64_t k) const noexcept {
        const std::size_t i = static_cast<std::size_t>(k % count());
        return std::span<const std::byte>(bytes).subspan(starts[i], starts[i + 1] - starts[i]);
    }
    std::size_t longest() const noexcept {
        std::size_t n = 0;
        for (std::size_t i = 0; i < count(); ++i) n = std::max(n, starts[i + 1] - starts[i]);
        return n;
    }
    double mean_size() const noexcept { return count() ? static_cast<double>(bytes.size()) / count() : 0; }
};

// Reads `path`'s lines; throws std::runtime_error naming the file when it cannot be read or has none.
std::shared_ptr<const payload_lines> read_payload_lines(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open --payload-file " + path);
    auto lines = std::make_shared<payload_lines>();
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        const auto* b = reinterpret_cast<const std::byte*>(line.data());
        lines->bytes.insert(lines->bytes.end(), b, b + line.size());
        lines->starts.push_back(lines->bytes.size());
    }
    if (lines->count() == 0) throw std::runtime_error("--payload-file " + path + " has no non-empty line");
    return lines;
}

struct config {
    std::string url;
    std::string publish_url;  // broadcast: where the publishers connect (default: url)
    std::string mode = "echo";
    unsigned connections = 100;
    double duration = 10;
    std::uint64_t messages = 0;
    std::size_t size = 32;
    bool binary = false;
    unsigned inflight = 1;
    double rate = 0;
    unsigned threads = 1;
    bool deflate = false;
    bool no_takeover = false;  // --deflate without context takeover
    int window_bits = 15;
    std::size_t deflate_threshold = 1024;  // without takeover, messages from this size go compressed
    int deflate_level = 6;                 // what wsbench compresses its own messages with
    std::string payload_file;
    std::shared_ptr<const payload_lines> lines;  // --payload-file's messages, or none: the pattern
    double hold_idle = 0;                        // seconds every connection stays open and silent after the load
    bool deflate_negotiated = false;             // what the probe connection found
    std::string ca_file;                         // wss://: trust this CA (PEM) instead of the system store
    bool insecure = false;                       // wss://: do not verify the server's certificate
    unsigned publishers = 1;
    int server_pid = 0;
    std::string metrics_url;  // the server's Prometheus metrics, read before and after the run
    bool spin = false;
    bool json = false;
    bool quiet = false;
    double connect_timeout = 10;
    double drain_timeout = 3;
};

// Payload layout: an 8-character sequence number (6 bits per character,
// '0' + value, so '0'..'o': printable, and text payloads stay UTF-8), then
// in broadcast mode a 4-character publisher id and a 12-character send
// time; the rest a pattern.
constexpr std::size_t seq_chars = 8;
constexpr std::size_t broadcast_header = 8 + 4 + 12;
constexpr std::uint8_t digit_zero = '0';

void put_number(std::byte* out, std::size_t chars, std::uint64_t v) noexcept {
    for (std::size_t i = chars; i-- > 0;) {
        out[i] = static_cast<std::byte>(digit_zero + (v & 63));
        v >>= 6;
    }
}

std::optional<std::uint64_t> get_number(const std::byte* in, std::size_t chars) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < chars; ++i) {
        const auto d = static_cast<std::uint8_t>(std::to_integer<std::uint8_t>(in[i]) - digit_zero);
        if (d >= 64) return std::nullopt;
        v = (v << 6) | d;
    }
    return v;
}

// The 8 characters put_number(out, seq_chars, seq) writes, as one word to
// store or compare: the low 48 bits spread 6 to a byte in three steps,
// the digit added to every byte at once, most significant first.
constexpr std::uint64_t sequence_word(std::uint64_t seq) noexcept {
    std::uint64_t t = ((seq >> 24 & 0xFFFFFF) << 32) | (seq & 0xFFFFFF);
    t = ((t & 0x00FFF00000FFF000) << 4) | (t & 0x00000FFF00000FFF);
    t = ((t & 0x0FC00FC00FC00FC0) << 2) | (t & 0x003F003F003F003F);
    return __builtin_bswap64(t + 0x0101010101010101 * digit_zero);
}

// The word of `seq` from the word of seq - 1: the last character + 1,
// unless that carries (one sequence number in 64).
constexpr std::uint64_t next_sequence_word(std::uint64_t previous, std::uint64_t seq) noexcept {
    return (seq & 63) != 0 ? previous + (std::uint64_t{1} << 56) : sequence_word(seq);
}

// Equal bytes: short runs compared a word at a time, inline; long ones by memcmp.
inline bool same_bytes(const std::byte* a, const std::byte* b, std::size_t n) noexcept {
    if (n > 64) return std::memcmp(a, b, n) == 0;
    std::uint64_t diff = 0;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t x, y;
        std::memcpy(&x, a + i, 8);
        std::memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    for (; i < n; ++i) diff |= std::to_integer<std::uint64_t>(a[i] ^ b[i]);
    return diff == 0;
}

// What every connection asks for: handshake timeout, compression, TLS trust.
ws::options client_options(const config& cfg) {
    ws::options o;
    o.handshake_timeout = std::chrono::milliseconds(static_cast<long>(cfg.connect_timeout * 1000));
    o.enable_compression = cfg.deflate;
    o.compression_context_takeover = !cfg.no_takeover;
    o.compression_window_bits = cfg.window_bits;
    o.tls.ca_file = cfg.ca_file;
    o.tls.verify = !cfg.insecure;
    return o;
}

std::vector<std::byte> make_payload(std::size_t size, unsigned salt) {
    std::vector<std::byte> p(size);
    for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::byte>('a' + (i * 7 + salt) % 26);
    return p;
}

constexpr std::size_t ring_size = 1024;  // messages in flight per connection, at most

// ---------------------------------------------------------------- frames out

// Client masking keys (RFC 6455 §5.3: a fresh, unpredictable key for every
// frame): wyrand, one per thread, seeded from the OS; a few cycles a key.
class mask_keys {
public:
    mask_keys() {
        if (::getrandom(&state_, sizeof state_, 0) != sizeof state_)
            state_ = clock_ns::steady() ^ 0x9E3779B97F4A7C15ull;
    }
    std::uint32_t next() noexcept {
        state_ += 0xA0761D6478BD642Full;
        const __uint128_t m = static_cast<__uint128_t>(state_) * (state_ ^ 0xE7037ED1A0B428DBull);
        return static_cast<std::uint32_t>((m >> 64) ^ m);
    }

private:
    std::uint64_t state_ = 0;
};

// The header of every frame a worker sends (one payload size, one
// opcode), encoded once; each frame gets its own masking key in it.
class frame_head {
public:
    frame_head(ws::opcode op, std::size_t payload_size) noexcept {
        const std::uint8_t no_key[4] = {0, 0, 0, 0};
        size_ = ws::encode_frame_header(bytes_, op, payload_size, true, false, no_key);
    }
    // Bytes of the whole frame: header, masking key, payload.
    std::size_t frame_size(std::size_t payload_size) const noexcept { return size_ + payload_size; }

    // Writes a whole frame of `payload` at `out` (frame_size bytes of room),
    // masked with `key` (RFC 6455 §5.3). A short payload is masked as it is
    // copied, 8 bytes at a time; a long one is copied, then masked with SIMD.
    void put(std::byte* out, std::span<const std::byte> payload, std::uint32_t key) const noexcept {
        // Header sizes with the key: 6, 8 or 14 bytes (7-, 16- or 64-bit length); fixed-size copies inline.
        if (size_ == 6)
            std::memcpy(out, bytes_, 2);
        else if (size_ == 8)
            std::memcpy(out, bytes_, 4);
        else
            std::memcpy(out, bytes_, 10);
        std::memcpy(out + size_ - 4, &key, 4);
        std::byte* body = out + size_;
        const std::size_t n = payload.size();
        if (n >= 64) {
            std::uint8_t mask[4];
            std::memcpy(mask, &key, 4);
            std::memcpy(body, payload.data(), n);
            ws::apply_mask(body, n, mask, 0);
            return;
        }
        const std::uint64_t m64 = std::uint64_t{key} | (std::uint64_t{key} << 32);  // the key's bytes, twice
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::uint64_t v;
            std::memcpy(&v, payload.data() + i, 8);
            v ^= m64;
            std::memcpy(body + i, &v, 8);
        }
        for (; i < n; ++i) body[i] = payload[i] ^ static_cast<std::byte>(m64 >> (8 * (i & 3)));
    }

private:
    std::byte bytes_[ws::max_header_size];
    std::size_t size_;
};

// The stream's send queue as a ws::machine writes frames into it (pongs,
// close frames, compressed messages), counting the frame bytes it takes.
struct queue_sink {
    tcp_stream& stream;
    std::uint64_t bytes = 0;
    std::span<std::byte> space(std::size_t n) {
        bytes += n;
        return stream.queue_space(n);
    }
};

// ---------------------------------------------------------------- the run

struct stats {
    counter sent, received, bytes, mismatches, errors, unexpected_closes, connect_failures, lost, handshakes,
        deliveries, published, overflows;
    // Frame bytes (headers, masks, payloads as sent: compressed or not) read from and queued on the
    // sockets, beside the messages' payload bytes; connections that agreed permessage-deflate, and of
    // those the ones whose server keeps its window (context takeover server to client).
    counter wire_received, wire_sent, payload_sent, deflate_connections, takeover_connections;
    std::atomic<int> server_window_bits{0};  // as agreed by the last connection with deflate
    histogram latency, connect;
};

std::atomic<bool> interrupted{false};  // SIGINT or SIGTERM

// What all threads share: the settings, the clock marks, the stop flag.
struct run_state {
    config cfg;
    std::atomic<bool> sending{true};
    std::atomic<std::uint64_t> start_ns{0};
    std::latch connected;
    std::latch go{1};
    std::atomic<unsigned> finished{0};
    std::atomic<unsigned> holding{0};  // threads whose connections are all idle (--hold-idle)
    explicit run_state(const config& c) : cfg(c), connected(static_cast<std::ptrdiff_t>(c.threads)) {}
};

class worker;

// One connection of an echo or broadcast run: the stream its handshake
// opened, its frame reader, and what the mode keeps. It is the stream's
// reader without a coroutine: the loop calls it when bytes arrive, and
// every message in them is handled in that one call.
struct conn : read_waiter {
    explicit conn(worker& w) : read_waiter(&conn::on_readable), owner(&w) {}
    static void on_readable(read_waiter* w);

    worker* owner;
    tcp_stream stream;
    wsbench::frame_reader reader;
    std::vector<std::byte> payload;
    std::vector<std::uint64_t> sent_at;  // ring of send (or intended send) times by sequence
    std::uint64_t send_seq = 0;
    std::uint64_t recv_seq = 0;
    std::uint64_t quota = UINT64_MAX;  // messages this connection may send (--messages)
    std::uint64_t first_line = 0;      // --payload-file: message s is line first_line + s
    unsigned global_index = 0;
    std::vector<std::uint64_t> next_from;  // broadcast receiver: next sequence expected per publisher
    bool open = false;                     // the handshake is done and nobody has closed
    bool live = false;                     // counted in the worker's live_: sending or awaiting echoes
    bool closing = false;                  // wsbench's close frame is out; counted in the worker's closing_
};

class worker {
public:
    worker(run_state& run, unsigned index, std::vector<unsigned> connection_ids)
        : run_(run), cfg_(run.cfg), index_(index), ids_(std::move(connection_ids)), ctx_(context_options(run.cfg)) {
        limits_.max_message_size = std::max<std::size_t>(cfg_.size * 2, 16 * 1024 * 1024);
        if (cfg_.lines) limits_.max_message_size = std::max(limits_.max_message_size, cfg_.lines->longest() * 2);
        limits_.compression_threshold = static_cast<std::uint32_t>(cfg_.deflate_threshold);
        limits_.compression_level = static_cast<std::int8_t>(cfg_.deflate_level);
        // No per-thread bound on zlib state: a load generator compresses every message its agreement lets
        // it (a bound would send some plain, which leaves the server's receive window unfilled).
        limits_.compression_memory_budget = 0;
    }

    stats& results() noexcept { return stats_; }
    // The loop thread's id, once it runs.
    int thread_id() const noexcept { return tid_.load(); }

    void operator()() {
        tid_.store(static_cast<int>(::gettid()));
        try {
            sync_wait(ctx_, co_invoke([this]() -> task<void> { co_await main(); }));
        } catch (const std::exception& e) {
            fmt::print(stderr, "wsbench: thread {}: {}\n", index_, e.what());
            stats_.errors.add();
        }
        run_.finished.fetch_add(1);
    }

    // The loop calls this once bytes, the end of the stream or an error arrived on `c`.
    void readable(conn& c) noexcept {
        try {
            read(c);
        } catch (const std::exception&) {
            stats_.errors.add();  // the stream failed under a send
            c.open = false;
            retire(c);
            end_closing(c);
        }
    }

private:
    static io_context_options context_options(const config& cfg) {
        io_context_options o;
        o.busy_poll = cfg.spin;
        return o;
    }

    ws::options ws_options() const {
        ws::options o = client_options(cfg_);
        o.max_message_size = limits_.max_message_size;
        o.send_high_water = SIZE_MAX / 4;  // wsbench bounds what it queues itself
        return o;
    }

    ws::opcode op() const noexcept { return cfg_.binary ? ws::opcode::binary : ws::opcode::text; }
    bool closed_loop() const noexcept { return closed_loop_; }
    bool sending() const noexcept { return run_.sending.load(std::memory_order_relaxed); }

    // The time the current loop turn's completions were reaped: one clock
    // reading per turn, shared by every message that turn delivered (they
    // were all available to wsbench from that moment).
    std::uint64_t turn_time() noexcept {
        const auto turn = ctx_.enter_calls();
        if (turn != stamp_turn_) {
            stamp_turn_ = turn;
            stamp_ = clock_ns::now();
        }
        return stamp_;
    }

    task<void> main() {
        if (cfg_.mode != "connect") co_await connect_all();
        run_.connected.count_down();
        run_.go.wait();  // the main thread sets the start time and lets every thread go at once
        const std::uint64_t start = run_.start_ns.load();
        if (cfg_.mode == "connect") {
            co_await storm(start);
        } else {
            live_ = 0;
            for (auto& c : conns_) {
                if (!c->open) continue;
                c->live = true;
                ++live_;
            }
            for (auto& c : conns_)
                if (c->open) begin(*c);
            if (cfg_.mode == "broadcast" || cfg_.rate > 0) spawn(ctx_, pacer(start));
            co_await wait_for_end();
            if (cfg_.hold_idle > 0) co_await hold_idle();
            co_await close_all();
        }
    }

    // ---- connecting ----

    task<void> connect_all() {
        const ws::options opts = ws_options();
        std::size_t next = 0;
        const std::size_t concurrency = 64;
        std::size_t running = 0;
        for (std::size_t i = 0; i < ids_.size(); ++i) {
            auto c = std::make_unique<conn>(*this);
            c->global_index = ids_[i];
            c->payload = make_payload(cfg_.size, cfg_.mode == "broadcast" ? 0 : ids_[i]);
            c->sent_at.assign(ring_size, 0);
            if (cfg_.lines) c->first_line = std::uint64_t{ids_[i]} * cfg_.lines->count() / cfg_.connections;
            if (cfg_.mode == "broadcast") c->next_from.assign(cfg_.publishers, 0);
            conns_.push_back(std::move(c));
        }
        if (cfg_.messages > 0 && cfg_.mode == "echo") {
            const std::uint64_t per = cfg_.messages / cfg_.connections, extra = cfg_.messages % cfg_.connections;
            for (auto& c : conns_) c->quota = per + (c->global_index < extra ? 1 : 0);
        }
        while (next < conns_.size() || running > 0) {
            while (running < concurrency && next < conns_.size()) {
                ++running;
                spawn(ctx_, connect_one(*conns_[next++], opts, running));
            }
            co_await async_sleep(ctx_, 1ms);
        }
    }

    void connect_failed(const std::exception& e) {
        stats_.connect_failures.add();
        if (stats_.connect_failures.get() == 1) fmt::print(stderr, "wsbench: a connection failed: {}\n", e.what());
    }

    // A connection and its handshake, timed and counted.
    task<void> connect_one(conn& c, const ws::options& opts, std::size_t& running) {
        const std::uint64_t t0 = clock_ns::now();
        try {
            // Broadcast with --publish-url: the publishers go to that server, the receivers to the URL.
            const bool publisher = cfg_.mode == "broadcast" && c.global_index < cfg_.publishers;
            const std::string& url = publisher && !cfg_.publish_url.empty() ? cfg_.publish_url : cfg_.url;
            ws::client_handshake h = co_await ws::handshake(ctx_, url, opts);
            stats_.connect.record(clock_ns::now() - t0);
            stats_.handshakes.add();
            c.stream = std::move(h.stream);
            c.reader = h.deflate ? wsbench::frame_reader(h.agreement, h.deflate_send) : wsbench::frame_reader();
            c.open = true;
            if (h.deflate) {
                stats_.deflate_connections.add();
                if (!h.agreement.server_no_context_takeover) stats_.takeover_connections.add();
                stats_.server_window_bits.store(h.agreement.server_max_window_bits, std::memory_order_relaxed);
            }
        } catch (const std::exception& e) {
            connect_failed(e);
        }
        --running;
    }

    // Connect mode: a ws::connection per handshake, closed at once.
    task<std::optional<ws::connection>> connect_timed(const ws::options& opts) {
        const std::uint64_t t0 = clock_ns::now();
        try {
            auto c = co_await ws::connect(ctx_, cfg_.url, opts);
            stats_.connect.record(clock_ns::now() - t0);
            stats_.handshakes.add();
            co_return std::optional<ws::connection>(std::move(c));
        } catch (const std::exception& e) {
            connect_failed(e);
        }
        co_return std::nullopt;
    }

    task<void> storm(std::uint64_t start) {
        const ws::options opts = ws_options();
        const std::uint64_t end = start + static_cast<std::uint64_t>(cfg_.duration * 1e9);
        live_ = ids_.size();
        for (std::size_t i = 0; i < ids_.size(); ++i) spawn(ctx_, storm_loop(opts, end));
        while (live_ > 0) co_await async_sleep(ctx_, 2ms);
    }

    task<void> storm_loop(const ws::options& opts, std::uint64_t end) {
        while (sending() && clock_ns::now() < end) {
            if (auto c = co_await connect_timed(opts)) {
                try {
                    co_await c->close(ws::close_code::normal);
                } catch (const std::exception&) {
                    stats_.connect_failures.add();  // a handshake cycle that did not complete
                }
            }
        }
        --live_;
    }

    // ---- reading ----

    // The start of the load on `c`: the first messages of a closed loop go
    // out, and `c` becomes its stream's reader.
    void begin(conn& c) {
        try {
            if (closed_loop() && sending()) send(c, std::min<std::uint64_t>(cfg_.inflight, c.quota), clock_ns::now());
        } catch (const std::exception&) {
            stats_.errors.add();
            c.open = false;
            retire(c);
            return;
        }
        if (done(c)) retire(c);
        // Bytes that came with the handshake's answer are read now: a waiting reader is woken only by new ones.
        if (!c.stream.writable_view().empty() || c.stream.at_end())
            readable(c);
        else
            c.stream.wait_readable(c);
    }

    // Every event in what `c` has received: messages are checked and timed,
    // pings answered, and a closed loop's replies go out as one batch.
    void read(conn& c) {
        if (c.stream.finish_wait_readable() != tcp_stream::read_status::data) return stream_ended(c);
        const std::uint64_t now = turn_time();
        tally t;
        t.expected = sequence_word(c.recv_seq);
        std::uint64_t wire = 0;
        bool reading = true;
        while (reading) {
            const std::span<std::byte> view = c.stream.writable_view();
            if (view.empty()) break;
            std::size_t used = 0;
            while (used < view.size()) {
                const ws::feed_result r = c.reader.feed(view.subspan(used), limits_);
                used += r.consumed;
                const ws::event_kind kind = r.event.kind;
                if (kind == ws::event_kind::message) {
                    if (broadcast_)
                        delivered(c, r.event.payload, now, t);
                    else
                        echoed(c, r.event, now, t);
                } else if (kind == ws::event_kind::close || kind == ws::event_kind::failure) {
                    reading = false;
                    break;
                } else if (kind == ws::event_kind::none) {
                    reading = used == view.size();  // a machine that takes nothing reads no more
                    break;
                }  // a ping: the pong is owed (write_owed below); a pong: nothing to do
            }
            c.stream.consume(used);
            wire += used;
        }
        stats_.received.add(t.received);
        stats_.bytes.add(t.bytes);
        stats_.wire_received.add(wire);
        if (c.reader.machine().owes_output()) {
            queue_sink sink{c.stream};
            c.reader.machine().write_owed(sink);  // pongs, and the reply to a close
            stats_.wire_sent.add(sink.bytes);
        }
        if (closed_loop() && t.echoes > 0 && sending() && c.open)
            send(c, std::min(t.echoes, c.quota - std::min(c.quota, c.send_seq)), now);
        if (!reading) return peer_closed(c);
        if (done(c)) retire(c);
        c.stream.wait_readable(c);
    }

    // An echo connection with nothing more to send and nothing more to wait for.
    bool done(const conn& c) const noexcept {
        return !broadcast_ && c.recv_seq >= c.send_seq && !(sending() && c.send_seq < c.quota);
    }

    // What one call of read() counts, added to the shared counters once.
    struct tally {
        std::uint64_t received = 0, bytes = 0, echoes = 0;
        std::uint64_t expected = 0;  // the sequence word the next echo should carry
    };

    // Checks an echo against what was sent, byte for byte, and times it.
    void echoed(conn& c, const ws::event& e, std::uint64_t now, tally& t) {
        if (c.recv_seq == c.send_seq) {
            stats_.mismatches.add();  // an answer to nothing
            return;
        }
        const auto m = e.payload;
        if (cfg_.lines) {
            // The line it answers; neighbouring lines differ, so this checks the order too.
            const auto line = cfg_.lines->line(c.first_line + c.recv_seq);
            if (m.size() != line.size() || e.op != op() || !same_bytes(m.data(), line.data(), line.size()))
                stats_.mismatches.add();
        } else if (!same_as_sent(c, e, t.expected)) {
            stats_.mismatches.add();
        }
        stats_.latency.record(now - c.sent_at[c.recv_seq & (ring_size - 1)]);
        ++c.recv_seq;
        t.expected = next_sequence_word(t.expected, c.recv_seq);
        ++t.received;
        ++t.echoes;
        t.bytes += m.size();
    }

    // The pattern payload with the sequence word `expected` (or, shorter than a word, the pattern alone).
    bool same_as_sent(const conn& c, const ws::event& e, std::uint64_t expected) const noexcept {
        const auto& p = c.payload;
        const auto m = e.payload;
        bool ok = m.size() == p.size() && e.op == op();
        if (ok && p.size() >= seq_chars) {
            std::uint64_t seq;
            std::memcpy(&seq, m.data(), seq_chars);
            ok = seq == expected && same_bytes(m.data() + seq_chars, p.data() + seq_chars, p.size() - seq_chars);
        } else if (ok) {
            ok = same_bytes(m.data(), p.data(), p.size());
        }
        return ok;
    }

    // A broadcast delivery: in order per publisher, the pattern intact, timed from its publish.
    void delivered(conn& c, std::span<const std::byte> m, std::uint64_t now, tally& t) {
        if (c.global_index < cfg_.publishers) return;  // publishers' own copies are not counted
        const auto* b = m.data();
        const auto seq = m.size() == cfg_.size ? get_number(b, seq_chars) : std::nullopt;
        const auto pub = seq ? get_number(b + seq_chars, 4) : std::nullopt;
        const auto sent = pub ? get_number(b + seq_chars + 4, 12) : std::nullopt;
        if (!sent || *pub >= cfg_.publishers ||
            std::memcmp(b + broadcast_header, c.payload.data() + broadcast_header, cfg_.size - broadcast_header) != 0) {
            stats_.mismatches.add();
            return;
        }
        auto& expected = c.next_from[*pub];
        if (*seq < expected) {
            stats_.mismatches.add();  // out of order or twice
            return;
        }
        stats_.lost.add(*seq - expected);  // skipped: never delivered
        expected = *seq + 1;
        stats_.latency.record(now - (run_.start_ns.load(std::memory_order_relaxed) + *sent));
        stats_.deliveries.add();
        ++t.received;
        t.bytes += m.size();
    }

    // ---- ending ----

    // The stream ended (or failed) without the server's close frame.
    void stream_ended(conn& c) {
        if (!c.closing) unexpected_close(c);
        c.open = false;
        retire(c);
        end_closing(c);
    }

    // The server's close frame (answered by now), or a frame that broke the
    // protocol (the machine's close frame with its code is out): TCP ends.
    void peer_closed(conn& c) {
        if (!c.closing) unexpected_close(c);
        c.open = false;
        retire(c);
        spawn(ctx_, finish_tcp(c));
    }

    void unexpected_close(conn& c) {
        if (!sending() && (broadcast_ || c.recv_seq >= c.send_seq)) return;  // the run was over for it
        stats_.unexpected_closes.add();
        if (!broadcast_) stats_.lost.add(c.send_seq - c.recv_seq);
    }

    // After the closing handshake: what is queued goes, then FIN, and the server's FIN (bounded).
    task<void> finish_tcp(conn& c) {
        try {
            co_await c.stream.close(timeout(2s));
        } catch (const std::exception&) {
        }
        end_closing(c);
    }

    void retire(conn& c) noexcept {
        if (!c.live) return;
        c.live = false;
        --live_;
    }

    void end_closing(conn& c) noexcept {
        if (!c.closing) return;
        c.closing = false;
        --closing_;
    }

    // ---- sending ----

    // Queues `n` messages on `c`, each sent (or due) at `at`: the payload
    // with its sequence number, masked, built in the send queue in batches.
    void send(conn& c, std::uint64_t n, std::uint64_t at) {
        stats_.sent.add(n);
        if (cfg_.lines) return send_lines(c, n, at);
        if (c.reader.machine().deflate_send()) return send_compressible(c, n, at);
        stats_.payload_sent.add(n * c.payload.size());
        stats_.wire_sent.add(n * head_.frame_size(c.payload.size()));
        // Locals: the frames' bytes are written through std::byte*, which may alias any member.
        const std::span<std::byte> payload(c.payload);
        const bool numbered = payload.size() >= seq_chars;
        const frame_head head = head_;
        const std::size_t frame = head.frame_size(payload.size());
        const std::uint64_t batch = std::max<std::size_t>(1, 64 * 1024 / frame);
        std::uint64_t* const sent_at = c.sent_at.data();
        mask_keys keys = keys_;
        std::uint64_t seq = c.send_seq;
        const std::uint64_t end = seq + n;
        std::uint64_t word = sequence_word(seq);
        while (seq < end) {
            const std::uint64_t last = seq + std::min(end - seq, batch);
            std::byte* out = c.stream.queue_space(frame * (last - seq)).data();
            for (; seq < last; ++seq, out += frame) {
                if (numbered) std::memcpy(payload.data(), &word, seq_chars);
                sent_at[seq & (ring_size - 1)] = at;
                head.put(out, payload, keys.next());
                word = next_sequence_word(word, seq + 1);
            }
            c.send_seq = seq;
        }
        keys_ = keys;
    }

    // permessage-deflate for sending: the machine compresses what is worth it.
    void send_compressible(conn& c, std::uint64_t n, std::uint64_t at) {
        queue_sink sink{c.stream};
        stats_.payload_sent.add(n * c.payload.size());
        for (; n > 0; --n) {
            if (c.payload.size() >= seq_chars) put_number(c.payload.data(), seq_chars, c.send_seq);
            c.sent_at[c.send_seq & (ring_size - 1)] = at;
            ++c.send_seq;
            c.reader.machine().send_message(sink, op(), c.payload, limits_);
        }
        stats_.wire_sent.add(sink.bytes);
    }

    // --payload-file: the connection's next lines, each framed (and
    // compressed, with deflate) by the machine. No sequence number goes in:
    // the echo is compared with the line it answers.
    void send_lines(conn& c, std::uint64_t n, std::uint64_t at) {
        queue_sink sink{c.stream};
        std::uint64_t payload = 0;
        for (; n > 0; --n) {
            const auto line = cfg_.lines->line(c.first_line + c.send_seq);
            c.sent_at[c.send_seq & (ring_size - 1)] = at;
            ++c.send_seq;
            payload += line.size();
            c.reader.machine().send_message(sink, op(), line, limits_);
        }
        stats_.payload_sent.add(payload);
        stats_.wire_sent.add(sink.bytes);
    }

    // Open loop: message k of this thread is due at start + k * interval, on
    // connection k mod n; it is timed from that moment, whenever it leaves.
    task<void> pacer(std::uint64_t start) {
        std::vector<conn*> senders;
        for (auto& c : conns_)
            if (c->open && (cfg_.mode != "broadcast" || c->global_index < cfg_.publishers)) senders.push_back(c.get());
        if (senders.empty()) co_return;
        const double total_rate = cfg_.rate > 0 ? cfg_.rate : 100.0;
        // This thread's share of the rate, in proportion to its senders.
        const unsigned all_senders = cfg_.mode == "broadcast" ? cfg_.publishers : cfg_.connections;
        const double interval = 1e9 * static_cast<double>(all_senders) / (total_rate * senders.size());
        std::uint64_t k = 0;
        while (sending()) {
            const auto due = start + static_cast<std::uint64_t>(static_cast<double>(k) * interval);
            const std::uint64_t now = clock_ns::now();
            if (due > now) {
                if (cfg_.spin)
                    co_await yield(ctx_);
                else
                    co_await async_sleep_until(ctx_, clock_ns::at(due));
                continue;
            }
            conn& c = *senders[k % senders.size()];
            ++k;
            if (!c.open) continue;
            try {
                if (cfg_.mode == "broadcast") {
                    publish(c, due);
                } else if (c.send_seq - c.recv_seq >= ring_size) {
                    stats_.overflows.add();  // the server is more than ring_size messages behind
                } else if (c.send_seq < c.quota) {
                    send(c, 1, due);
                }
            } catch (const std::exception&) {
                stats_.errors.add();
                c.open = false;
                retire(c);
            }
        }
    }

    void publish(conn& c, std::uint64_t due) {
        auto* p = c.payload.data();
        put_number(p + seq_chars, 4, c.global_index);
        put_number(p + seq_chars + 4, 12, due - run_.start_ns.load(std::memory_order_relaxed));
        send(c, 1, due);  // the sequence number goes in there
        stats_.published.add();
    }

    task<void> wait_for_end() {
        // Until the main thread stops sending, then until every echo is back
        // (or the drain timeout passes: what is missing then is lost).
        while (sending() && live_ > 0) co_await async_sleep(ctx_, 2ms);
        const std::uint64_t limit = clock_ns::now() + static_cast<std::uint64_t>(cfg_.drain_timeout * 1e9);
        if (cfg_.mode == "broadcast") {
            // Receivers read until the server has delivered what it will.
            std::uint64_t last = stats_.deliveries.get();
            std::uint64_t quiet_since = clock_ns::now();
            while (clock_ns::now() < limit) {
                co_await async_sleep(ctx_, 20ms);
                const auto now_count = stats_.deliveries.get();
                if (now_count != last) {
                    last = now_count;
                    quiet_since = clock_ns::now();
                } else if (clock_ns::now() - quiet_since > 300'000'000) {
                    break;
                }
            }
            co_return;
        }
        const auto awaited = [this] {
            return std::any_of(conns_.begin(), conns_.end(),
                               [](auto& c) { return c->open && c->recv_seq < c->send_seq; });
        };
        while (awaited() && clock_ns::now() < limit) co_await async_sleep(ctx_, 2ms);
        for (auto& c : conns_) {
            if (c->open && c->recv_seq < c->send_seq) stats_.lost.add(c->send_seq - c->recv_seq);
        }
    }

    // --hold-idle: every connection stays open and sends nothing (pings are
    // still answered), so that a server's per-connection memory can be
    // measured idle. Our own zlib streams go back first (two ticks: the
    // first marks them unused, the second releases them). The last thread
    // to get here says so on stderr, for the script that waits for it.
    task<void> hold_idle() {
        for (int tick = 0; tick < 2; ++tick)
            for (auto& c : conns_)
                if (c->open) c->reader.machine().compression_tick();
        if (run_.holding.fetch_add(1) + 1 == cfg_.threads) {
            fmt::print(stderr, "wsbench: holding connections idle for {:g} s\n", cfg_.hold_idle);
            std::fflush(stderr);
        }
        const std::uint64_t until = clock_ns::now() + static_cast<std::uint64_t>(cfg_.hold_idle * 1e9);
        while (clock_ns::now() < until && !interrupted.load()) co_await async_sleep(ctx_, 20ms);
    }

    task<void> close_all() {
        // Close frames go out together; each connection's reader sees the
        // server's answer and ends its TCP connection.
        for (auto& c : conns_) {
            if (!c->open) continue;
            c->open = false;
            try {
                queue_sink sink{c->stream};
                c->reader.machine().send_close(sink, ws::close_code::normal, "");
                stats_.wire_sent.add(sink.bytes);
                c->closing = true;
                ++closing_;
            } catch (const std::exception&) {
            }
        }
        const std::uint64_t limit = clock_ns::now() + 2'000'000'000;
        while (closing_ > 0 && clock_ns::now() < limit) co_await async_sleep(ctx_, 2ms);
        ctx_.stop();  // what is still open is reset as this thread's context goes
    }

    run_state& run_;
    const config& cfg_;
    unsigned index_;
    std::vector<unsigned> ids_;
    io_context ctx_;
    const bool broadcast_ = cfg_.mode == "broadcast";
    const bool closed_loop_ = cfg_.mode == "echo" && cfg_.rate <= 0;
    ws::machine_limits limits_;  // what every connection's machine consults
    mask_keys keys_;
    const frame_head head_{op(), cfg_.size};
    std::vector<std::unique_ptr<conn>> conns_;  // each is its stream's reader: never moves
    std::size_t live_ = 0;
    std::size_t closing_ = 0;
    std::uint64_t stamp_turn_ = UINT64_MAX;
    std::uint64_t stamp_ = 0;
    stats stats_;
    std::atomic<int> tid_{0};
};

void conn::on_readable(read_waiter* w) {
    auto* c = static_cast<conn*>(w);
    c->owner->readable(*c);
}

// ---------------------------------------------------------------- CPU time

// A process's CPU seconds (all its threads), user space and kernel apart.
struct process_cpu {
    double user = 0;
    double system = 0;
    double total() const { return user + system; }
};

// From /proc/PID/stat fields 14 and 15 (utime, stime), in clock ticks.
std::optional<process_cpu> process_cpu_seconds(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream rest(text.substr(close + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stoul(field);
        if (i == 15) stime = std::stoul(field);
    }
    const auto tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return process_cpu{static_cast<double>(utime) / tick, static_cast<double>(stime) / tick};
}

// This process's CPU seconds (all its threads): getrusage, whose split
// between user and system time is sampled at each scheduler tick (the
// total is exact); over a run of seconds the split is within a few percent.
process_cpu own_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    const auto seconds = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return process_cpu{seconds(u.ru_utime), seconds(u.ru_stime)};
}

// Seconds the load threads spent runnable but waiting for a CPU (the
// scheduler's run delay, /proc/self/task/TID/schedstat, second field; 0
// where the kernel does not keep it). Time a load thread was not waiting
// for the server is its CPU share plus this: on a machine whose cores other
// processes share, CPU share alone would hide that wsbench was the limit.
double run_delay_seconds(const std::vector<int>& threads) {
    std::uint64_t delay = 0;
    for (int tid : threads) {
        std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/schedstat");
        std::uint64_t running = 0, waiting = 0;
        if (f >> running >> waiting) delay += waiting;
    }
    return static_cast<double>(delay) / 1e9;
}

// ---------------------------------------------------------------- output

std::string with_commas(std::uint64_t v) {
    std::string s = std::to_string(v);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
    return s;
}

std::string duration_text(double ns) {
    if (ns < 1e3) return fmt::format("{:.0f} ns", ns);
    if (ns < 1e6) return fmt::format("{:.1f} µs", ns / 1e3);
    if (ns < 1e9) return fmt::format("{:.2f} ms", ns / 1e6);
    return fmt::format("{:.2f} s", ns / 1e9);
}

// An exception's text without the library's "cnetmod: " prefix, for a one-line error.
std::string plain_message(const std::exception& e) {
    std::string what = e.what();
    if (what.rfind("cnetmod: ", 0) == 0) what.erase(0, 9);
    return what;
}

// ---------------------------------------------------------------- server metrics

// Each of --metrics-url's two reads, outside the measured window.
constexpr std::chrono::milliseconds metrics_timeout{5000};

// --metrics-url's report: the run's change in every counter the server
// exposes, summed over cores, and figures from cnetmod's own families
// (null for a server without them).
struct server_report {
    wsbench::metrics_delta delta;

    static server_report of(wsbench::metrics_delta d) { return server_report{std::move(d)}; }

    std::optional<double> family(std::string_view name) const { return delta.family(name); }
    std::optional<double> series(const std::string& key) const {
        const auto it = delta.counters.find(key);
        return it == delta.counters.end() ? std::nullopt : std::optional<double>(it->second);
    }
    static std::optional<double> ratio(std::optional<double> a, std::optional<double> b, double scale = 1) {
        if (!a || !b || *b == 0) return std::nullopt;
        return *a * scale / *b;
    }
    std::optional<double> completions_per_turn() const {
        return ratio(family("cnetmod_completions_total"), family("cnetmod_loop_turns_total"));
    }
    std::optional<double> sqes_per_turn() const {
        return ratio(family("cnetmod_sqes_total"), family("cnetmod_loop_turns_total"));
    }
    // Per data message the server sent: per echo, per delivery in broadcast mode.
    std::optional<double> busy_us_per_message() const {
        return ratio(family("cnetmod_busy_seconds_total"), family("cnetmod_ws_messages_sent_total"), 1e6);
    }

    // Counts as JSON integers, other values (seconds, ratios) as numbers.
    static nlohmann::json number(double v) {
        if (v == std::floor(v) && std::abs(v) < 9e15) return nlohmann::json(static_cast<std::int64_t>(v));
        return nlohmann::json(v);
    }

    nlohmann::json json() const {
        const auto value = [](std::optional<double> v) { return v ? number(*v) : nlohmann::json(nullptr); };
        const auto all = [](const std::map<std::string, double>& m) {
            nlohmann::json j = nlohmann::json::object();
            for (const auto& [key, v] : m) j[key] = number(v);
            return j;
        };
        nlohmann::json j;
        j["messages_received"] = value(family("cnetmod_ws_messages_received_total"));
        j["messages_sent"] = value(family("cnetmod_ws_messages_sent_total"));
        j["message_bytes_received"] = value(family("cnetmod_ws_message_bytes_received_total"));
        j["message_bytes_sent"] = value(family("cnetmod_ws_message_bytes_sent_total"));
        j["compressed_messages_received"] = value(family("cnetmod_ws_compressed_messages_received_total"));
        j["compressed_messages_sent"] = value(family("cnetmod_ws_compressed_messages_sent_total"));
        j["socket_bytes_received"] = value(family("cnetmod_socket_received_bytes_total"));
        j["socket_bytes_sent"] = value(family("cnetmod_socket_sent_bytes_total"));
        j["handshakes_ok"] = value(series("cnetmod_ws_handshakes_total{result=\"ok\"}"));
        j["connections_accepted"] = value(family("cnetmod_http_connections_accepted_total"));
        j["loop_turns"] = value(family("cnetmod_loop_turns_total"));
        j["completions"] = value(family("cnetmod_completions_total"));
        j["sqes"] = value(family("cnetmod_sqes_total"));
        j["completions_per_turn"] = value(completions_per_turn());
        j["sqes_per_turn"] = value(sqes_per_turn());
        j["busy_seconds"] = value(family("cnetmod_busy_seconds_total"));
        j["busy_us_per_message"] = value(busy_us_per_message());
        j["backpressure_events"] = value(family("cnetmod_backpressure_events_total"));
        j["pubsub_deliveries"] = value(family("cnetmod_pubsub_deliveries_total"));
        j["pubsub_drops"] = value(family("cnetmod_pubsub_drops_total"));
        j["counters"] = all(delta.counters);
        j["gauges"] = all(delta.gauges);
        return j;
    }

    void print(const std::string& url) const {
        const auto count = [](std::optional<double> v) {
            return v ? with_commas(static_cast<std::uint64_t>(std::llround(std::max(*v, 0.0)))) : std::string("-");
        };
        const auto number = [](std::optional<double> v, const char* format) {
            return v ? fmt::format(fmt::runtime(format), *v) : std::string("-");
        };
        if (!family("cnetmod_loop_turns_total")) {
            fmt::print("  server       {} counters changed by {} (no cnetmod families; --json lists them)\n",
                       delta.counters.size(), url);
            return;
        }
        fmt::print("  server       the run's change at {}, summed over cores:\n", url);
        fmt::print("    messages   {} received, {} sent ({} B in, {} B out; compressed {} in, {} out)\n",
                   count(family("cnetmod_ws_messages_received_total")), count(family("cnetmod_ws_messages_sent_total")),
                   count(family("cnetmod_ws_message_bytes_received_total")),
                   count(family("cnetmod_ws_message_bytes_sent_total")),
                   count(family("cnetmod_ws_compressed_messages_received_total")),
                   count(family("cnetmod_ws_compressed_messages_sent_total")));
        fmt::print("    loop       {} turns, {} completions and {} SQEs per turn, busy {} s ({} µs per message sent)\n",
                   count(family("cnetmod_loop_turns_total")), number(completions_per_turn(), "{:.2f}"),
                   number(sqes_per_turn(), "{:.2f}"), number(family("cnetmod_busy_seconds_total"), "{:.3f}"),
                   number(busy_us_per_message(), "{:.2f}"));
        fmt::print(
            "    other      {} handshakes, {} connections accepted, {} backpressure events, {} pub/sub "
            "deliveries, {} drops\n",
            count(series("cnetmod_ws_handshakes_total{result=\"ok\"}")),
            count(family("cnetmod_http_connections_accepted_total")),
            count(family("cnetmod_backpressure_events_total")), count(family("cnetmod_pubsub_deliveries_total")),
            count(family("cnetmod_pubsub_drops_total")));
    }
};

// One quick connection before the run, so that a bad URL, a refused
// connection, an unreachable host or a refused handshake is one clear line.
// It also finds whether the server accepts permessage-deflate.
std::optional<std::string> probe(config& cfg) {
    try {
        io_context ctx;
        const ws::options o = client_options(cfg);
        sync_wait(ctx, co_invoke([&]() -> task<void> {
                      auto c = co_await ws::connect(ctx, cfg.url, o);
                      cfg.deflate_negotiated = c.compression();
                      co_await c.close(ws::close_code::normal);
                  }));
        return std::nullopt;
    } catch (const std::system_error& e) {
        std::string what = plain_message(e);
        // A refused handshake says what the server answered; the error
        // code's text after it ("Connection refused") would mislead.
        const std::string suffix = ": " + e.code().message();
        if (what.find("handshake") != std::string::npos && what.ends_with(suffix))
            what.resize(what.size() - suffix.size());
        return what;
    } catch (const std::exception& e) {
        return plain_message(e);
    }
}

}  // namespace

int main(int argc, char** argv) {
    config cfg;
    CLI::App app{
        "wsbench: load generator for WebSocket servers.\n"
        "  echo (default): each connection sends messages and checks every echo byte for byte;\n"
        "    closed loop (--inflight N per connection) or open loop (--rate R messages/s in all,\n"
        "    latency timed from each message's intended send time).\n"
        "  connect: handshakes per second (each connection connects, closes, again).\n"
        "  broadcast: the first --publishers connections publish at --rate, every other\n"
        "    connection counts deliveries and times each from its publish.\n"
        "Only point it at servers you run (loopback or your own network namespace)."};
    app.add_option("url", cfg.url, "ws://host:port/path")->required();
    app.add_option("-m,--mode", cfg.mode, "echo, connect or broadcast")
        ->check(CLI::IsMember({"echo", "connect", "broadcast"}))
        ->capture_default_str();
    app.add_option("-c,--connections", cfg.connections, "connections (concurrent handshake loops in connect mode)")
        ->check(CLI::Range(1u, 1'000'000u))
        ->capture_default_str();
    app.add_option("-d,--duration", cfg.duration, "seconds of load (the run stops by itself)")
        ->check(CLI::Range(0.1, 86'400.0))
        ->capture_default_str();
    app.add_option("-n,--messages", cfg.messages, "echo: stop after this many messages in all (instead of --duration)");
    app.add_option("-s,--size", cfg.size, "payload bytes per message")
        ->check(CLI::Range(std::size_t{0}, std::size_t{64} * 1024 * 1024))
        ->capture_default_str();
    app.add_flag("--binary", cfg.binary, "binary messages (default: text)");
    app.add_option("-i,--inflight", cfg.inflight, "closed loop: messages in flight per connection")
        ->check(CLI::Range(1u, static_cast<unsigned>(ring_size)))
        ->capture_default_str();
    app.add_option("-r,--rate", cfg.rate,
                   "open loop: messages per second in all (broadcast: publishes per second; default 100)");
    app.add_option("-t,--threads", cfg.threads, "load threads, one io_uring loop each")
        ->check(CLI::Range(1u, 256u))
        ->capture_default_str();
    app.add_flag("--deflate", cfg.deflate,
                 "offer permessage-deflate (RFC 7692); the payload pattern is highly compressible");
    app.add_flag("--no-context-takeover", cfg.no_takeover,
                 "--deflate: offer no context takeover both ways (each message compressed alone)");
    app.add_option("--window-bits", cfg.window_bits, "--deflate: the largest LZ77 window offered, log2 bytes, 8..15")
        ->check(CLI::Range(8, 15))
        ->capture_default_str();
    app.add_option("--deflate-threshold", cfg.deflate_threshold,
                   "--deflate without context takeover: messages from this many bytes go compressed")
        ->capture_default_str();
    app.add_option("--deflate-level", cfg.deflate_level,
                   "--deflate: the level wsbench compresses its messages with, 1..12 (zlib's, with context "
                   "takeover or a small window, at most 9); a low one keeps the load generator's cost down")
        ->check(CLI::Range(1, 12))
        ->capture_default_str();
    app.add_option("--payload-file", cfg.payload_file,
                   "echo: the messages are this file's non-empty lines, in turn (each connection from its own "
                   "place in the file; --size is not used); every echo is compared with its line");
    app.add_option("--hold-idle", cfg.hold_idle,
                   "after the load, keep every connection open and silent this many seconds before closing "
                   "(idle memory; stderr says when it begins; the rates then count the hold too)")
        ->check(CLI::Range(0.0, 86'400.0));
    app.add_option("--ca", cfg.ca_file, "wss://: trust this CA certificate (PEM) instead of the system store");
    app.add_flag("-k,--insecure", cfg.insecure, "wss://: do not verify the server's certificate");
    app.add_option("--publish-url", cfg.publish_url,
                   "broadcast: connect the publishers to this URL (another server sharing the topic, e.g. through "
                   "a broker) and the receivers to the first");
    app.add_option("-p,--publishers", cfg.publishers, "broadcast: publishing connections")
        ->check(CLI::Range(1u, 9999u))
        ->capture_default_str();
    app.add_option("--server-pid", cfg.server_pid,
                   "sample this process's CPU time: server CPU per message, user and system apart");
    app.add_option("--metrics-url", cfg.metrics_url,
                   "http://host:port/metrics: read the server's Prometheus counters before and after the run and "
                   "report their change, summed over cores");
    app.add_flag("--spin", cfg.spin, "busy-poll instead of sleeping in the kernel (latency runs; costs whole cores)");
    app.add_flag("--json", cfg.json, "print the results as JSON on stdout");
    app.add_flag("-q,--quiet", cfg.quiet, "no progress line");
    app.add_option("--connect-timeout", cfg.connect_timeout, "seconds for connect and handshake")
        ->capture_default_str();
    app.add_option("--drain-timeout", cfg.drain_timeout, "seconds to wait for the last echoes after the load stops")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    bool tls = false;
    try {
        tls = ws::parse_url(cfg.url).scheme == "wss";
    } catch (const std::exception& e) {
        fmt::print(stderr, "wsbench: bad URL \"{}\": {}\n", cfg.url, plain_message(e));
        return 2;
    }
    if (!cfg.publish_url.empty()) {
        if (cfg.mode != "broadcast") {
            fmt::print(stderr, "wsbench: --publish-url is for broadcast mode\n");
            return 2;
        }
        try {
            if ((ws::parse_url(cfg.publish_url).scheme == "wss") != tls) {
                fmt::print(stderr, "wsbench: --publish-url and the URL must both be ws:// or both wss://\n");
                return 2;
            }
        } catch (const std::exception& e) {
            fmt::print(stderr, "wsbench: bad --publish-url \"{}\": {}\n", cfg.publish_url, plain_message(e));
            return 2;
        }
    }
    std::optional<wsbench::http_url> metrics_url;
    if (!cfg.metrics_url.empty()) {
        try {
            metrics_url = wsbench::parse_http_url(cfg.metrics_url);
        } catch (const std::exception& e) {
            fmt::print(stderr, "wsbench: bad --metrics-url \"{}\": {}\n", cfg.metrics_url, e.what());
            return 2;
        }
    }
    if (!tls && (cfg.insecure || !cfg.ca_file.empty())) {
        fmt::print(stderr, "wsbench: --ca and --insecure are for wss:// URLs\n");
        return 2;
    }
    if (cfg.mode == "broadcast") {
        if (cfg.size < broadcast_header) {
            fmt::print(stderr, "wsbench: broadcast mode needs --size {} or more (sequence, publisher, time)\n",
                       broadcast_header);
            return 2;
        }
        if (cfg.publishers >= cfg.connections) {
            fmt::print(stderr, "wsbench: broadcast mode needs more --connections than --publishers\n");
            return 2;
        }
    }
    if (!cfg.payload_file.empty()) {
        if (cfg.mode != "echo") {
            fmt::print(stderr, "wsbench: --payload-file is for echo mode\n");
            return 2;
        }
        try {
            cfg.lines = read_payload_lines(cfg.payload_file);
        } catch (const std::exception& e) {
            fmt::print(stderr, "wsbench: {}\n", e.what());
            return 2;
        }
    }
    if (cfg.threads > cfg.connections) cfg.threads = cfg.connections;
    if (cfg.server_pid && !process_cpu_seconds(cfg.server_pid)) {
        fmt::print(stderr, "wsbench: --server-pid {}: no such process\n", cfg.server_pid);
        return 2;
    }

    net_init guard;
    clock_ns::calibrate();
    if (auto error = probe(cfg)) {
        fmt::print(stderr, "wsbench: {}\n", *error);
        return 1;
    }
    if (cfg.deflate && !cfg.deflate_negotiated && !cfg.quiet)
        fmt::print(stderr, "wsbench: the server declined permessage-deflate: messages go uncompressed\n");

    // The server's counters before the load connections open (after the probe's).
    std::optional<wsbench::exposition> metrics_before;
    if (metrics_url) {
        try {
            metrics_before = wsbench::parse_exposition(wsbench::http_get(*metrics_url, metrics_timeout));
        } catch (const std::exception& e) {
            fmt::print(stderr, "wsbench: --metrics-url {}: {}\n", cfg.metrics_url, e.what());
            return 1;
        }
    }

    std::signal(SIGINT, [](int) { interrupted.store(true); });
    std::signal(SIGTERM, [](int) { interrupted.store(true); });

    run_state run(cfg);
    std::vector<std::unique_ptr<worker>> workers;
    for (unsigned t = 0; t < cfg.threads; ++t) {
        std::vector<unsigned> ids;
        for (unsigned i = t; i < cfg.connections; i += cfg.threads) ids.push_back(i);
        workers.push_back(std::make_unique<worker>(run, t, std::move(ids)));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back(std::ref(*w));

    run.connected.wait();
    const std::uint64_t start = clock_ns::now();
    const process_cpu own0 = own_cpu_seconds();
    std::vector<int> load_threads;
    for (auto& w : workers) load_threads.push_back(w->thread_id());
    const double delay0 = run_delay_seconds(load_threads);
    // The server's CPU so far; negative when not asked for or the server is gone.
    auto sample_server = [&] {
        const process_cpu none{-1, -1};
        return cfg.server_pid ? process_cpu_seconds(cfg.server_pid).value_or(none) : none;
    };
    const process_cpu server0 = sample_server();
    run.start_ns.store(start);
    run.go.count_down();

    auto received_now = [&] {
        std::uint64_t n = 0, errors = 0;
        for (auto& w : workers) {
            auto& s = w->results();
            n += cfg.mode == "connect" ? s.handshakes.get() : s.received.get();
            errors += s.mismatches.get() + s.errors.get() + s.unexpected_closes.get() + s.connect_failures.get() +
                      s.lost.get() + s.overflows.get();
        }
        return std::pair{n, errors};
    };
    auto latency_summary = [&] {
        summary sum;
        for (auto& w : workers) w->results().latency.add_to(sum.counts, sum.max, sum.sum);
        return sum;
    };

    // Progress each second, until the duration is up (or the message count is done).
    const std::uint64_t planned_end = start + static_cast<std::uint64_t>(cfg.duration * 1e9);
    std::uint64_t last_count = 0, last_time = start, tick = start;
    int second = 0;
    for (;;) {
        const bool by_count = cfg.messages > 0 && cfg.mode == "echo";
        if (interrupted.load()) break;
        if (by_count ? run.finished.load() == cfg.threads : clock_ns::now() >= planned_end) break;
        if (run.finished.load() == cfg.threads) break;
        tick += 1'000'000'000;
        const std::uint64_t wake = by_count ? tick : std::min(tick, planned_end);
        while (clock_ns::now() < wake && !interrupted.load() && run.finished.load() < cfg.threads)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (clock_ns::now() < tick && (by_count || clock_ns::now() < planned_end)) continue;
        ++second;
        const auto [count, errors] = received_now();
        const std::uint64_t now = clock_ns::now();
        if (!cfg.quiet) {
            const double rate = static_cast<double>(count - last_count) * 1e9 / static_cast<double>(now - last_time);
            const char* what = cfg.mode == "connect"     ? "handshakes/s"
                               : cfg.mode == "broadcast" ? "deliveries/s"
                                                         : "msg/s";
            if (cfg.mode == "connect")
                fmt::print(stderr, "[{:3} s] {:>11} {}  errors {}\n", second,
                           with_commas(static_cast<std::uint64_t>(rate)), what, errors);
            else
                fmt::print(stderr, "[{:3} s] {:>11} {}  p99 {}  errors {}\n", second,
                           with_commas(static_cast<std::uint64_t>(rate)), what,
                           duration_text(latency_summary().percentile(99)), errors);
        }
        last_count = count;
        last_time = now;
    }
    // The measured window ends here: what arrived by now sets the rate.
    const std::uint64_t end = clock_ns::now();
    const process_cpu own1 = own_cpu_seconds();
    const double delay1 = run_delay_seconds(load_threads);
    const process_cpu server1 = sample_server();
    const auto [window_count, window_errors] = received_now();
    (void)window_errors;
    run.sending.store(false);
    for (auto& t : threads) t.join();
    // And after they closed: the delta covers the whole run, handshakes and drain included.
    std::optional<server_report> server_metrics;
    std::string metrics_error;
    if (metrics_before) {
        try {
            server_metrics = server_report::of(wsbench::difference(
                *metrics_before, wsbench::parse_exposition(wsbench::http_get(*metrics_url, metrics_timeout))));
        } catch (const std::exception& e) {
            metrics_error = e.what();
            fmt::print(stderr, "wsbench: --metrics-url {} after the run: {}\n", cfg.metrics_url, metrics_error);
        }
    }

    // ---- results ----
    const double seconds = static_cast<double>(end - start) / 1e9;
    std::uint64_t sent = 0, received = 0, bytes = 0, mismatches = 0, errors = 0, closes = 0, failures = 0, lost = 0,
                  handshakes = 0, published = 0, deliveries = 0, overflows = 0, wire_received = 0, wire_sent = 0,
                  payload_sent = 0, deflate_connections = 0, takeover_connections = 0;
    int server_window_bits = 0;
    summary latency, connect;
    for (auto& w : workers) {
        auto& s = w->results();
        sent += s.sent.get();
        received += s.received.get();
        bytes += s.bytes.get();
        mismatches += s.mismatches.get();
        errors += s.errors.get();
        closes += s.unexpected_closes.get();
        failures += s.connect_failures.get();
        lost += s.lost.get();
        handshakes += s.handshakes.get();
        published += s.published.get();
        deliveries += s.deliveries.get();
        overflows += s.overflows.get();
        wire_received += s.wire_received.get();
        wire_sent += s.wire_sent.get();
        payload_sent += s.payload_sent.get();
        deflate_connections += s.deflate_connections.get();
        takeover_connections += s.takeover_connections.get();
        server_window_bits = std::max(server_window_bits, s.server_window_bits.load());
        s.latency.add_to(latency.counts, latency.max, latency.sum);
        s.connect.add_to(connect.counts, connect.max, connect.sum);
    }
    if (cfg.mode == "broadcast") {
        // Every receiver should have every message: what did not arrive is lost.
        const std::uint64_t receivers = cfg.connections - cfg.publishers - failures;
        const std::uint64_t expected = published * receivers;
        lost = expected > deliveries ? expected - deliveries : 0;
    }
    const std::uint64_t total_errors = mismatches + errors + closes + failures + lost + overflows;
    const double rate = static_cast<double>(window_count) / seconds;
    const double mb = static_cast<double>(bytes) / seconds / 1e6;
    // Frame bytes per payload byte, each way (over the whole run, the drain included).
    const auto per_payload = [](std::uint64_t wire, std::uint64_t payload) {
        return payload ? static_cast<double>(wire) / static_cast<double>(payload) : 0.0;
    };
    const double wire_ratio_received = per_payload(wire_received, bytes);
    const double wire_ratio_sent = per_payload(wire_sent, payload_sent);
    const double cpu_share = (own1.total() - own0.total()) / seconds / cfg.threads;
    // Runnable but not running (other processes on wsbench's cores).
    const double wait_share = (delay1 - delay0) / seconds / cfg.threads;
    // Hardly ever idle (waiting for the server): wsbench was the limit.
    const bool saturated = cpu_share + wait_share >= 0.95;
    // wsbench's own CPU per message, user space (its own code and the library's) and kernel apart.
    const auto own_ns = [&](double s) { return window_count ? s * 1e9 / static_cast<double>(window_count) : 0.0; };
    const double user_ns = own_ns(own1.user - own0.user);
    const double system_ns = own_ns(own1.system - own0.system);
    // The server's CPU over the measured window, per message answered in it; the user-space part is
    // what the library costs, the system part what the kernel does for it (ticks: 10 ms resolution).
    std::optional<double> server_us, server_user_us, server_system_us, server_share;
    if (server0.user >= 0 && server1.user >= 0) {
        server_share = (server1.total() - server0.total()) / seconds;
        if (window_count > 0) {
            const auto per_message = [&](double s) { return s * 1e6 / static_cast<double>(window_count); };
            server_us = per_message(server1.total() - server0.total());
            server_user_us = per_message(server1.user - server0.user);
            server_system_us = per_message(server1.system - server0.system);
        }
    }

    if (cfg.json) {
        nlohmann::json j;
        j["url"] = cfg.url;
        if (!cfg.publish_url.empty()) j["publish_url"] = cfg.publish_url;
        j["mode"] = cfg.mode;
        j["connections"] = cfg.connections;
        j["size"] = cfg.size;
        if (cfg.lines) {
            j["payload_file"] = cfg.payload_file;
            j["payload_lines"] = cfg.lines->count();
            j["payload_mean_size"] = cfg.lines->mean_size();
        }
        j["binary"] = cfg.binary;
        j["inflight"] = cfg.rate > 0 ? 0u : cfg.inflight;
        j["rate_target"] = cfg.rate;
        j["threads"] = cfg.threads;
        j["tls"] = tls;
        j["deflate"] = cfg.deflate_negotiated;
        j["deflate_connections"] = deflate_connections;
        j["takeover_connections"] = takeover_connections;
        j["server_window_bits"] = server_window_bits;
        j["duration_s"] = seconds;
        j["sent"] = sent;
        j["received"] = received;
        j["messages_per_s"] = cfg.mode == "connect" ? 0.0 : rate;
        j["mb_per_s"] = mb;
        j["payload_bytes_received"] = bytes;
        j["wire_bytes_received"] = wire_received;
        j["wire_ratio_received"] = wire_ratio_received;
        j["payload_bytes_sent"] = payload_sent;
        j["wire_bytes_sent"] = wire_sent;
        j["wire_ratio_sent"] = wire_ratio_sent;
        j["latency_us"] = {{"p50", latency.percentile(50) / 1e3},
                           {"p90", latency.percentile(90) / 1e3},
                           {"p99", latency.percentile(99) / 1e3},
                           {"p999", latency.percentile(99.9) / 1e3},
                           {"max", static_cast<double>(latency.max) / 1e3},
                           {"mean", latency.mean() / 1e3},
                           {"count", latency.total()}};
        j["connect_ms"] = {{"p50", connect.percentile(50) / 1e6},
                           {"p90", connect.percentile(90) / 1e6},
                           {"p99", connect.percentile(99) / 1e6},
                           {"max", static_cast<double>(connect.max) / 1e6},
                           {"count", connect.total()}};
        if (cfg.mode == "connect") j["handshakes_per_s"] = rate;
        if (cfg.mode == "broadcast") {
            j["published"] = published;
            j["deliveries"] = deliveries;
            j["deliveries_per_s"] = rate;
        }
        j["errors"] = total_errors;
        j["mismatches"] = mismatches;
        j["unexpected_closes"] = closes;
        j["connect_failures"] = failures;
        j["lost"] = lost;
        j["overflows"] = overflows;
        j["client_cpu_share"] = cpu_share;
        j["client_user_ns_per_message"] = user_ns;
        j["client_system_ns_per_message"] = system_ns;
        j["client_cpu_wait_share"] = wait_share;
        j["client_saturated"] = saturated;
        j["server_pid"] = cfg.server_pid;
        j["server_cpu_us_per_message"] = server_us ? nlohmann::json(*server_us) : nlohmann::json(nullptr);
        j["server_cpu_share"] = server_share ? nlohmann::json(*server_share) : nlohmann::json(nullptr);
        j["server_user_us_per_message"] = server_user_us ? nlohmann::json(*server_user_us) : nlohmann::json(nullptr);
        j["server_system_us_per_message"] =
            server_system_us ? nlohmann::json(*server_system_us) : nlohmann::json(nullptr);
        if (server_metrics) {
            j["server_metrics"] = server_metrics->json();
            j["server_metrics"]["url"] = cfg.metrics_url;
        } else if (!metrics_error.empty()) {
            j["server_metrics"] = {{"url", cfg.metrics_url}, {"error", metrics_error}};
        }
        fmt::print("{}\n", j.dump(2));
    } else {
        const std::string shape =
            cfg.mode == "connect" ? fmt::format("connect storm, {} concurrent", cfg.connections)
            : cfg.mode == "broadcast"
                ? fmt::format("broadcast, {} publishers, {} receivers, {:.0f} publishes/s", cfg.publishers,
                              cfg.connections - cfg.publishers, cfg.rate > 0 ? cfg.rate : 100.0)
            : cfg.rate > 0 ? fmt::format("echo, {} connections, open loop at {:.0f} msg/s", cfg.connections, cfg.rate)
                           : fmt::format("echo, {} connections, {} in flight", cfg.connections, cfg.inflight);
        const std::string sizes = cfg.lines ? fmt::format("{} lines of {} (mean {:.0f} B)", cfg.lines->count(),
                                                          cfg.payload_file, cfg.lines->mean_size())
                                            : fmt::format("{} B", cfg.size);
        fmt::print("wsbench {}  {}, {} {}{}, {} thread{}, {:.1f} s\n\n", cfg.url, shape, sizes,
                   cfg.binary ? "binary" : "text", cfg.deflate_negotiated ? " (permessage-deflate)" : "", cfg.threads,
                   cfg.threads == 1 ? "" : "s", seconds);
        if (cfg.mode == "connect") {
            fmt::print("  handshakes   {} ({} /s)\n", with_commas(handshakes),
                       with_commas(static_cast<std::uint64_t>(rate)));
        } else if (cfg.mode == "broadcast") {
            fmt::print("  deliveries   {} of {} published messages ({} /s, {:.1f} MB/s)\n", with_commas(deliveries),
                       with_commas(published), with_commas(static_cast<std::uint64_t>(rate)), mb);
        } else {
            fmt::print("  messages     {} sent, {} received ({} msg/s, {:.1f} MB/s each way)\n", with_commas(sent),
                       with_commas(received), with_commas(static_cast<std::uint64_t>(rate)), mb);
        }
        if (cfg.mode != "connect" && deflate_connections > 0)
            fmt::print(
                "  wire         {:.3f} B per payload byte received, {:.3f} sent ({} of {} connections "
                "with context takeover from the server)\n",
                wire_ratio_received, wire_ratio_sent, with_commas(takeover_connections),
                with_commas(deflate_connections));
        if (cfg.mode != "connect")
            fmt::print("  latency      p50 {}   p90 {}   p99 {}   p99.9 {}   max {}\n",
                       duration_text(latency.percentile(50)), duration_text(latency.percentile(90)),
                       duration_text(latency.percentile(99)), duration_text(latency.percentile(99.9)),
                       duration_text(static_cast<double>(latency.max)));
        fmt::print("  connect      p50 {}   p90 {}   p99 {}   max {}   ({} handshakes)\n",
                   duration_text(connect.percentile(50)), duration_text(connect.percentile(90)),
                   duration_text(connect.percentile(99)), duration_text(static_cast<double>(connect.max)),
                   with_commas(connect.total()));
        fmt::print("  errors       {}   (mismatches {}, lost {}, unexpected closes {}, failed connects {}, other {})\n",
                   total_errors, mismatches, lost, closes, failures, errors + overflows);
        fmt::print("  wsbench CPU  {:.0f} % of {} core{} ({:.0f} ns user + {:.0f} ns system per {}){}{}\n",
                   cpu_share * 100, cfg.threads, cfg.threads == 1 ? "" : "s", user_ns, system_ns,
                   cfg.mode == "connect"     ? "handshake"
                   : cfg.mode == "broadcast" ? "delivery"
                                             : "message",
                   wait_share >= 0.01 ? fmt::format(", waiting for a CPU {:.0f} %", wait_share * 100) : "",
                   saturated ? "  -- SATURATED: these figures are wsbench's limit, not the server's" : "");
        if (server_us)
            fmt::print("  server CPU   {:.2f} µs per {} (user {:.2f}, system {:.2f}), {:.0f} % of a core (pid {})\n",
                       *server_us,
                       cfg.mode == "connect"     ? "handshake"
                       : cfg.mode == "broadcast" ? "delivery"
                                                 : "message",
                       *server_user_us, *server_system_us, *server_share * 100, cfg.server_pid);
        if (server_metrics) server_metrics->print(cfg.metrics_url);
    }
    if (!metrics_error.empty()) return 1;
    return total_errors == 0 ? 0 : 1;
}
