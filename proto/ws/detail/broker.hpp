// The bridge between a ws::pubsub and a Redis broker (see broker_options in
// pubsub.hpp). Internal: pubsub.cpp makes one when a broker is configured.
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/runtime.hpp>
#include <cnetmod/proto/ws/prepared_message.hpp>
#include <cnetmod/proto/ws/pubsub.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cnetmod::ws::detail {

// A broker URL taken apart. parse() throws std::invalid_argument naming
// what is wrong.
struct broker_url {
    bool tls = false;
    bool cluster = false;  // redis-cluster://: host and port are the first seed
    std::string user, password, host;
    std::uint16_t port = 6379;
    int db = 0;
    std::vector<std::pair<std::string, std::uint16_t>> seeds;  // every host:port given (one unless cluster)
    static broker_url parse(std::string_view url);
    // The URL without its password, for log lines.
    std::string display() const;
};

// Redis Cluster's hash slot of a key or channel (CRC16/XMODEM of its hash
// tag or whole name, modulo 16384).
std::uint16_t cluster_slot(std::string_view key) noexcept;

// Queues `m` on the subscribers of `topic` on every core of `rt` (or the
// one core when `rt` is null), at once on the calling core: what a publish
// does locally, and what a message from the broker does.
void deliver_everywhere(runtime* rt, const std::vector<std::shared_ptr<pubsub_core>>& cores, std::string_view topic,
                        const prepared_message& m);

struct broker_shared;  // the bridge's state, counters and connections

// Lives on one core (the bridge core): publish() and topic_change() are
// called there; status() and request_stop() from anywhere.
class broker_bridge {
public:
    broker_bridge(const broker_options& options, const ws::options& message_options, runtime* rt,
                  std::vector<std::shared_ptr<pubsub_core>> cores);
    ~broker_bridge();
    broker_bridge(const broker_bridge&) = delete;
    broker_bridge& operator=(const broker_bridge&) = delete;

    // Starts connecting, on `ctx` (the bridge core's context).
    void start(io_context& ctx);
    // The bridge stops within ping_interval (or its current backoff) and
    // closes its connections; what it holds goes with its last reference.
    void request_stop() noexcept;

    // A local publish, once per server: written to the broker, or counted as dropped.
    void publish(std::string_view topic, const prepared_message& m);
    // The first local subscriber of `topic` on some core arrived (up) or
    // the last one of a core left: the server subscribes to the topic's
    // channel while any core has one.
    void topic_change(std::string_view topic, bool up);

    broker_status status() const;

private:
    std::shared_ptr<broker_shared> shared_;
};

}  // namespace cnetmod::ws::detail
