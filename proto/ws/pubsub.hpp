/// @file
/// Pub/sub topics for WebSocket connections, over one io_context or every
/// core of a runtime, without locks: each core keeps its own subscriber lists,
/// a publish encodes its frame once (and compresses it once) into shared
/// buffers, queues a reference on each subscriber of its own core, and
/// reaches every other core through runtime::submit_to — one MSG_RING post
/// per core per loop turn, however many publishes it carries. Messages from
/// one publisher reach every subscriber in publish order.
///
///   ws::pubsub topics(rt);                                   // before the server starts
///   srv.get("/chat", [&](http::request_context& ctx) -> task<void> {
///       auto ws = co_await ctx.upgrade_to_websocket(opts);
///       topics.subscribe(ws, "room");                        // on this connection's core
///       while (auto msg = co_await ws.recv()) topics.publish("room", *msg);
///   });                                                      // unsubscribed when it closes
///
/// A subscriber whose send queue holds more than max_queued_bytes when a
/// message arrives is slow: by default the message is dropped for it alone
/// (and counted); with slow_subscriber_policy::close it is unsubscribed and
/// closed with close_code (1008) behind what it already has, reset if it
/// has not drained within its close_timeout. Neither ever waits: the
/// publisher and the other subscribers go on.
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/runtime.hpp>
#include <cnetmod/engine/tls.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/options.hpp>
#include <cnetmod/proto/ws/prepared_message.hpp>
#include <cnetmod/proto/ws/socket.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace cnetmod::ws {

/// What happens to a subscriber whose send queue is over pubsub_options::max_queued_bytes when a message arrives.
enum class slow_subscriber_policy {
    drop,   ///< skip the message for that subscriber; counted in dropped()
    close,  ///< unsubscribe it and close it with pubsub_options::close_code
};

/// Topics shared by several servers through a Redis broker (pub/sub).
/// Each server keeps one publishing and one subscribing connection to it,
/// on one core (the runtime's core 0), as ordinary io_uring sockets: a
/// publish reaches the local subscribers at once and the broker once per
/// server; what another server published reaches the local subscribers of
/// every core; a server's own publishes coming back are recognised by its
/// origin id and skipped. A server subscribes to a topic's channel while it
/// has a local subscriber to it. Delivery through the broker is at most
/// once: what is published while the broker is unreachable, or lost in a
/// connection that breaks, is not resent (drops are counted).
struct broker_options {
    /// redis://[[user]:password@]host:port[/db], rediss:// (TLS through the
    /// engine's own TLS, checked against `tls`), or
    /// redis-cluster://[[user]:password@]host:port,host:port,... (Redis
    /// Cluster's sharded pub/sub: each topic on its slot's node; one seed is
    /// enough). Empty: no broker. The database number is accepted and
    /// ignored (Redis pub/sub spans databases).
    std::string url{};
    /// Prepended to a topic to name its Redis channel.
    std::string channel_prefix{"cnetmod:"};
    /// Publishes waiting to be written to the broker, in bytes, above which
    /// further publishes are dropped for the broker (counted), not buffered.
    std::size_t max_queued_bytes = 8 * 1024 * 1024;
    /// Time allowed to connect (and, for rediss://, the TLS handshake) to the broker.
    std::chrono::milliseconds connect_timeout{2'000};
    /// A PING goes on each connection after this long without one; a
    /// broker that leaves a command unanswered for reply_timeout is taken
    /// for stalled: both connections are dropped and made again.
    std::chrono::milliseconds ping_interval{1'000};
    /// How long the broker may leave a command unanswered before both connections are made again (see ping_interval).
    std::chrono::milliseconds reply_timeout{3'000};
    /// Reconnection: the delay doubles from backoff_min to backoff_max after
    /// each failed attempt, with a random share of up to half taken off.
    std::chrono::milliseconds backoff_min{100};
    /// The longest delay between reconnection attempts (see backoff_min).
    std::chrono::milliseconds backoff_max{5'000};
    tls_client_options tls{};  ///< for rediss://
};

/// The broker bridge's state, as pubsub::broker() reports it.
enum class broker_state {
    none,        ///< no broker configured
    connecting,  ///< not connected (yet, or again): publishes are dropped for the broker
    connected,   ///< both connections up (to every master of a cluster)
    failed,      ///< the broker refused us (an error reply: wrong password, NOAUTH...); retried at backoff_max
};

/// The broker bridge's state and counters (pubsub::broker()).
struct broker_status {
    broker_state state = broker_state::none;  ///< the bridge's state now
    std::string error{};                      ///< the last error (connect, TLS or the broker's reply), empty if none
    std::uint64_t published = 0;              ///< publishes written to the broker
    std::uint64_t received = 0;               ///< messages from other servers delivered locally
    std::uint64_t dropped = 0;                ///< publishes not written to the broker (down, or over max_queued_bytes)
    std::uint64_t connects = 0;               ///< successful connections (1 + reconnects)
    std::size_t subscribed_topics = 0;        ///< topics whose subscription the broker confirmed
};

/// How a pubsub treats slow subscribers, batches deliveries, encodes messages and reaches a broker.
struct pubsub_options {
    /// Bytes waiting in a subscriber's send queue above which it is slow.
    std::size_t max_queued_bytes = 1024 * 1024;
    /// What is done with a slow subscriber.
    slow_subscriber_policy policy = slow_subscriber_policy::drop;
    /// The close code a slow subscriber is closed with (slow_subscriber_policy::close).
    std::uint16_t close_code = close_code::policy_violation;
    /// How long a closed slow subscriber may take to drain and answer.
    std::chrono::milliseconds close_grace{5'000};
    /// 0: a publish is queued on its subscribers at once (each subscriber's
    /// frames of one loop turn leave in one send). Above 0: a core keeps
    /// the publishes that reach it for this long and queues them together,
    /// so that a subscriber gets several frames per send when publishes come
    /// faster than the interval: fewer system calls per delivery (the
    /// fan-out's main cost), at up to this much added latency.
    std::chrono::microseconds batch_interval{0};
    /// How published frames are encoded: with enable_compression, a message
    /// at or above compression_threshold is compressed once, and goes
    /// compressed to the subscribers that negotiated permessage-deflate.
    options message_options{};
    /// Topics shared with other servers through a broker (url empty: none).
    broker_options broker{};
};

namespace detail {
class pubsub_core;
class broker_bridge;
struct subscription_set;
// Unsubscribes a closing connection from every topic (called by its state).
void release_subscriptions(subscription_set& set) noexcept;
}  // namespace detail

/// Pub/sub topics for WebSocket connections, over one io_context or every core of a runtime, without locks: each core
/// keeps its own subscriber lists, and a publish encodes its frame once and queues a reference on each subscriber.
/// Messages from one publisher reach every subscriber in publish order.
class pubsub {
public:
    /// Topics on one io_context: subscribe and publish on its thread.
    explicit pubsub(io_context& ctx, pubsub_options options = {});
    /// Topics over every core of `rt`: subscribe on the connection's core,
    /// publish from any core of `rt` or any other thread.
    /// With a broker, its bridge runs on core 0: it starts with the runtime, or at once if the runtime runs already.
    explicit pubsub(runtime& rt, pubsub_options options = {});
    /// Stops the broker bridge, if any.
    ~pubsub();
    pubsub(const pubsub&) = delete;
    pubsub& operator=(const pubsub&) = delete;

    /// `c` receives what is published to `topic` from now on, until it
    /// unsubscribes or closes. Subscribing twice is one subscription.
    void subscribe(connection& c, std::string_view topic);
    /// `c` receives nothing more published to `topic`; nothing happens if it was not subscribed.
    void unsubscribe(connection& c, std::string_view topic);
    /// The same for a connection of a callback route (on its core, from its handlers).
    void subscribe(socket_base s, std::string_view topic);
    /// The same for a connection of a callback route (on its core, from its handlers).
    void unsubscribe(socket_base s, std::string_view topic);

    /// Sends `message` to every subscriber of `topic` on every core.
    void publish(std::string_view topic, std::string_view message, ws::opcode op = ws::opcode::text);
    /// Sends a binary (or, with `op`, text) `message` to every subscriber of `topic` on every core.
    void publish(std::string_view topic, std::span<const std::byte> message, ws::opcode op = ws::opcode::binary);
    /// The same, for a message already prepared (encoded, compressed).
    void publish(std::string_view topic, const prepared_message& message);

    /// Subscribers of `topic` on the calling core.
    std::size_t local_subscribers(std::string_view topic) const;
    /// Messages dropped for slow subscribers, on every core.
    std::uint64_t dropped() const noexcept;
    /// Slow subscribers closed (slow_subscriber_policy::close), on every core.
    std::uint64_t closed_slow() const noexcept;
    /// The options the pubsub was made with.
    const pubsub_options& settings() const noexcept { return options_; }
    /// The broker bridge's state and counters (callable from any thread).
    broker_status broker() const;

private:
    std::size_t local_index() const;
    void start_broker();
    void subscribe_state(detail::connection_state* state, io_context& ctx, std::string_view topic);
    void unsubscribe_state(detail::connection_state* state, std::string_view topic);

    runtime* rt_ = nullptr;
    pubsub_options options_;
    std::vector<std::shared_ptr<detail::pubsub_core>> cores_;
    std::shared_ptr<detail::broker_bridge> bridge_;
};

}  // namespace cnetmod::ws
