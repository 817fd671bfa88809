// The connection core both APIs share: sending through the machine into the
// stream's queue, the bounds, the closing paths, the per-core list and the
// liveness sweep.
#include <cnetmod/engine/context_local.hpp>
#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/engine/timer.hpp>
#include <cnetmod/proto/ws/detail/connection_state.hpp>
#include <cnetmod/proto/ws/detail/metrics.hpp>
#include <cnetmod/proto/ws/prepared_message.hpp>
#include <cnetmod/proto/ws/pubsub.hpp>

#include <memory>
#include <vector>

namespace cnetmod::ws::detail {
namespace {

// One core's WebSocket connections (a context_local of its io_context):
// the list a server's graceful shutdown walks, and the liveness sweep that
// sends pings to silent peers, resets dead ones and ends stalled messages.
// The sweep runs every `tick` while the core has connections; deadlines are
// checked against `now_ms`, the time of the latest sweep, so the read path
// records activity with one load and one store and no clock read.
struct core_connections {
    connection_state* head = nullptr;
    bool sweeping = false;
    // As the context tears down, the callback connections (which no
    // coroutine owns) are freed while the ring still works.
    struct teardown_hook : cnetmod::detail::teardown_hook {
        core_connections* core = nullptr;
    } teardown;

    static void free_callback_connections(cnetmod::detail::teardown_hook* h) noexcept {
        core_connections* core = static_cast<teardown_hook*>(h)->core;
        for (connection_state* s = core->head; s;) {
            connection_state* next = s->reg_next_;
            if (s->callback_) destroy_callback_state(s);
            s = next;
        }
    }
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

// Runs while the core has connections (it looks after its first sleep, so
// that the connection that starts it is linked by then).
task<void> sweep_core(io_context& ctx) {
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

// The settings of the coroutine API's connections, one per distinct set of
// options on a core. The table holds a reference to each; past
// `interned_max` distinct sets, new ones are not interned (each connection
// then has its own).
struct settings_table {
    static constexpr std::size_t interned_max = 32;
    std::vector<route_settings*> entries;
    settings_table() = default;
    settings_table(const settings_table&) = delete;
    settings_table& operator=(const settings_table&) = delete;
    ~settings_table() {
        for (auto* s : entries) s->release();
    }
};

}  // namespace

route_settings* intern_settings(io_context& ctx, const options& opts, std::string_view subprotocol) {
    auto made = std::make_unique<route_settings>(opts, std::string(subprotocol));
    auto& table = context_local<settings_table>(ctx);
    for (route_settings* s : table.entries) {
        if (s->same_as(*made)) {
            s->retain();
            return s;
        }
    }
    if (table.entries.size() < settings_table::interned_max) {
        table.entries.push_back(made.get());
        made->retain();  // the table's reference
    }
    return made.release();
}

connection_state::connection_state(tcp_stream stream, role r, route_settings& settings, bool deflate, bool deflate_send,
                                   bool has_subprotocol)
    : stream_(std::move(stream)),
      machine_(r, deflate, deflate_send),
      settings_(&settings),
      has_subprotocol_(has_subprotocol) {
    settings.retain();
    try {
        link();
    } catch (...) {
        settings.release();
        throw;
    }
    count(connections_open);
}

connection_state::connection_state(tcp_stream stream, role r, route_settings& settings, const deflate_agreement& agreed,
                                   bool deflate_send, bool has_subprotocol)
    : stream_(std::move(stream)),
      machine_(r, agreed, deflate_send),
      settings_(&settings),
      has_subprotocol_(has_subprotocol) {
    settings.retain();
    try {
        link();
    } catch (...) {
        settings.release();
        throw;
    }
    count(connections_open);
}

connection_state::~connection_state() {
    counters()[connections_open].sub();
    if (subs_) release_subscriptions(*subs_);
    if (close_timer_) cnetmod::detail::reactor_of(context()).disarm_wait_timer(close_timer_);
    unlink();
    settings_->release();
}

// ---- the per-core list ----

connection_state* connection_state::registry_head(io_context& ctx) noexcept {
    auto* core = find_context_local<core_connections>(ctx);
    return core ? core->head : nullptr;
}

void connection_state::link() {
    core_connections& core = core_connections::of(context());
    // The tick first: the sweep started below sleeps one tick before its first look.
    core.consider(std::chrono::milliseconds(settings_->ping_interval.count()));
    core.consider(std::chrono::milliseconds(settings_->pong_timeout.count()));
    core.consider(std::chrono::milliseconds(settings_->message_timeout.count()));
    if (!core.sweeping && !cnetmod::detail::reactor_of(context()).closing()) {
        core.now_ms = core_connections::clock_ms();
        core.sweeping = true;
        try {
            spawn(context(), sweep_core(context()));  // first: if it throws, nothing is linked yet
        } catch (...) {
            core.sweeping = false;
            throw;
        }
    }
    if (!core.teardown.core) {
        core.teardown.core = &core;
        core.teardown.run = &core_connections::free_callback_connections;
        cnetmod::detail::reactor_of(context()).at_tear_down(core.teardown);
    }
    reg_next_ = core.head;
    if (core.head) core.head->reg_prev_ = this;
    core.head = this;
    last_rx_ms_ = core.now_ms;
}

void connection_state::unlink() noexcept {
    auto* core = find_context_local<core_connections>(context());
    if (!core) return;
    if (reg_prev_)
        reg_prev_->reg_next_ = reg_next_;
    else if (core->head == this)
        core->head = reg_next_;
    if (reg_next_) reg_next_->reg_prev_ = reg_prev_;
    reg_prev_ = reg_next_ = nullptr;
}

// ---- liveness and bounds ----

void connection_state::note_activity() noexcept {
    if (auto* core = find_context_local<core_connections>(context())) last_rx_ms_ = core->now_ms;
}

void connection_state::check_liveness(std::uint32_t now) {
    machine_.compression_tick();  // zlib state unused since the last sweep goes back to the pool
    if (!open()) return;
    if (stream_.buffered() > 0) last_rx_ms_ = now;  // bytes wait for a reader: the peer is there
    // Our queue went down since the last sweep: the peer takes what we send
    // (a ping waiting behind a large message of ours is no sign of death).
    const auto queued = route_settings::clamp32(stream_.queued_bytes());
    if (queued < queued_seen_) last_rx_ms_ = now;
    queued_seen_ = queued;
    const auto since = [now](std::uint32_t then) { return std::chrono::milliseconds(now - then); };
    const route_settings& st = *settings_;
    if (st.message_timeout.count() > 0 && machine_.in_message() && since(msg_start_ms_) >= st.message_timeout) {
        ++cutoffs_seen().message_timeout;
        return cut_off(close_code::policy_violation, "message not completed in time");
    }
    if (st.ping_interval.count() <= 0) return;
    // The ping went once the peer had been silent for ping_interval, so
    // silence shorter than that means something came after it.
    if (ping_outstanding_ && since(last_rx_ms_) < st.ping_interval) ping_outstanding_ = false;
    if (ping_outstanding_ && since(last_rx_ms_) >= std::chrono::milliseconds(st.ping_interval) + st.pong_timeout) {
        // Nothing since the ping: the peer is gone without FIN or RST.
        ++cutoffs_seen().dead_peer;
        machine_.dropped();
        machine_.set_close(close_code::abnormal, "no answer to ping");
        closed_ = true;
        stream_.abort();  // wakes a waiting reader, which ends
        return;
    }
    if (!ping_outstanding_ && since(last_rx_ms_) >= st.ping_interval) {
        try {
            ping_outstanding_ = queue_own_control(ws::opcode::ping, {});  // over the bound: next sweep
        } catch (const std::system_error&) {
            // closing
        }
    }
}

// ---- sending ----

void connection_state::admit() {
    if (!over_queue_bound()) return;
    ++cutoffs_seen().send_queue;
    cut_off(close_code::policy_violation, "send queue over its limit");
    throw connection_closed(machine_.close_code());
}

void connection_state::throw_if_not_open() const {
    if (!open()) throw connection_closed(machine_.close_code() ? machine_.close_code() : close_code::abnormal);
}

void connection_state::put_frame(ws::opcode op, std::span<const std::byte> payload, bool fin, bool rsv1) {
    stream_sink sink{stream_};
    machine_.send_frame(sink, op, payload, fin, rsv1);
}

void connection_state::queue_frame(ws::opcode op, std::span<const std::byte> payload, bool fin, bool rsv1) {
    admit();
    put_frame(op, payload, fin, rsv1);
    if (!is_control(op)) count_data_frame(payload.size(), fin, rsv1);
}

void connection_state::queue_data(ws::opcode op, std::span<const std::byte> payload) {
    admit();
    stream_sink sink{stream_};
    machine_.send_message(sink, op, payload, settings_->limits);
}

// A prepared message goes in the form this peer can take (see
// machine::form_for_shared): never a final block or a reference to earlier
// messages to a peer that keeps one inflater, whose window must stay the
// same as ours.
void connection_state::queue_prepared(const prepared_message& m) {
    const shared_buffer* frame = &m.plain_frame();
    std::span<const std::byte> body = m.plain_payload();
    bool compressed = false, noted = false;
    switch (machine_.form_for_shared(body.size())) {
        case machine::shared_form::plain:
            break;
        case machine::shared_form::whole:
            if (m.has_compressed()) {
                frame = &m.compressed_frame();
                body = m.compressed_payload();
                compressed = true;
            }
            break;
        case machine::shared_form::sync:
            if (!m.has_takeover_form()) return queue_data(m.op(), body);
            frame = &m.takeover_frame();
            body = m.takeover_payload();
            compressed = noted = true;
            break;
        case machine::shared_form::own:
            return queue_data(m.op(), body);
    }
    if (machine_.role() == role::server) {
        admit();
        stream_.queue(*frame);
        count_message(messages_out, m.plain_payload().size(), compressed);
    } else {
        // A client masks each frame with its own key: a copy, masked here.
        admit();
        put_frame(m.op(), body, true, compressed);
        count_message(messages_out, m.plain_payload().size(), compressed);
    }
    if (noted) machine_.note_shared_sent(m.plain_payload());
}

bool connection_state::queue_own_control(ws::opcode op, std::span<const std::byte> payload) {
    if (over_queue_bound()) return false;
    put_frame(op, payload);
    return true;
}

void connection_state::write_owed() {
    if (!machine_.owes_output()) return;
    if (!stream_.is_open()) {
        if (machine_.pong_owed()) machine_.forget_pong();
        return;
    }
    // The pong waits while our queue is over its bound (a later pass sends
    // it); a close frame owed goes regardless.
    if (!machine_.owes_close() && over_queue_bound()) return;
    try {
        stream_sink sink{stream_};
        machine_.write_owed(sink);
    } catch (const std::system_error&) {
        // the stream is closing: the reader sees the end next
    }
}

void connection_state::queue_close(std::uint16_t code, std::string_view reason) {
    if (!stream_.is_open()) {
        if (!machine_.close_received()) machine_.set_close(code ? code : close_code::no_status, reason);
        return;
    }
    try {
        stream_sink sink{stream_};
        machine_.send_close(sink, code, reason);
    } catch (const std::system_error&) {
        if (!machine_.close_received()) machine_.set_close(code ? code : close_code::no_status, reason);
    }
}

// ---- closing ----

void connection_state::cut_off(std::uint16_t code, std::string_view reason) {
    if (closed_) return;
    stream_.discard_queued();
    queue_close(code, reason);
    machine_.abandon();
    machine_.set_close(code, reason);
    closed_ = true;
    arm_close_timer(settings_->close_timeout);
}

void connection_state::close_within(std::uint16_t code, std::string_view reason, std::chrono::milliseconds grace) {
    if (!open()) return;
    queue_close(code, reason);
    arm_close_timer(grace);
}

void connection_state::arm_close_timer(std::chrono::milliseconds grace) {
    if (close_timer_) return;
    close_timer_ = cnetmod::detail::reactor_of(context()).arm_wait_timer(timeout(grace),
                                                                         &connection_state::on_close_timeout, this);
}

void connection_state::on_close_timeout(void* p) {
    auto* s = static_cast<connection_state*>(p);
    s->close_timer_ = nullptr;
    s->closed_ = true;
    s->machine_.abandon();
    s->stream_.abort();  // wakes a waiting reader, which ends
}

void connection_state::dropped() noexcept {
    machine_.dropped();
    closed_ = true;
}

// ---- what pub/sub and graceful shutdown reach ----

subscription_set*& subscriptions(connection_state& s) noexcept {
    return s.subs_;
}
bool is_open(const connection_state& s) noexcept {
    return s.open();
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

}  // namespace cnetmod::ws::detail

namespace cnetmod::ws {

cutoff_counts cutoffs() noexcept {
    const auto& c = detail::cutoffs_seen();
    return {c.send_queue.load(std::memory_order_relaxed), c.reassembly.load(std::memory_order_relaxed),
            c.message_timeout.load(std::memory_order_relaxed), c.dead_peer.load(std::memory_order_relaxed),
            c.inflate.load(std::memory_order_relaxed)};
}

}  // namespace cnetmod::ws
