#include <cnetmod/engine/context_local.hpp>
#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/engine/timer.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/mask.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>
#include <cnetmod/proto/ws/prepared_message.hpp>
#include <cnetmod/proto/ws/pubsub.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <stdexcept>

namespace cnetmod::ws {
namespace detail {
namespace {

// A fast generator for client masking keys (wyrand), one per thread, seeded
// from the OS. RFC 6455 §5.3 asks for unpredictable keys; a per-thread
// stream from a random seed gives that at a few cycles per key.
struct mask_generator {
    std::uint64_t state;
    mask_generator() {
        if (::getrandom(&state, sizeof state, 0) != sizeof state)
            state = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(this)) ^ 0x9E3779B97F4A7C15ull;
    }
    std::uint32_t next() noexcept {
        state += 0xA0761D6478BD642Full;
        const __uint128_t m = static_cast<__uint128_t>(state) * (state ^ 0xE7037ED1A0B428DBull);
        return static_cast<std::uint32_t>((m >> 64) ^ m);
    }
};
thread_local mask_generator masks;

// Per-core scratch for permessage-deflate: a compressed message before it is
// queued, an inflated one before it swaps into the connection's buffer.
thread_local std::string deflate_scratch;

// Peers cut off by a bound (rare events: relaxed atomics, process-wide).
struct cutoff_counters {
    std::atomic<std::uint64_t> send_queue{0}, reassembly{0}, message_timeout{0}, dead_peer{0}, inflate{0};
};
cutoff_counters cutoffs_seen;

}  // namespace

// One core's WebSocket connections (a context_local of its io_context):
// the list a server's graceful shutdown walks, and the liveness sweep that
// sends pings to silent peers, resets dead ones and ends stalled messages.
// The sweep runs every `tick` while the core has connections; deadlines are
// checked against `now_ms`, the time of the latest sweep, so the read path
// records activity with one load and one store and no clock read.
struct core_connections {
    connection_state* head = nullptr;
    bool sweeping = false;
    std::uint32_t now_ms = 0;
    std::chrono::milliseconds tick{1000};

    static core_connections& of(io_context& ctx) { return context_local<core_connections>(ctx); }
    static std::uint32_t clock_ms() noexcept {
        return static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
                .count());
    }
    // Sweeps at a quarter of the shortest liveness setting seen on this core
    // (a deadline is met within that), between 5 ms and 1 s.
    void consider(std::chrono::milliseconds interval) noexcept {
        if (interval.count() <= 0) return;
        tick = std::clamp(std::min(tick, interval / 4), std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
    }
};

class connection_state {
public:
    // From the per-core slabs, beside the stream's state and the handler's frame.
    static void* operator new(std::size_t n) { return cnetmod::detail::allocate_frame(n); }
    static void operator delete(void* p, std::size_t n) noexcept { cnetmod::detail::deallocate_frame(p, n); }

    connection_state(tcp_stream stream, role r, const options& opts, std::string subprotocol, bool deflate,
                     bool deflate_send)
        : ctx_(stream.context()),
          stream_(std::move(stream)),
          role_(r),
          opts_(opts, deflate, deflate_send),
          subprotocol_(std::move(subprotocol)) {
        rd_waiter_.self = this;
        link();
    }

    ~connection_state() {
        if (subs_) release_subscriptions(*subs_);
        if (close_timer_) cnetmod::detail::reactor_of(ctx_).disarm_wait_timer(close_timer_);
        release_reassembly();
        unlink();
    }

    // ---- pub/sub, graceful shutdown ----

    subscription_set* subs_ = nullptr;  // the topics this connection is subscribed to
    cnetmod::detail::wait_timer* close_timer_ = nullptr;
    // The core's list of connections (core_connections), tagged by the
    // server that upgraded them for its shutdown (null for clients).
    connection_state* reg_prev_ = nullptr;
    connection_state* reg_next_ = nullptr;
    const void* server_tag_ = nullptr;

    // The list's head is kept by the io_context (one per core), so that a
    // state destroyed off its core, as a runtime tears down, unlinks from
    // the right list.
    static connection_state* registry_head(io_context& ctx) noexcept {
        auto* core = find_context_local<core_connections>(ctx);
        return core ? core->head : nullptr;
    }
    void register_as(const void* tag) noexcept { server_tag_ = tag; }
    void link() {
        core_connections& core = core_connections::of(ctx_);
        if (!core.sweeping && !cnetmod::detail::reactor_of(ctx_).closing()) {
            core.now_ms = core_connections::clock_ms();
            core.sweeping = true;
            try {
                spawn(ctx_, sweep_core(ctx_));  // first: if it throws, nothing is linked yet
            } catch (...) {
                core.sweeping = false;
                throw;
            }
        }
        reg_next_ = core.head;
        if (core.head) core.head->reg_prev_ = this;
        core.head = this;
        core.consider(opts_.ping_interval);
        core.consider(opts_.pong_timeout);
        core.consider(opts_.message_timeout);
        last_rx_ms_ = core.now_ms;
    }
    void unlink() noexcept {
        auto* core = find_context_local<core_connections>(ctx_);
        if (!core) return;
        if (reg_prev_)
            reg_prev_->reg_next_ = reg_next_;
        else if (core->head == this)
            core->head = reg_next_;
        if (reg_next_) reg_next_->reg_prev_ = reg_prev_;
        reg_prev_ = reg_next_ = nullptr;
    }

    // ---- liveness and bounds ----

    std::uint32_t last_rx_ms_ = 0;    // the sweep time at which bytes last arrived
    std::uint32_t msg_start_ms_ = 0;  // when the incomplete message began
    std::uint32_t queued_seen_ = 0;   // unsent bytes at the last sweep
    std::size_t rd_charged_ = 0;      // bytes of rd_message_ counted in the core's reassembly total
    // (ping_outstanding_ and pong_owed_ sit beside phase_, where they fill padding)

    // Bytes of incomplete messages held by this core's connections.
    static std::size_t& core_reassembly() noexcept {
        thread_local std::size_t bytes = 0;
        return bytes;
    }

    void note_activity() noexcept {
        if (auto* core = find_context_local<core_connections>(ctx_)) last_rx_ms_ = core->now_ms;
    }

    // The sweep's look at one connection (see core_connections).
    void check_liveness(std::uint32_t now) {
        if (phase_ != phase::open || !stream_.is_open()) return;
        if (stream_.buffered() > 0) last_rx_ms_ = now;  // bytes wait for a reader: the peer is there
        // Our queue went down since the last sweep: the peer takes what we
        // send (a ping waiting behind a large message of ours is no sign of death).
        const auto queued = clamp32(stream_.queued_bytes());
        if (queued < queued_seen_) last_rx_ms_ = now;
        queued_seen_ = queued;
        const auto since = [now](std::uint32_t then) { return std::chrono::milliseconds(now - then); };
        if (opts_.message_timeout.count() > 0 && rd_in_message_ && since(msg_start_ms_) >= opts_.message_timeout) {
            ++cutoffs_seen.message_timeout;
            return cut_off(close_code::policy_violation, "message not completed in time");
        }
        if (opts_.ping_interval.count() <= 0) return;
        // The ping went once the peer had been silent for ping_interval, so
        // silence shorter than that means something came after it.
        if (ping_outstanding_ && since(last_rx_ms_) < opts_.ping_interval) ping_outstanding_ = false;
        if (ping_outstanding_) {
            if (since(last_rx_ms_) >= std::chrono::milliseconds(opts_.ping_interval) + opts_.pong_timeout) {
                // Nothing since the ping: the peer is gone without FIN or RST.
                ++cutoffs_seen.dead_peer;
                phase_ = phase::closed;
                close_code_ = close_code::abnormal;
                close_reason_ = "no answer to ping";
                release_reassembly();
                stream_.abort();  // wakes a waiting reader, which returns empty
                return;
            }
        }
        if (!ping_outstanding_ && since(last_rx_ms_) >= opts_.ping_interval) {
            try {
                ping_outstanding_ = queue_own_control(ws::opcode::ping, {});  // over the bound: next sweep
            } catch (const std::system_error&) {
                return;  // closing
            }
        }
    }

    // Runs while the core has connections (it looks after its first sleep,
    // so that the connection that starts it is linked by then).
    static task<void> sweep_core(io_context& ctx) {
        for (;;) {
            co_await async_sleep(ctx, find_context_local<core_connections>(ctx)->tick);
            core_connections* core = find_context_local<core_connections>(ctx);
            if (!core->head) {
                core->sweeping = false;
                co_return;
            }
            // The next sweep's time first, so that activity from here on is newer than any ping sent now.
            core->now_ms = core_connections::clock_ms();
            for (connection_state* s = core->head; s;) {
                connection_state* next = s->reg_next_;  // checking never frees a state
                s->check_liveness(core->now_ms);
                s = next;
            }
        }
    }

    // Cuts the peer off from outside the reader: what waits unsent is
    // dropped, a close frame with `code` goes out, the reader (if one waits)
    // returns empty, and the TCP connection is reset after close_timeout
    // unless it ends sooner.
    void cut_off(std::uint16_t code, std::string_view reason) {
        if (phase_ == phase::closed) return;
        stream_.discard_queued();
        if (!close_sent_) queue_close(code, reason);
        close_code_ = code;
        close_reason_ = std::string(reason);
        phase_ = phase::closed;
        release_reassembly();
        if (!close_timer_)
            close_timer_ = cnetmod::detail::reactor_of(ctx_).arm_wait_timer(timeout(opts_.close_timeout),
                                                                            &connection_state::on_close_timeout, this);
    }

    // Gives back this connection's share of the core's reassembly total.
    void release_charge() noexcept {
        core_reassembly() -= std::min(rd_charged_, core_reassembly());
        rd_charged_ = 0;
    }

    // Gives back this connection's share of the core's reassembly total and
    // frees an incomplete message's buffer (a complete one may still be
    // viewed by the application until its next read, and is left).
    void release_reassembly() noexcept {
        release_charge();
        if (rd_in_message_) {
            std::string().swap(rd_message_);
            rd_in_message_ = false;
        }
    }

    // A close this side starts without waiting in close(): the close frame
    // goes after what is queued, the reader (if one waits) finishes the
    // handshake when the peer answers, and a peer that has not answered by
    // `grace` is reset.
    void close_within(std::uint16_t code, std::string_view reason, std::chrono::milliseconds grace) {
        if (phase_ != phase::open) return;
        queue_close(code, reason);
        phase_ = phase::closing;
        close_code_ = code;
        close_reason_ = std::string(reason);
        if (!close_timer_)
            close_timer_ = cnetmod::detail::reactor_of(ctx_).arm_wait_timer(timeout(grace),
                                                                            &connection_state::on_close_timeout, this);
    }
    static void on_close_timeout(void* p) {
        auto* s = static_cast<connection_state*>(p);
        s->close_timer_ = nullptr;
        s->phase_ = phase::closed;
        s->stream_.abort();  // wakes a waiting reader, which returns empty
    }

    enum class phase { open, closing, closed };

    struct event {
        bool control = false;
        ws::opcode op = ws::opcode::text;
        std::span<const std::byte> payload;
    };

    io_context& ctx_;
    tcp_stream stream_;
    role role_;
    // The options a connection consults after its handshake, kept compact.
    using ms32 = std::chrono::duration<std::uint32_t, std::milli>;
    static constexpr std::uint32_t clamp32(std::size_t n) noexcept {
        return static_cast<std::uint32_t>(std::min<std::size_t>(n, UINT32_MAX));
    }
    // Negative is off (0); beyond 49 days is 49 days.
    static constexpr std::uint32_t clamp_ms(std::chrono::milliseconds d) noexcept {
        return static_cast<std::uint32_t>(std::clamp<std::int64_t>(d.count(), 0, UINT32_MAX));
    }
    struct settings {
        settings(const options& o, bool negotiated_deflate, bool compress_sends)
            : max_message_size(o.max_message_size),
              send_high_water(o.send_high_water),
              idle_timeout(o.idle_timeout),
              close_timeout(o.close_timeout),
              send_timeout(o.send_timeout),
              message_timeout(clamp_ms(o.message_timeout)),
              ping_interval(clamp_ms(o.ping_interval)),
              pong_timeout(clamp_ms(o.pong_timeout)),
              max_queued_bytes(clamp32(o.max_queued_bytes)),
              core_reassembly_budget(clamp32(o.core_reassembly_budget)),
              max_inflate_ratio(clamp32(o.max_inflate_ratio)),
              compression_threshold(clamp32(o.compression_threshold)),
              compression_level(static_cast<std::int8_t>(std::clamp(o.compression_level, 1, 12))),
              auto_pong(o.auto_pong),
              deflate(negotiated_deflate),
              deflate_send(negotiated_deflate && compress_sends) {}
        std::size_t max_message_size;
        std::size_t send_high_water;
        std::chrono::milliseconds idle_timeout, close_timeout, send_timeout;
        ms32 message_timeout, ping_interval, pong_timeout;
        std::uint32_t max_queued_bytes;  // bounds of 4 GiB and more are 4 GiB
        std::uint32_t core_reassembly_budget;
        std::uint32_t max_inflate_ratio;
        std::uint32_t compression_threshold;
        std::int8_t compression_level;
        bool auto_pong;
        bool deflate;       // permessage-deflate was negotiated: compressed messages may arrive
        bool deflate_send;  // and this side compresses what it sends
    };
    settings opts_;
    std::string subprotocol_;

    phase phase_ = phase::open;
    std::uint16_t close_code_ = 0;
    bool ping_outstanding_ = false;  // a liveness ping waits for any answer
    bool pong_owed_ = false;         // a ping was read: its pong (payload in rd_control_) goes when the reader stops
    std::string close_reason_;
    bool close_sent_ = false;
    bool reading_ = false;
    ws::opcode last_opcode_ = ws::opcode::text;

    // rd_*: the message being received.
    std::string rd_message_;  // payload of a message that did not arrive in one piece
    ws::opcode rd_op_ = ws::opcode::text;
    bool rd_in_message_ = false;  // between a first frame and its final fragment
    bool rd_compressed_ = false;  // the message's first frame had RSV1 (permessage-deflate)
    utf8_validator rd_utf8_;
    std::size_t rd_pending_consume_ = 0;  // a zero-copy view handed out, consumed at the next read
    std::string rd_control_;              // the payload of the last control frame

    // ---- sending ----

    // Everything queued for the peer passes here first: a peer that has let
    // more than max_queued_bytes pile up is cut off (1008), and the caller
    // gets connection_closed.
    void admit() {
        if (!over_queue_bound()) return;
        ++cutoffs_seen.send_queue;
        cut_off(close_code::policy_violation, "send queue over its limit");
        throw connection_closed(close_code_);
    }
    bool over_queue_bound() const noexcept { return stream_.queued_bytes() > opts_.max_queued_bytes; }

    void queue_frame(ws::opcode op, std::span<const std::byte> payload, bool fin = true, bool rsv1 = false) {
        admit();
        put_frame(op, payload, fin, rsv1);
    }

    // A ping or pong the library sends on its own: over the bound it waits
    // (false) rather than cutting off a peer that may just be reading a
    // large message of ours; data queued past the bound cuts it off.
    bool queue_own_control(ws::opcode op, std::span<const std::byte> payload) {
        if (over_queue_bound()) return false;
        put_frame(op, payload);
        return true;
    }

    // Builds a frame in the send queue, unchecked (the close frame of a cut-off goes this way).
    void put_frame(ws::opcode op, std::span<const std::byte> payload, bool fin = true, bool rsv1 = false) {
        std::byte header[max_header_size];
        std::uint8_t mask[4];
        const bool masked = role_ == role::client;  // §5.1: a client masks every frame, a server none
        if (masked) {
            const std::uint32_t key = masks.next();
            std::memcpy(mask, &key, 4);
        }
        const std::size_t n = encode_frame_header(header, op, payload.size(), fin, rsv1, masked ? mask : nullptr);
        auto space = stream_.queue_space(n + payload.size());
        std::memcpy(space.data(), header, n);
        if (!payload.empty()) {
            std::memcpy(space.data() + n, payload.data(), payload.size());
            if (masked) apply_mask(space.data() + n, payload.size(), mask, 0);
        }
    }

    // A whole data message: compressed (RSV1 on its only frame, RFC 7692
    // §6) when permessage-deflate is on, the payload reaches the threshold
    // and compressing makes it smaller; plain otherwise.
    void queue_data(ws::opcode op, std::span<const std::byte> payload) {
        if (opts_.deflate_send && payload.size() >= opts_.compression_threshold) {
            deflate_scratch.clear();
            if (compress_message(payload, opts_.compression_level, deflate_scratch) > 0) {
                queue_frame(op, std::as_bytes(std::span(deflate_scratch.data(), deflate_scratch.size())), true, true);
                return;
            }
        }
        queue_frame(op, payload);
    }

    // A message prepared once for many connections: its frame is queued by
    // reference, the compressed one where this connection negotiated it.
    void queue_prepared(const prepared_message& m) {
        const bool compressed = opts_.deflate_send && m.has_compressed();
        if (role_ == role::server) {
            admit();
            stream_.queue(compressed ? m.compressed_frame() : m.plain_frame());
            return;
        }
        // A client masks each frame with its own key: a copy, masked here.
        queue_frame(m.op(), compressed ? m.compressed_payload() : m.plain_payload(), true, compressed);
    }

    void throw_if_not_open() const {
        if (phase_ != phase::open || !stream_.is_open())
            throw connection_closed(close_code_ ? close_code_ : close_code::abnormal);
    }

    // Backpressure: past the high-water mark, wait for the queue to halve;
    // a peer that never drains is cut off after send_timeout.
    task<void> wait_for_room() {
        if (stream_.queued_bytes() <= opts_.send_high_water) co_return;
        try {
            co_await stream_.drain_to(opts_.send_high_water / 2, timeout(opts_.send_timeout));
        } catch (const std::system_error&) {
            stream_.abort();
            phase_ = phase::closed;
            if (!close_code_) close_code_ = close_code::abnormal;
            throw connection_closed(close_code_);
        }
    }

    task<void> send_message(ws::opcode op, std::span<const std::byte> payload) {
        throw_if_not_open();
        if (is_control(op))
            queue_frame(op, payload);
        else
            queue_data(op, payload);
        co_await wait_for_room();
    }

    void queue_close(std::uint16_t code, std::string_view reason) {
        std::byte body[125];
        std::size_t n = 0;
        if (code != close_code::no_status && code != 0) {
            body[0] = static_cast<std::byte>(code >> 8);
            body[1] = static_cast<std::byte>(code & 0xFF);
            const std::size_t r = std::min<std::size_t>(reason.size(), 123);
            if (r) std::memcpy(body + 2, reason.data(), r);
            n = 2 + r;
        }
        if (stream_.is_open()) {
            try {
                put_frame(ws::opcode::close, std::span<const std::byte>(body, n));
            } catch (const std::system_error&) {
            }
        }
        close_sent_ = true;
    }

    // Ends the TCP connection after the closing handshake: flush, FIN, and
    // wait (bounded) for the peer's FIN.
    task<void> finish_tcp() {
        phase_ = phase::closed;
        if (!stream_.is_open()) co_return;
        co_await stream_.close(timeout(opts_.close_timeout));
    }

    // The TCP connection ended without a closing handshake.
    void dropped() {
        phase_ = phase::closed;
        if (!close_code_ || !close_sent_) close_code_ = close_code::abnormal;
    }

    // ---- receiving ----
    //
    // The frame reader is a state machine over the stream's buffers, not a
    // coroutine: a recv*() that finds no whole message registers with the
    // stream (tcp_stream::wait_readable) and the reader runs again when bytes
    // arrive, so an idle connection keeps no coroutine frame for its read.
    // Only the closing handshake, which waits for TCP, runs in a coroutine.

    // What pumping the buffered bytes led to.
    enum class pump_step { event, need_bytes, finish, closed };
    // What a read (a recv*() call) has come to.
    enum class read_step { done, wait, finish };

    struct reader_hook : read_waiter {
        connection_state* self = nullptr;
        using read_waiter::read_waiter;
    };

    enum class rd_stage : std::uint8_t { header, payload };

    // The read in progress.
    reader_hook rd_waiter_{&connection_state::on_readable};
    std::coroutine_handle<> rd_awaiting_;  // the coroutine suspended in recv*()
    deadline rd_deadline_;
    deadline rd_close_deadline_;  // close() reading for the peer's close frame (unset otherwise)
    event rd_event_;
    read_step rd_step_ = read_step::done;
    bool rd_got_ = false;          // rd_event_ is the read's result
    bool rd_skip_control_ = true;  // recv(), recv_view(): control frames are handled, not returned
    bool rd_close_event_ = false;  // rd_event_ is the peer's close frame, returned once TCP is done

    // The frame being read.
    rd_stage rd_stage_ = rd_stage::header;
    bool rd_control_frame_ = false;
    std::uint8_t rd_have_ = 0;   // header bytes gathered in rd_header_ when it straddles buffers
    std::uint8_t rd_phase_ = 0;  // mask phase of the next payload byte
    std::byte rd_header_[max_header_size];
    frame_header rd_frame_;
    std::uint64_t rd_remaining_ = 0;

    deadline read_deadline() const { return opts_.idle_timeout.count() > 0 ? timeout(opts_.idle_timeout) : deadline{}; }

    // Starts a recv*(): true when its result is known at once.
    bool begin_read(bool skip_control) {
        reading_ = true;
        rd_skip_control_ = skip_control;
        rd_got_ = false;
        rd_close_event_ = false;
        rd_deadline_ = rd_close_deadline_.is_set() ? rd_close_deadline_ : read_deadline();
        if (rd_pending_consume_) {
            stream_.consume(rd_pending_consume_);
            rd_pending_consume_ = 0;
        }
        if (!rd_in_message_ && rd_stage_ == rd_stage::header) park_message_buffer();
        rd_step_ = advance();
        return rd_step_ == read_step::done;
    }

    // Between messages, a large message buffer goes back to the core's
    // scratch (or to the heap), so that an idle connection keeps at most
    // kept_message_capacity bytes for it; the core's busy connections reuse
    // the scratch buffer instead of allocating per message.
    static constexpr std::size_t kept_message_capacity = 512;
    void park_message_buffer() noexcept {
        release_charge();
        rd_message_.clear();
        if (rd_message_.capacity() <= kept_message_capacity) return;
        if (deflate_scratch.capacity() < rd_message_.capacity()) rd_message_.swap(deflate_scratch);
        if (rd_message_.capacity() > kept_message_capacity) std::string().swap(rd_message_);
        rd_message_.clear();
    }

    void suspend_read(std::coroutine_handle<> h) {
        rd_awaiting_ = h;
        continue_read();
    }

    void continue_read() {
        if (rd_step_ == read_step::wait)
            stream_.wait_readable(rd_waiter_, rd_deadline_);
        else if (rd_step_ == read_step::finish)
            spawn(ctx_, finish_then_resume(this));
        else
            std::exchange(rd_awaiting_, {}).resume();
    }

    static void on_readable(read_waiter* hook) {
        connection_state* s = static_cast<reader_hook*>(hook)->self;
        const auto st = s->stream_.finish_wait_readable();
        if (st == tcp_stream::read_status::data)
            s->rd_step_ = s->advance();
        else
            s->rd_step_ = s->read_ended(st) == pump_step::finish ? read_step::finish : read_step::done;
        s->continue_read();
    }

    // The closing handshake's end (flush, FIN, the peer's FIN), then the reader goes on.
    static task<void> finish_then_resume(connection_state* s) {
        try {
            co_await s->finish_tcp();
        } catch (const std::system_error&) {
        }
        if (s->rd_close_event_ && !s->rd_skip_control_) s->rd_got_ = true;
        std::exchange(s->rd_awaiting_, {}).resume();  // `s` may be gone after this
    }

    // Queues the pong for the latest ping read (its payload is rd_control_).
    // While our own queue is over max_queued_bytes it stays owed, and goes
    // at a later pass of the reader.
    void send_owed_pong() {
        if (!pong_owed_ || phase_ != phase::open || close_sent_) return;
        try {
            if (!queue_own_control(ws::opcode::pong, std::as_bytes(std::span(rd_control_.data(), rd_control_.size()))))
                return;
        } catch (const std::system_error&) {
            // the stream is closing: the reader sees the end next
        }
        pong_owed_ = false;
    }

    read_step advance() {
        const read_step step = advance_events();
        send_owed_pong();
        return step;
    }

    read_step advance_events() {
        for (;;) {
            switch (pump()) {
                case pump_step::event:
                    if (rd_skip_control_ && rd_event_.control) continue;
                    rd_got_ = true;
                    return read_step::done;
                case pump_step::need_bytes:
                    return read_step::wait;
                case pump_step::finish:
                    return read_step::finish;
                case pump_step::closed:
                    return read_step::done;
            }
        }
    }

    // Fails the connection (RFC 6455 §7.1.7) with `code`: the close frame is
    // queued now, the TCP closing runs before the reader returns.
    pump_step start_fail(std::uint16_t code, std::string_view reason) {
        send_owed_pong();  // it answers a ping read before the failure: it goes before the close
        release_reassembly();
        if (!close_sent_) queue_close(code, reason);
        close_code_ = code;
        close_reason_ = reason;
        return pump_step::finish;
    }

    // The stream ended while reading: an idle open connection is closed
    // with 1001; end of stream or a reset drops it.
    pump_step read_ended(tcp_stream::read_status st) {
        if (st == tcp_stream::read_status::timed_out && phase_ == phase::open)
            return start_fail(close_code::going_away, "idle timeout");
        dropped();
        if (st != tcp_stream::read_status::ended) stream_.abort();
        return pump_step::closed;
    }

    // Counts the memory of the message buffer (its capacity: what it really
    // holds) against the core's reassembly budget; false when it does not fit.
    bool charge_reassembly() noexcept {
        if (rd_message_.capacity() <= rd_charged_) return true;
        const std::size_t more = rd_message_.capacity() - rd_charged_;
        std::size_t& total = core_reassembly();
        if (total + more > opts_.core_reassembly_budget) {
            ++cutoffs_seen.reassembly;
            return false;
        }
        total += more;
        rd_charged_ += more;
        return true;
    }

    // Checks what the header alone cannot: masking direction, reserved bits,
    // the fragmentation sequence and the size limit.
    std::optional<std::uint16_t> check(const frame_header& h) const {
        // §5.1: a server closes on an unmasked frame, a client on a masked one.
        if (h.masked != (role_ == role::server)) return close_code::protocol_error;
        // §5.2: RSV bits without a negotiated extension. permessage-deflate
        // gives RSV1 a meaning on the first frame of a data message only
        // (RFC 7692 §6): on a control frame or a continuation it is an error.
        if (h.rsv2 || h.rsv3) return close_code::protocol_error;
        if (h.rsv1 && (!opts_.deflate || is_control(h.op) || h.op == ws::opcode::continuation))
            return close_code::protocol_error;
        if (!is_control(h.op)) {
            // §5.4: continuation only inside a message, a new message only outside one.
            if (h.op == ws::opcode::continuation && !rd_in_message_) return close_code::protocol_error;
            if (h.op != ws::opcode::continuation && rd_in_message_) return close_code::protocol_error;
            const std::uint64_t so_far = rd_in_message_ ? rd_message_.size() : 0;
            if (h.payload_length > opts_.max_message_size || so_far + h.payload_length > opts_.max_message_size)
                return close_code::message_too_big;
        }
        return std::nullopt;
    }

    // Runs the frame reader over what is buffered, up to the next message or
    // control frame (in rd_event_), or until it needs more bytes.
    pump_step pump() {
        for (;;) {
            if (phase_ == phase::closed) return pump_step::closed;
            const auto view = stream_.writable_view();
            if (view.empty()) {
                if (stream_.at_end()) return read_ended(stream_.finish_wait_readable());
                return pump_step::need_bytes;
            }
            note_activity();
            if (rd_stage_ == rd_stage::header) {
                if (auto step = read_header(view)) return *step;
                continue;
            }
            // The payload: unmasked in place, validated as it comes, appended.
            const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(rd_remaining_, view.size()));
            if (rd_frame_.masked) apply_mask(view.data(), take, rd_frame_.mask, rd_phase_);
            rd_phase_ = static_cast<std::uint8_t>((rd_phase_ + take) & 3);
            if (!rd_control_frame_ && rd_op_ == ws::opcode::text && !rd_compressed_ &&
                !rd_utf8_.feed(view.first(take))) {
                stream_.consume(take);
                return start_fail(close_code::invalid_payload, "invalid UTF-8");  // §8.1: fail fast
            }
            (rd_control_frame_ ? rd_control_ : rd_message_).append(reinterpret_cast<const char*>(view.data()), take);
            if (!rd_control_frame_ && !charge_reassembly()) {
                stream_.consume(take);
                return start_fail(close_code::policy_violation, "server busy: too many large messages at once");
            }
            stream_.consume(take);
            rd_remaining_ -= take;
            if (rd_remaining_ > 0) continue;
            rd_stage_ = rd_stage::header;
            if (auto step = frame_done()) return *step;
        }
    }

    // Reads a frame header from `view` (gathering it across buffers when it
    // straddles them) and starts its payload; a step when the read stops here.
    std::optional<pump_step> read_header(std::span<std::byte> view) {
        const std::size_t n = std::min<std::size_t>(view.size(), max_header_size - rd_have_);
        using st = header_parse_result::status;
        std::size_t size = 0;
        std::uint16_t close = 0;
        st state;
        if (rd_have_ == 0) {
            state = parse_frame_header_into(view.first(n), rd_frame_, size, close);
        } else {
            std::memcpy(rd_header_ + rd_have_, view.data(), n);
            state =
                parse_frame_header_into(std::span<const std::byte>(rd_header_, rd_have_ + n), rd_frame_, size, close);
        }
        if (state == st::invalid) return start_fail(close, "invalid frame header");
        if (state == st::incomplete) {
            if (rd_have_ == 0) std::memcpy(rd_header_, view.data(), n);
            stream_.consume(n);
            rd_have_ = static_cast<std::uint8_t>(rd_have_ + n);
            return std::nullopt;
        }
        stream_.consume(size - rd_have_);
        rd_have_ = 0;
        if (auto code = check(rd_frame_))
            return start_fail(*code, *code == close_code::message_too_big ? "message too big" : "protocol error");
        rd_remaining_ = rd_frame_.payload_length;
        rd_phase_ = 0;
        rd_control_frame_ = is_control(rd_frame_.op);
        if (rd_control_frame_) {
            // A newer ping supersedes the owed pong; before anything else it
            // goes now (its payload is about to be overwritten), if it can.
            if (pong_owed_ && rd_frame_.op != ws::opcode::ping) send_owed_pong();
            pong_owed_ = false;
            rd_control_.clear();
        } else {
            const bool first = rd_frame_.op != ws::opcode::continuation;
            if (first) {
                rd_op_ = rd_frame_.op;
                rd_compressed_ = rd_frame_.rsv1;
                rd_utf8_.reset();
                msg_start_ms_ = last_rx_ms_;
            }
            // A whole message in one frame that lies entirely in the current
            // buffer is handed out where it is: no copy.
            if (first && rd_frame_.fin && rd_remaining_ > 0) {
                const auto rest = stream_.writable_view();
                if (rest.size() >= rd_remaining_) {
                    const auto len = static_cast<std::size_t>(rd_remaining_);
                    if (rd_frame_.masked) apply_mask(rest.data(), len, rd_frame_.mask, 0);
                    rd_remaining_ = 0;
                    if (rd_compressed_) {
                        // Inflated from where it landed into the scratch buffer,
                        // which then swaps places with the message buffer.
                        deflate_scratch.clear();
                        const auto st = decompress_message(rest.first(len), inflate_limit(len), deflate_scratch);
                        rd_message_.swap(deflate_scratch);
                        stream_.consume(len);
                        return message_inflated(st);
                    }
                    if (rd_op_ == ws::opcode::text && (!rd_utf8_.feed(rest.first(len)) || !rd_utf8_.complete())) {
                        stream_.consume(len);
                        return start_fail(close_code::invalid_payload, "invalid UTF-8");
                    }
                    rd_event_.control = false;
                    rd_event_.op = rd_op_;
                    rd_event_.payload = rest.first(len);
                    rd_pending_consume_ = len;
                    return pump_step::event;
                }
            }
            rd_in_message_ = true;
        }
        if (rd_remaining_ > 0) {
            rd_stage_ = rd_stage::payload;
            return std::nullopt;
        }
        return frame_done();
    }

    // A frame's payload is complete: a control frame is an event, a data
    // frame ends its message when it is the final fragment.
    std::optional<pump_step> frame_done() {
        if (rd_control_frame_) {
            rd_event_.control = true;
            rd_event_.op = rd_frame_.op;
            rd_event_.payload = std::as_bytes(std::span(rd_control_.data(), rd_control_.size()));
            if (rd_frame_.op == ws::opcode::close) {
                rd_close_event_ = true;
                return on_close_frame();
            }
            // §5.5.2: a pong with the same application data — owed until the
            // reader stops, so that pings read together get one pong, for the
            // latest (§5.5.3).
            if (rd_frame_.op == ws::opcode::ping && opts_.auto_pong && phase_ == phase::open) pong_owed_ = true;
            return pump_step::event;
        }
        if (!rd_frame_.fin) return std::nullopt;
        rd_in_message_ = false;
        if (rd_compressed_) {
            // The compressed fragments, reassembled, inflate into the scratch
            // buffer, which then swaps places with the message buffer.
            deflate_scratch.clear();
            const auto st = decompress_message(std::as_bytes(std::span(rd_message_.data(), rd_message_.size())),
                                               inflate_limit(rd_message_.size()), deflate_scratch);
            rd_message_.swap(deflate_scratch);
            return message_inflated(st);
        }
        if (rd_op_ == ws::opcode::text && !rd_utf8_.complete())
            return start_fail(close_code::invalid_payload, "truncated UTF-8");
        rd_event_.control = false;
        rd_event_.op = rd_op_;
        rd_event_.payload = std::as_bytes(std::span(rd_message_.data(), rd_message_.size()));
        return pump_step::event;
    }

    // A compressed message has been inflated into rd_message_: over the size
    // limit it fails with 1009 (a bomb stops there, RFC 7692 §8.1 leaves the
    // limit to us), undecodable with 1007; text is then validated whole.
    // How far a message of `compressed` bytes may inflate: max_message_size,
    // and max_inflate_ratio times its size (always 2 MiB), so that the work
    // a deflate bomb causes is bounded by its own size.
    std::size_t inflate_limit(std::size_t compressed) const noexcept {
        constexpr std::size_t always = 2 * 1024 * 1024;
        const std::size_t ratio = opts_.max_inflate_ratio;
        if (ratio == 0 || compressed > opts_.max_message_size / ratio) return opts_.max_message_size;
        return std::min(opts_.max_message_size, std::max(always, compressed * ratio));
    }

    pump_step message_inflated(inflate_status st) {
        if (st == inflate_status::too_big) {
            ++cutoffs_seen.inflate;
            return start_fail(close_code::message_too_big, "message too big");
        }
        if (st != inflate_status::ok) return start_fail(close_code::invalid_payload, "invalid compressed data");
        if (rd_op_ == ws::opcode::text && !is_valid_utf8(rd_message_))
            return start_fail(close_code::invalid_payload, "invalid UTF-8");
        rd_event_.control = false;
        rd_event_.op = rd_op_;
        rd_event_.payload = std::as_bytes(std::span(rd_message_.data(), rd_message_.size()));
        return pump_step::event;
    }

    // The peer's close frame (§5.5.1, §7.1.5): validate, answer, end TCP.
    pump_step on_close_frame() {
        std::uint16_t code = close_code::no_status;
        std::string_view reason;
        if (rd_control_.size() == 1) return start_fail(close_code::protocol_error, "close frame with a 1-byte body");
        if (rd_control_.size() >= 2) {
            code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(rd_control_[0]) << 8) |
                                              static_cast<std::uint8_t>(rd_control_[1]));
            reason = std::string_view(rd_control_).substr(2);
            if (!is_valid_close_code(code)) return start_fail(close_code::protocol_error, "invalid close code");
            if (!is_valid_utf8(reason)) return start_fail(close_code::protocol_error, "close reason is not UTF-8");
        }
        const bool we_started = close_sent_;
        close_code_ = code;
        close_reason_ = std::string(reason);
        if (!we_started) queue_close(code, {});  // echo the peer's code
        return pump_step::finish;
    }
};

}  // namespace detail

connection::connection() noexcept = default;
connection::connection(tcp_stream stream, role r, const options& opts, std::string subprotocol, bool deflate,
                       bool deflate_send)
    : state_(std::make_unique<detail::connection_state>(std::move(stream), r, opts, std::move(subprotocol), deflate,
                                                        deflate_send)) {}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;

namespace {
// Closes a connection that its owner dropped while open: close frame 1001,
// then the TCP closing, in the background.
task<void> close_in_background(std::unique_ptr<detail::connection_state> s) {
    try {
        if (s->phase_ == detail::connection_state::phase::open) s->queue_close(close_code::going_away, "");
        co_await s->finish_tcp();
    } catch (const std::system_error&) {
    }
}
}  // namespace

connection::~connection() {
    if (!state_ || !state_->stream_.is_open()) return;
    io_context& ctx = state_->ctx_;
    if (cnetmod::detail::reactor_of(ctx).closing() || !ctx.running_in_this_thread())
        return;  // the stream's destructor resets it
    spawn(ctx, close_in_background(std::move(state_)));
}

bool connection::read_awaiter::await_ready() {
    return !s_ || s_->begin_read(skip_control_);
}

void connection::read_awaiter::await_suspend(std::coroutine_handle<> h) {
    s_->suspend_read(h);
}

// The read's event, or nothing when the connection has closed.
static const detail::connection_state::event* finish_read(detail::connection_state* s) noexcept {
    if (!s) return nullptr;
    s->reading_ = false;
    if (!s->rd_got_) return nullptr;
    return &s->rd_event_;
}

std::optional<std::string> connection::recv_awaiter::await_resume() {
    const auto* ev = finish_read(s_);
    if (!ev) return std::nullopt;
    s_->last_opcode_ = ev->op;
    return std::string(reinterpret_cast<const char*>(ev->payload.data()), ev->payload.size());
}

std::optional<frame> connection::recv_frame_awaiter::await_resume() {
    const auto* ev = finish_read(s_);
    if (!ev) return std::nullopt;
    if (!ev->control) s_->last_opcode_ = ev->op;
    return frame{ev->op, std::string(reinterpret_cast<const char*>(ev->payload.data()), ev->payload.size())};
}

std::optional<message_view> connection::recv_view_awaiter::await_resume() {
    const auto* ev = finish_read(s_);
    if (!ev) return std::nullopt;
    s_->last_opcode_ = ev->op;
    return message_view{ev->op, ev->payload};
}

connection::recv_awaiter connection::recv() {
    return recv_awaiter(state_.get());
}

connection::recv_frame_awaiter connection::recv_frame() {
    return recv_frame_awaiter(state_.get());
}

connection::recv_view_awaiter connection::recv_view() {
    return recv_view_awaiter(state_.get());
}

task<void> connection::send(std::string_view text) {
    if (!state_) throw connection_closed(close_code::abnormal);
    co_await state_->send_message(opcode::text, std::as_bytes(std::span(text.data(), text.size())));
}

task<void> connection::send_binary(std::span<const std::uint8_t> data) {
    if (!state_) throw connection_closed(close_code::abnormal);
    co_await state_->send_message(opcode::binary, std::as_bytes(data));
}

task<void> connection::send_binary(std::span<const std::byte> data) {
    if (!state_) throw connection_closed(close_code::abnormal);
    co_await state_->send_message(opcode::binary, data);
}

task<void> connection::send_binary(std::string_view bytes) {
    if (!state_) throw connection_closed(close_code::abnormal);
    co_await state_->send_message(opcode::binary, std::as_bytes(std::span(bytes.data(), bytes.size())));
}

void connection::queue_message(ws::opcode op, std::span<const std::byte> payload) {
    if (!state_) throw connection_closed(close_code::abnormal);
    if (op != opcode::text && op != opcode::binary)
        throw std::invalid_argument("cnetmod: queue_message sends text or binary messages");
    state_->throw_if_not_open();
    state_->queue_data(op, payload);
}

void connection::queue_prepared(const prepared_message& message) {
    if (!state_) throw connection_closed(close_code::abnormal);
    state_->throw_if_not_open();
    state_->queue_prepared(message);
}

task<void> connection::send(const prepared_message& message) {
    queue_prepared(message);
    co_await state_->wait_for_room();
}

task<void> connection::send_fragmented(std::string_view payload, std::size_t fragment_size, ws::opcode op) {
    if (!state_) throw connection_closed(close_code::abnormal);
    if (fragment_size == 0) throw std::invalid_argument("cnetmod: send_fragmented needs a fragment size above 0");
    auto& s = *state_;
    s.throw_if_not_open();
    s.admit();  // once for the message: its own fragments do not count against it
    std::size_t offset = 0;
    do {
        const std::size_t n = std::min(fragment_size, payload.size() - offset);
        const bool fin = offset + n == payload.size();
        s.put_frame(offset == 0 ? op : opcode::continuation, std::as_bytes(std::span(payload.data() + offset, n)), fin);
        offset += n;
    } while (offset < payload.size());
    co_await s.wait_for_room();
}

task<void> connection::ping(std::string_view data) {
    if (!state_) throw connection_closed(close_code::abnormal);
    if (data.size() > 125) throw std::invalid_argument("cnetmod: a ping carries at most 125 bytes");
    co_await state_->send_message(opcode::ping, std::as_bytes(std::span(data.data(), data.size())));
}

task<void> connection::pong(std::string_view data) {
    if (!state_) throw connection_closed(close_code::abnormal);
    if (data.size() > 125) throw std::invalid_argument("cnetmod: a pong carries at most 125 bytes");
    co_await state_->send_message(opcode::pong, std::as_bytes(std::span(data.data(), data.size())));
}

task<void> connection::close(std::uint16_t code, std::string_view reason) {
    if (!is_valid_close_code(code))
        throw std::invalid_argument("cnetmod: close code " + std::to_string(code) + " may not be sent");
    if (reason.size() > 123) throw std::invalid_argument("cnetmod: a close reason is at most 123 bytes");
    if (!state_) co_return;
    auto& s = *state_;
    if (s.phase_ != detail::connection_state::phase::open) co_return;
    s.queue_close(code, reason);
    s.phase_ = detail::connection_state::phase::closing;
    s.close_code_ = code;
    s.close_reason_ = std::string(reason);
    if (s.reading_) co_return;  // the reader sees the peer's answer and ends TCP
    // Read (and drop) until the peer's close frame, within close_timeout.
    s.rd_close_deadline_ = timeout(s.opts_.close_timeout);
    while (s.phase_ != detail::connection_state::phase::closed) {
        if (!co_await recv_frame_awaiter(&s)) break;
    }
    s.rd_close_deadline_ = deadline{};
    if (s.stream_.is_open()) co_await s.finish_tcp();
}

bool connection::is_open() const noexcept {
    return state_ && state_->phase_ == detail::connection_state::phase::open && state_->stream_.is_open();
}
std::uint16_t connection::close_code() const noexcept {
    return state_ ? state_->close_code_ : 0;
}
std::string_view connection::close_reason() const noexcept {
    return state_ ? std::string_view(state_->close_reason_) : "";
}
ws::opcode connection::last_opcode() const noexcept {
    return state_ ? state_->last_opcode_ : opcode::text;
}
std::string_view connection::subprotocol() const noexcept {
    return state_ ? std::string_view(state_->subprotocol_) : "";
}
io_context& connection::context() const noexcept {
    return state_->ctx_;
}
bool connection::compression() const noexcept {
    return state_ && state_->opts_.deflate;
}
std::size_t connection::buffered_amount() const noexcept {
    return state_ ? state_->stream_.queued_bytes() : 0;
}

cutoff_counts cutoffs() noexcept {
    const auto& c = detail::cutoffs_seen;
    return {c.send_queue.load(std::memory_order_relaxed), c.reassembly.load(std::memory_order_relaxed),
            c.message_timeout.load(std::memory_order_relaxed), c.dead_peer.load(std::memory_order_relaxed),
            c.inflate.load(std::memory_order_relaxed)};
}

namespace detail {

subscription_set*& subscriptions(connection_state& s) noexcept {
    return s.subs_;
}
bool is_open(const connection_state& s) noexcept {
    return s.phase_ == connection_state::phase::open && s.stream_.is_open();
}
std::size_t queued_bytes(const connection_state& s) noexcept {
    return s.stream_.queued_bytes();
}
void queue_prepared(connection_state& s, const prepared_message& m) {
    s.queue_prepared(m);
}
void close_within(connection_state& s, std::uint16_t code, std::string_view reason, std::chrono::milliseconds grace) {
    s.close_within(code, reason, grace);
}
void register_server_connection(connection& c, const void* server_tag) noexcept {
    if (c.state() && server_tag) c.state()->register_as(server_tag);
}
std::size_t close_server_connections(const void* server_tag, std::uint16_t code, std::string_view reason,
                                     std::chrono::milliseconds grace) {
    std::size_t n = 0;
    io_context* ctx = io_context::current();
    if (!ctx) return 0;
    for (connection_state* s = connection_state::registry_head(*ctx); s; s = s->reg_next_) {
        if (s->server_tag_ != server_tag) continue;
        ++n;
        if (s->stream_.is_open()) s->close_within(code, reason, grace);
    }
    return n;
}
std::size_t count_server_connections(const void* server_tag) noexcept {
    std::size_t n = 0;
    io_context* ctx = io_context::current();
    if (!ctx) return 0;
    for (connection_state* s = connection_state::registry_head(*ctx); s; s = s->reg_next_)
        n += s->server_tag_ == server_tag;
    return n;
}

}  // namespace detail
}  // namespace cnetmod::ws
