// ws::pubsub's bridge to a Redis broker: two connections on the bridge core
// (one publishes, one subscribes: a RESP2 connection in subscribe mode
// accepts no PUBLISH), each an ordinary tcp_stream on the io_context.
// Replies are parsed by hiredis's redisReader from the bytes received, and
// commands are built by its formatter; nothing here blocks or starts a thread.
//
// What goes through the broker is an envelope: a 2-byte tag, the origin
// server's 64-bit id, the opcode, then the payload, so that a server skips
// its own publishes when they come back and delivers the others with their
// opcode. A message on a channel without the tag (a backend's
// `PUBLISH cnetmod:room hello`) is delivered too: as text when it is UTF-8,
// else as binary.
#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/engine/tcp_stream.hpp>
#include <cnetmod/engine/timer.hpp>
#include <cnetmod/proto/ws/detail/broker.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <hiredis.h>
#include <system_error>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <unordered_map>

namespace cnetmod::ws::detail {

namespace {

using clock = std::chrono::steady_clock;

constexpr char envelope_tag[2] = {'\xC7', '\x01'};
constexpr std::size_t envelope_header = 2 + 8 + 1;

struct reply_deleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

std::string_view text_of(const redisReply& r) noexcept {
    return r.str ? std::string_view(r.str, r.len) : std::string_view();
}

// The broker answered a command of the connection's set-up with an error.
struct broker_refused : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One connection to the broker: its stream, its reply reader, and when each
// command still unanswered was sent (one entry per reply owed).
struct redis_link {
    tcp_stream s;
    redisReader* reader;
    std::deque<clock::time_point> owed;
    clock::time_point last_ping = clock::now();
    bool broken = false;
    std::string why;  // why it broke

    explicit redis_link(tcp_stream stream) : s(std::move(stream)), reader(redisReaderCreate()) {
        if (!reader) throw std::bad_alloc();
    }
    ~redis_link() { redisReaderFree(reader); }
    redis_link(const redis_link&) = delete;
    redis_link& operator=(const redis_link&) = delete;

    // Queues one command for the end-of-turn flush; `replies` is how many
    // replies it gets (SUBSCRIBE gets one per channel).
    void command(std::initializer_list<std::string_view> args, std::size_t replies = 1) {
        const char* argv[4];
        std::size_t lens[4];
        if (args.size() > 4) throw std::logic_error("cnetmod: redis_link::command takes at most 4 arguments");
        int argc = 0;
        for (std::string_view a : args) {
            argv[argc] = a.data();
            lens[argc++] = a.size();
        }
        command_argv(argc, argv, lens, replies);
    }
    void command_argv(int argc, const char** argv, const std::size_t* lens, std::size_t replies) {
        char* out = nullptr;
        const int n = redisFormatCommandArgv(&out, argc, argv, lens);
        if (n < 0) throw std::bad_alloc();
        try {
            s.queue(std::string_view(out, static_cast<std::size_t>(n)));
        } catch (...) {
            redisFreeCommand(out);
            throw;
        }
        redisFreeCommand(out);
        const auto now = clock::now();
        for (std::size_t i = 0; i < replies; ++i) owed.push_back(now);
    }
    void feed(std::span<const std::byte> bytes) {
        if (redisReaderFeed(reader, reinterpret_cast<const char*>(bytes.data()), bytes.size()) != REDIS_OK)
            throw std::runtime_error("reply reader: out of memory");
    }
    // The next whole reply received, or null when more bytes are needed.
    // Throws on a reply that is not RESP.
    reply_ptr next() {
        void* r = nullptr;
        if (redisReaderGetReply(reader, &r) != REDIS_OK)
            throw std::runtime_error(std::string("not a RESP reply: ") + reader->errstr);
        return reply_ptr(static_cast<redisReply*>(r));
    }
    void answered() noexcept {
        if (!owed.empty()) owed.pop_front();
    }
    // The oldest command unanswered longer than `limit`.
    bool stalled(clock::time_point now, std::chrono::milliseconds limit) const noexcept {
        return !owed.empty() && now - owed.front() > limit;
    }
    task<reply_ptr> read_reply(deadline d) {
        for (;;) {
            if (auto r = next()) {
                answered();
                co_return r;
            }
            auto v = co_await s.recv_view(d);
            if (v.empty()) throw std::runtime_error("the broker closed the connection");
            feed(v);
            s.consume(v.size());
        }
    }
};

}  // namespace

// ---- the URL ----

broker_url broker_url::parse(std::string_view url) {
    broker_url u;
    const auto bad = [&](const char* what) {
        return std::invalid_argument("cnetmod: broker URL '" + std::string(url) + "': " + what);
    };
    std::string_view rest = url;
    if (rest.starts_with("redis://")) {
        rest.remove_prefix(8);
    } else if (rest.starts_with("rediss://")) {
        rest.remove_prefix(9);
        u.tls = true;
    } else if (rest.starts_with("redis-cluster://")) {
        throw bad("Redis Cluster is not supported by this version (use redis:// or rediss://)");
    } else {
        throw bad("expected redis:// or rediss://");
    }
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const std::string_view cred = rest.substr(0, at);
        rest.remove_prefix(at + 1);
        if (const auto colon = cred.find(':'); colon != std::string_view::npos) {
            u.user = std::string(cred.substr(0, colon));
            u.password = std::string(cred.substr(colon + 1));
        } else {
            u.password = std::string(cred);  // redis://secret@host: a password alone
        }
    }
    std::string_view hostport = rest;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        hostport = rest.substr(0, slash);
        const std::string_view db = rest.substr(slash + 1);
        if (!db.empty()) {
            const auto r = std::from_chars(db.data(), db.data() + db.size(), u.db);
            if (r.ec != std::errc() || r.ptr != db.data() + db.size() || u.db < 0)
                throw bad("the database is not a number");
        }
    }
    std::string_view port;
    if (hostport.starts_with('[')) {  // [::1]:6379
        const auto close = hostport.find(']');
        if (close == std::string_view::npos) throw bad("unclosed [ in the host");
        u.host = std::string(hostport.substr(1, close - 1));
        const std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(':')) throw bad("expected :port after the host");
            port = after.substr(1);
        }
    } else if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
        u.host = std::string(hostport.substr(0, colon));
        port = hostport.substr(colon + 1);
    } else {
        u.host = std::string(hostport);
    }
    if (u.host.empty()) throw bad("no host");
    if (!port.empty()) {
        unsigned p = 0;
        const auto r = std::from_chars(port.data(), port.data() + port.size(), p);
        if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535)
            throw bad("the port is not a number from 1 to 65535");
        u.port = static_cast<std::uint16_t>(p);
    }
    return u;
}

std::string broker_url::display() const {
    std::string out = tls ? "rediss://" : "redis://";
    if (!user.empty() || !password.empty()) out += user + (password.empty() ? "@" : ":***@");
    out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    out += ":" + std::to_string(port);
    return out;
}

// ---- the bridge ----

struct broker_shared : std::enable_shared_from_this<broker_shared> {
    broker_options o;
    options message_options;
    broker_url url;
    runtime* rt;
    std::vector<std::shared_ptr<pubsub_core>> cores;
    std::uint64_t origin;
    std::optional<tls_context> tls;
    io_context* ctx = nullptr;

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> published{0}, received{0}, dropped{0}, connects{0};
    std::atomic<std::size_t> subscribed{0};
    mutable std::mutex status_lock;  // state and error, read from any thread
    broker_state state = broker_state::connecting;
    std::string error;
    std::string logged;  // the last error written to the log: each is written once

    // On the bridge core only:
    std::shared_ptr<redis_link> pub, sub;                 // both set while connected
    std::unordered_map<std::string, std::size_t> topics;  // cores with a local subscriber, per topic
    std::string channel_scratch, envelope_scratch;
    std::minstd_rand jitter{std::random_device{}()};

    void bump(std::atomic<std::uint64_t>& c) noexcept {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    void set_state(broker_state s, std::string_view why = {}) {
        std::string line;
        {
            std::lock_guard lock(status_lock);
            state = s;
            if (!why.empty()) error = std::string(why);
            if (!why.empty() && why != logged) {
                logged = std::string(why);
                line = "cnetmod: broker " + url.display() + ": " + std::string(why);
            } else if (s == broker_state::connected && !logged.empty()) {
                logged.clear();  // back after an error: say so once
                line = "cnetmod: broker " + url.display() + ": connected again";
            }
        }
        if (!line.empty()) std::fprintf(stderr, "%s\n", line.c_str());
    }

    const std::string& channel(std::string_view topic) {
        channel_scratch.assign(o.channel_prefix);
        channel_scratch.append(topic);
        return channel_scratch;
    }

    task<std::shared_ptr<redis_link>> open_link() {
        const deadline d = timeout(o.connect_timeout);
        auto s = co_await tcp_connect(*ctx, url.host, url.port, d);
        if (url.tls) s.start_tls(*tls, url.host, d);
        auto link = std::make_shared<redis_link>(std::move(s));
        const bool auth = !url.password.empty();
        if (auth) {
            if (url.user.empty())
                link->command({"AUTH", url.password});
            else
                link->command({"AUTH", url.user, url.password});
        }
        link->command({"PING"});
        const deadline replies = timeout(o.connect_timeout + o.reply_timeout);
        if (auth) {
            auto r = co_await link->read_reply(replies);
            if (r->type == REDIS_REPLY_ERROR) throw broker_refused("AUTH refused: " + std::string(text_of(*r)));
        }
        auto r = co_await link->read_reply(replies);
        if (r->type == REDIS_REPLY_ERROR) throw broker_refused("PING refused: " + std::string(text_of(*r)));
        co_return link;
    }

    void subscribe_all() {
        if (topics.empty()) return;
        std::vector<std::string> names;
        names.reserve(topics.size());
        for (const auto& [t, n] : topics) names.push_back(o.channel_prefix + t);
        // One SUBSCRIBE per 256 channels (one reply per channel).
        for (std::size_t i = 0; i < names.size(); i += 256) {
            const std::size_t n = std::min<std::size_t>(256, names.size() - i);
            std::vector<const char*> argv{"SUBSCRIBE"};
            std::vector<std::size_t> lens{9};
            for (std::size_t j = i; j < i + n; ++j) {
                argv.push_back(names[j].data());
                lens.push_back(names[j].size());
            }
            sub->command_argv(static_cast<int>(argv.size()), argv.data(), lens.data(), n);
        }
    }

    void publish(std::string_view topic, const prepared_message& m) {
        if (!pub || pub->s.queued_bytes() > o.max_queued_bytes) {
            bump(dropped);
            return;
        }
        const auto payload = m.plain_payload();
        envelope_scratch.resize(envelope_header + payload.size());
        char* e = envelope_scratch.data();
        e[0] = envelope_tag[0];
        e[1] = envelope_tag[1];
        for (int i = 0; i < 8; ++i) e[2 + i] = static_cast<char>(origin >> (8 * i));
        e[10] = static_cast<char>(m.op());
        if (!payload.empty()) std::memcpy(e + envelope_header, payload.data(), payload.size());
        try {
            pub->command({"PUBLISH", channel(topic), envelope_scratch});
        } catch (const std::exception&) {
            bump(dropped);  // the stream failed under it: the reader reconnects
            return;
        }
        bump(published);
    }

    void topic_change(std::string_view topic, bool up) {
        auto it = topics.find(std::string(topic));
        if (up) {
            if (it == topics.end()) it = topics.emplace(std::string(topic), 0).first;
            if (it->second++ > 0 || !sub) return;
            try {
                sub->command({"SUBSCRIBE", channel(topic)});
            } catch (const std::exception&) {
            }
            return;
        }
        if (it == topics.end() || --it->second > 0) return;
        topics.erase(it);
        if (!sub) return;
        try {
            sub->command({"UNSUBSCRIBE", channel(topic)});
        } catch (const std::exception&) {
        }
    }

    // A message the broker pushed on the subscribing connection.
    void on_message(std::string_view channel_name, std::string_view data) {
        if (!channel_name.starts_with(o.channel_prefix)) return;
        const std::string_view topic = channel_name.substr(o.channel_prefix.size());
        ws::opcode op;
        std::string_view payload;
        if (data.size() >= envelope_header && data[0] == envelope_tag[0] && data[1] == envelope_tag[1]) {
            std::uint64_t from = 0;
            for (int i = 0; i < 8; ++i) from |= std::uint64_t{static_cast<unsigned char>(data[2 + i])} << (8 * i);
            if (from == origin) return;  // our own publish, delivered locally already
            op = static_cast<ws::opcode>(static_cast<unsigned char>(data[10]));
            if (op != ws::opcode::text && op != ws::opcode::binary) return;
            payload = data.substr(envelope_header);
        } else {
            payload = data;
            op = is_valid_utf8(payload) ? ws::opcode::text : ws::opcode::binary;
        }
        const prepared_message m(op, payload, message_options);
        bump(received);
        deliver_everywhere(rt, cores, topic, m);
    }

    // A reply on the subscribing connection: a pushed message, or the
    // answer to SUBSCRIBE, UNSUBSCRIBE or PING.
    void on_sub_reply(const redisReply& r) {
        if (r.type == REDIS_REPLY_ARRAY && r.elements >= 1 && r.element[0]->type == REDIS_REPLY_STRING) {
            const std::string_view kind = text_of(*r.element[0]);
            if (kind == "message" && r.elements == 3) return on_message(text_of(*r.element[1]), text_of(*r.element[2]));
            if ((kind == "subscribe" || kind == "unsubscribe") && r.elements == 3 &&
                r.element[2]->type == REDIS_REPLY_INTEGER)
                subscribed.store(static_cast<std::size_t>(r.element[2]->integer), std::memory_order_relaxed);
            sub->answered();
            return;
        }
        sub->answered();
        if (r.type == REDIS_REPLY_ERROR) set_state(broker_state::connected, "error reply: " + std::string(text_of(r)));
    }

    // Reads the publishing connection's replies (PUBLISH's receiver counts,
    // PONGs) until it breaks; then wakes the subscriber loop.
    static task<void> read_publisher(std::shared_ptr<broker_shared> self, std::shared_ptr<redis_link> pub,
                                     std::shared_ptr<redis_link> sub) {
        try {
            for (;;) {
                auto v = co_await pub->s.recv_view();
                if (v.empty()) throw std::runtime_error("the broker closed the connection");
                pub->feed(v);
                pub->s.consume(v.size());
                while (auto r = pub->next()) {
                    pub->answered();
                    if (r->type == REDIS_REPLY_ERROR)
                        self->set_state(broker_state::connected, "error reply: " + std::string(text_of(*r)));
                }
            }
        } catch (const std::exception& e) {
            pub->why = e.what();
        }
        pub->broken = true;
        sub->s.abort();  // the subscriber loop ends, and the bridge reconnects
    }

    // Reads the subscribing connection and keeps both alive, until one
    // breaks or stalls or the bridge stops; returns why.
    task<std::string> read_subscriber() {
        auto sub_link = sub;
        auto pub_link = pub;
        for (;;) {
            if (stop.load(std::memory_order_relaxed)) co_return std::string();
            if (pub_link->broken) co_return pub_link->why;
            const auto now = clock::now();
            if (pub_link->stalled(now, o.reply_timeout) || sub_link->stalled(now, o.reply_timeout))
                co_return "no reply from the broker within " + std::to_string(o.reply_timeout.count()) + " ms";
            if (now - sub_link->last_ping >= o.ping_interval) {
                sub_link->last_ping = now;
                try {
                    sub_link->command({"PING"});
                    pub_link->command({"PING"});
                } catch (const std::exception& e) {
                    co_return e.what();
                }
            }
            try {
                auto v = co_await sub_link->s.recv_view(timeout(o.ping_interval));
                if (v.empty()) co_return pub_link->broken ? pub_link->why : "the broker closed the connection";
                sub_link->feed(v);
                sub_link->s.consume(v.size());
                while (auto r = sub_link->next()) on_sub_reply(*r);
            } catch (const std::system_error& e) {
                if (e.code() == std::errc::timed_out) continue;
                co_return pub_link->broken ? pub_link->why : e.what();
            } catch (const std::exception& e) {
                co_return e.what();
            }
        }
    }

    static task<void> run(std::shared_ptr<broker_shared> self) {
        broker_shared& b = *self;
        auto backoff = b.o.backoff_min;
        while (!b.stop.load(std::memory_order_relaxed)) {
            bool refused = false;
            std::string why;
            try {
                auto p = co_await b.open_link();
                auto s = co_await b.open_link();
                b.pub = std::move(p);
                b.sub = std::move(s);
            } catch (const broker_refused& e) {
                refused = true;
                why = e.what();
            } catch (const std::exception& e) {
                why = std::string("cannot connect: ") + e.what();
            }
            if (b.pub && b.sub) {
                b.bump(b.connects);
                backoff = b.o.backoff_min;
                b.subscribed.store(0, std::memory_order_relaxed);
                b.subscribe_all();
                b.set_state(broker_state::connected);
                spawn(*b.ctx, read_publisher(self, b.pub, b.sub));
                why = co_await b.read_subscriber();
                auto p = std::move(b.pub), s = std::move(b.sub);
                b.pub.reset();
                b.sub.reset();
                p->s.abort();
                s->s.abort();
                b.subscribed.store(0, std::memory_order_relaxed);
                if (b.stop.load(std::memory_order_relaxed)) break;
            }
            b.set_state(refused ? broker_state::failed : broker_state::connecting, why);
            auto wait = refused ? b.o.backoff_max : backoff;
            const auto ms = wait.count();
            if (ms > 1) wait -= std::chrono::milliseconds(b.jitter() % static_cast<std::uint64_t>(ms / 2 + 1));
            co_await async_sleep(*b.ctx, wait);
            backoff = std::min(backoff * 2, b.o.backoff_max);
        }
        std::lock_guard lock(b.status_lock);
        b.state = broker_state::connecting;
    }
};

broker_bridge::broker_bridge(const broker_options& options, const ws::options& message_options, runtime* rt,
                             std::vector<std::shared_ptr<pubsub_core>> cores)
    : shared_(std::make_shared<broker_shared>()) {
    broker_shared& b = *shared_;
    b.o = options;
    b.message_options = message_options;
    b.url = broker_url::parse(options.url);
    b.rt = rt;
    b.cores = std::move(cores);
    std::random_device rd;
    b.origin = (std::uint64_t{rd()} << 32) ^ rd();
    if (b.url.tls) b.tls.emplace(tls_context::client(options.tls));
    if (b.o.ping_interval.count() <= 0) b.o.ping_interval = std::chrono::milliseconds(1000);
    if (b.o.backoff_min.count() <= 0) b.o.backoff_min = std::chrono::milliseconds(1);
    b.o.backoff_max = std::max(b.o.backoff_max, b.o.backoff_min);
}

broker_bridge::~broker_bridge() {
    request_stop();
}

void broker_bridge::start(io_context& ctx) {
    if (shared_->ctx) return;  // once
    shared_->ctx = &ctx;
    spawn(ctx, broker_shared::run(shared_));
}

void broker_bridge::request_stop() noexcept {
    shared_->stop.store(true, std::memory_order_relaxed);
}

void broker_bridge::publish(std::string_view topic, const prepared_message& m) {
    shared_->publish(topic, m);
}

void broker_bridge::topic_change(std::string_view topic, bool up) {
    shared_->topic_change(topic, up);
}

broker_status broker_bridge::status() const {
    const broker_shared& b = *shared_;
    broker_status s;
    {
        std::lock_guard lock(b.status_lock);
        s.state = b.state;
        s.error = b.error;
    }
    s.published = b.published.load(std::memory_order_relaxed);
    s.received = b.received.load(std::memory_order_relaxed);
    s.dropped = b.dropped.load(std::memory_order_relaxed);
    s.connects = b.connects.load(std::memory_order_relaxed);
    s.subscribed_topics = b.subscribed.load(std::memory_order_relaxed);
    return s;
}

}  // namespace cnetmod::ws::detail
