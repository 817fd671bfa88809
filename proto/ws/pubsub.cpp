#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/engine/timer.hpp>
#include <cnetmod/proto/ws/detail/broker.hpp>
#include <cnetmod/proto/ws/detail/metrics.hpp>
#include <cnetmod/proto/ws/pubsub.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace cnetmod::ws::detail {

struct topic_state;

// One connection's subscription to one topic of one core.
struct subscription {
    std::shared_ptr<pubsub_core> core;  // keeps the core's topics alive while subscribed
    topic_state* topic;
    connection_state* conn;
    std::size_t index;  // in topic->subscribers
};

// Everything a connection is subscribed to (held by its state).
struct subscription_set {
    std::vector<std::unique_ptr<subscription>> items;
};

struct topic_state {
    std::string name;
    std::vector<subscription*> subscribers;
};

// Heterogeneous lookup: a publish finds its topic by string_view, no copy.
struct topic_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// One core's share of the topics: touched only on that core.
class pubsub_core : public std::enable_shared_from_this<pubsub_core> {
public:
    explicit pubsub_core(const pubsub_options& o) : options_(o) {}

    // Told when this core's first subscriber of a topic arrives (true) and
    // its last one leaves (false): the broker bridge subscribes the server.
    std::function<void(std::string_view, bool)> on_topic;

    topic_state& topic(std::string_view name) {
        auto it = topics_.find(name);
        if (it == topics_.end()) {
            auto t = std::make_unique<topic_state>();
            t->name = std::string(name);
            it = topics_.emplace(t->name, std::move(t)).first;
            if (on_topic) on_topic(name, true);
        }
        return *it->second;
    }

    std::size_t subscribers(std::string_view name) const {
        auto it = topics_.find(name);
        return it == topics_.end() ? 0 : it->second->subscribers.size();
    }

    // Takes `s` out of its topic's list (the last entry moves into its
    // place); a topic left empty goes.
    void remove(subscription& s) noexcept {
        auto& subs = s.topic->subscribers;
        subscription* last = subs.back();
        subs[s.index] = last;
        last->index = s.index;
        subs.pop_back();
        if (!subs.empty()) return;
        if (on_topic) {
            try {
                on_topic(s.topic->name, false);
            } catch (const std::exception&) {
                // no memory to tell the bridge: the server stays subscribed, and the messages find no one here
            }
        }
        topics_.erase(topics_.find(std::string_view(s.topic->name)));
    }

    // A publish reaching this core: delivered now, or, with a batch
    // interval, kept with the others of the interval and delivered with
    // them in one loop turn, so that each subscriber's frames leave in one send.
    void arrive(std::string_view name, const prepared_message& m) {
        if (options_.batch_interval.count() <= 0) return deliver(name, m);
        pending_.emplace_back(std::string(name), m);
        if (pending_.size() > 1) return;
        io_context* ctx = io_context::current();
        if (!ctx) return deliver_pending();
        spawn(*ctx, deliver_later(shared_from_this(), *ctx));
    }

    static task<void> deliver_later(std::shared_ptr<pubsub_core> self, io_context& ctx) {
        co_await async_sleep(ctx, self->options_.batch_interval);
        self->deliver_pending();
    }

    void deliver_pending() noexcept {
        auto batch = std::move(pending_);
        pending_.clear();
        for (const auto& [name, m] : batch) deliver(name, m);
    }

    // Queues `m` on every subscriber of `name` on this core.
    void deliver(std::string_view name, const prepared_message& m) noexcept {
        auto it = topics_.find(name);
        if (it == topics_.end()) return;
        for (subscription* s : it->second->subscribers) {
            connection_state& c = *s->conn;
            if (!is_open(c)) continue;  // closing: it leaves when its state goes
            if (queued_bytes(c) > options_.max_queued_bytes) {
                on_slow(c);
                continue;
            }
            try {
                queue_prepared(c, m);
                detail::count(detail::pubsub_deliveries);
            } catch (const std::exception&) {
                // the stream failed under it: the connection's reader ends it
            }
        }
    }

    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    std::uint64_t closed_slow() const noexcept { return closed_.load(std::memory_order_relaxed); }

private:
    void on_slow(connection_state& c) noexcept {
        detail::count(detail::pubsub_drops);
        if (options_.policy == slow_subscriber_policy::drop) {
            dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
            return;
        }
        closed_.store(closed_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        try {
            close_within(c, options_.close_code, "subscriber too slow", options_.close_grace);
        } catch (const std::exception&) {
        }
    }

    pubsub_options options_;
    std::vector<std::pair<std::string, prepared_message>> pending_;  // publishes waiting for the batch interval
    std::unordered_map<std::string, std::unique_ptr<topic_state>, topic_hash, std::equal_to<>> topics_;
    // Written on this core only; read from any (relaxed: counters).
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> closed_{0};
};

void deliver_everywhere(runtime* rt, const std::vector<std::shared_ptr<pubsub_core>>& cores, std::string_view topic,
                        const prepared_message& m) {
    if (!rt) {
        cores[0]->arrive(topic, m);
        return;
    }
    // This core's subscribers at once; every other core by one function
    // each, which the runtime batches into one MSG_RING post per core per turn.
    const int here = runtime::current() == rt ? runtime::current_core() : -1;
    for (std::size_t i = 0; i < cores.size(); ++i) {
        if (static_cast<int>(i) == here) {
            cores[i]->arrive(topic, m);
            continue;
        }
        rt->submit_to(i, [core = cores[i], name = std::string(topic), m] { core->arrive(name, m); });
    }
}

// True on the thread the broker bridge lives on: the one io_context's
// (no runtime), or core 0 of `rt`.
bool on_bridge_core(runtime* rt) noexcept {
    return !rt || (runtime::current() == rt && runtime::current_core() == 0);
}

void release_subscriptions(subscription_set& set) noexcept {
    for (auto& s : set.items) s->core->remove(*s);
    delete &set;
}

}  // namespace cnetmod::ws::detail

namespace cnetmod::ws {

pubsub::pubsub(io_context& ctx, pubsub_options options) : options_(std::move(options)) {
    cores_.push_back(std::make_shared<detail::pubsub_core>(options_));
    if (options_.broker.url.empty()) return;
    start_broker();
    bridge_->start(ctx);
}

pubsub::pubsub(runtime& rt, pubsub_options options) : rt_(&rt), options_(std::move(options)) {
    for (std::size_t i = 0; i < rt.size(); ++i) cores_.push_back(std::make_shared<detail::pubsub_core>(options_));
    if (options_.broker.url.empty()) return;
    start_broker();
    if (rt.started()) {
        rt.submit_to(0, [bridge = bridge_, &rt] { bridge->start(rt.core(0)); });
    } else {
        std::weak_ptr<detail::broker_bridge> weak = bridge_;
        rt.on_start([weak](io_context& ctx, std::size_t core) {
            if (auto bridge = weak.lock(); bridge && core == 0) bridge->start(ctx);
        });
    }
}

// The bridge lives on one context (core 0 of a runtime, started there as
// the runtime starts); each core tells it about its topics coming and going.
void pubsub::start_broker() {
    bridge_ = std::make_shared<detail::broker_bridge>(options_.broker, options_.message_options, rt_, cores_);
    std::weak_ptr<detail::broker_bridge> weak = bridge_;
    runtime* rt = rt_;
    for (auto& core : cores_) {
        core->on_topic = [weak, rt](std::string_view topic, bool up) {
            auto bridge = weak.lock();
            if (!bridge) return;
            if (detail::on_bridge_core(rt)) return bridge->topic_change(topic, up);
            rt->submit_to(0, [bridge, name = std::string(topic), up] { bridge->topic_change(name, up); });
        };
    }
}

pubsub::~pubsub() {
    if (bridge_) bridge_->request_stop();
}

broker_status pubsub::broker() const {
    if (!bridge_) return {};
    return bridge_->status();
}

std::size_t pubsub::local_index() const {
    if (!rt_) return 0;
    const int core = runtime::current() == rt_ ? runtime::current_core() : -1;
    if (core < 0 || static_cast<std::size_t>(core) >= cores_.size())
        throw std::logic_error("cnetmod: pubsub: subscribe on a core of the pubsub's runtime");
    return static_cast<std::size_t>(core);
}

void pubsub::subscribe(connection& c, std::string_view topic) {
    detail::connection_state* state = c.state();
    if (!state || !detail::is_open(*state)) throw connection_closed(c.close_code() ? c.close_code() : 1006);
    subscribe_state(state, c.context(), topic);
}

void pubsub::subscribe(socket_base s, std::string_view topic) {
    if (!s.is_open()) throw connection_closed(close_code::abnormal);
    subscribe_state(s.state(), s.context(), topic);
}

void pubsub::unsubscribe(socket_base s, std::string_view topic) {
    unsubscribe_state(s.state(), topic);
}

void pubsub::unsubscribe(connection& c, std::string_view topic) {
    unsubscribe_state(c.state(), topic);
}

void pubsub::subscribe_state(detail::connection_state* state, io_context& ctx, std::string_view topic) {
    if (!ctx.running_in_this_thread())
        throw std::logic_error("cnetmod: pubsub::subscribe runs on the connection's own core");
    const std::size_t here = local_index();
    detail::pubsub_core& core = *cores_[here];
    auto*& set = detail::subscriptions(*state);
    if (!set) set = new detail::subscription_set;
    for (const auto& s : set->items)
        if (s->core.get() == &core && s->topic->name == topic) return;  // already
    detail::topic_state& t = core.topic(topic);
    set->items.push_back(
        std::make_unique<detail::subscription>(detail::subscription{cores_[here], &t, state, t.subscribers.size()}));
    t.subscribers.push_back(set->items.back().get());
}

void pubsub::unsubscribe_state(detail::connection_state* state, std::string_view topic) {
    if (!state) return;
    detail::subscription_set* set = detail::subscriptions(*state);
    if (!set) return;
    detail::pubsub_core& core = *cores_[local_index()];
    for (auto it = set->items.begin(); it != set->items.end(); ++it) {
        if ((*it)->core.get() == &core && (*it)->topic->name == topic) {
            core.remove(**it);
            set->items.erase(it);
            return;
        }
    }
}

void pubsub::publish(std::string_view topic, std::string_view message, ws::opcode op) {
    publish(topic, prepared_message(op, message, options_.message_options));
}

void pubsub::publish(std::string_view topic, std::span<const std::byte> message, ws::opcode op) {
    publish(topic, prepared_message(op, message, options_.message_options));
}

void pubsub::publish(std::string_view topic, const prepared_message& message) {
    detail::deliver_everywhere(rt_, cores_, topic, message);
    if (!bridge_) return;
    // Once per server to the broker, from the bridge's core (in publish
    // order from each core: submit_to keeps it).
    if (detail::on_bridge_core(rt_)) return bridge_->publish(topic, message);
    rt_->submit_to(0, [bridge = bridge_, name = std::string(topic), message] { bridge->publish(name, message); });
}

std::size_t pubsub::local_subscribers(std::string_view topic) const {
    return cores_[local_index()]->subscribers(topic);
}

std::uint64_t pubsub::dropped() const noexcept {
    std::uint64_t n = 0;
    for (const auto& c : cores_) n += c->dropped();
    return n;
}

std::uint64_t pubsub::closed_slow() const noexcept {
    std::uint64_t n = 0;
    for (const auto& c : cores_) n += c->closed_slow();
    return n;
}

}  // namespace cnetmod::ws
