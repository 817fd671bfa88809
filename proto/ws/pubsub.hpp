// Pub/sub topics for WebSocket connections, over one io_context or every
// core of a runtime, without locks: each core keeps its own subscriber lists,
// a publish encodes its frame once (and compresses it once) into shared
// buffers, queues a reference on each subscriber of its own core, and
// reaches every other core through runtime::submit_to — one MSG_RING post
// per core per loop turn, however many publishes it carries. Messages from
// one publisher reach every subscriber in publish order.
//
//   ws::pubsub topics(rt);                                   // before the server starts
//   srv.get("/chat", [&](http::request_context& ctx) -> task<void> {
//       auto ws = co_await ctx.upgrade_to_websocket(opts);
//       topics.subscribe(ws, "room");                        // on this connection's core
//       while (auto msg = co_await ws.recv()) topics.publish("room", *msg);
//   });                                                      // unsubscribed when it closes
//
// A subscriber whose send queue holds more than max_queued_bytes when a
// message arrives is slow: by default the message is dropped for it alone
// (and counted); with slow_subscriber_policy::close it is unsubscribed and
// closed with close_code (1008) behind what it already has, reset if it
// has not drained within its close_timeout. Neither ever waits: the
// publisher and the other subscribers go on.
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/runtime.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/options.hpp>
#include <cnetmod/proto/ws/prepared_message.hpp>
#include <cnetmod/proto/ws/socket.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace cnetmod::ws {

enum class slow_subscriber_policy {
    drop,   // skip the message for that subscriber; counted in dropped()
    close,  // unsubscribe it and close it with pubsub_options::close_code
};

struct pubsub_options {
    // Bytes waiting in a subscriber's send queue above which it is slow.
    std::size_t max_queued_bytes = 1024 * 1024;
    slow_subscriber_policy policy = slow_subscriber_policy::drop;
    std::uint16_t close_code = close_code::policy_violation;
    // How long a closed slow subscriber may take to drain and answer.
    std::chrono::milliseconds close_grace{5'000};
    // 0: a publish is queued on its subscribers at once (each subscriber's
    // frames of one loop turn leave in one send). Above 0: a core keeps
    // the publishes that reach it for this long and queues them together,
    // so that a subscriber gets several frames per send when publishes come
    // faster than the interval: fewer system calls per delivery (the
    // fan-out's main cost), at up to this much added latency.
    std::chrono::microseconds batch_interval{0};
    // How published frames are encoded: with enable_compression, a message
    // at or above compression_threshold is compressed once, and goes
    // compressed to the subscribers that negotiated permessage-deflate.
    options message_options{};
};

namespace detail {
class pubsub_core;
struct subscription_set;
// Unsubscribes a closing connection from every topic (called by its state).
void release_subscriptions(subscription_set& set) noexcept;
}  // namespace detail

class pubsub {
public:
    // Topics on one io_context: subscribe and publish on its thread.
    explicit pubsub(io_context& ctx, pubsub_options options = {});
    // Topics over every core of `rt`: subscribe on the connection's core,
    // publish from any core of `rt` or any other thread.
    explicit pubsub(runtime& rt, pubsub_options options = {});
    ~pubsub();
    pubsub(const pubsub&) = delete;
    pubsub& operator=(const pubsub&) = delete;

    // `c` receives what is published to `topic` from now on, until it
    // unsubscribes or closes. Subscribing twice is one subscription.
    void subscribe(connection& c, std::string_view topic);
    void unsubscribe(connection& c, std::string_view topic);
    // The same for a connection of a callback route (on its core, from its handlers).
    void subscribe(socket_base s, std::string_view topic);
    void unsubscribe(socket_base s, std::string_view topic);

    // Sends `message` to every subscriber of `topic` on every core.
    void publish(std::string_view topic, std::string_view message, ws::opcode op = ws::opcode::text);
    void publish(std::string_view topic, std::span<const std::byte> message, ws::opcode op = ws::opcode::binary);
    // The same, for a message already prepared (encoded, compressed).
    void publish(std::string_view topic, const prepared_message& message);

    // Subscribers of `topic` on the calling core.
    std::size_t local_subscribers(std::string_view topic) const;
    // Messages dropped for slow subscribers, and slow subscribers closed, on every core.
    std::uint64_t dropped() const noexcept;
    std::uint64_t closed_slow() const noexcept;
    const pubsub_options& settings() const noexcept { return options_; }

private:
    std::size_t local_index() const;
    void subscribe_state(detail::connection_state* state, io_context& ctx, std::string_view topic);
    void unsubscribe_state(detail::connection_state* state, std::string_view topic);

    runtime* rt_ = nullptr;
    pubsub_options options_;
    std::vector<std::shared_ptr<detail::pubsub_core>> cores_;
};

}  // namespace cnetmod::ws
