// ws::pubsub's bridge to a Redis broker: two connections per Redis node on
// the bridge core (one publishes, one subscribes: a RESP2 connection in
// subscribe mode accepts no PUBLISH), each an ordinary tcp_stream on the
// io_context; one node, or with Redis Cluster every master of the slot map,
// each topic going to its slot's node with SSUBSCRIBE/SPUBLISH.
// Replies are parsed by hiredis's redisReader from the bytes received, and
// commands are built by its formatter; nothing here blocks or starts a thread.
//
// What goes through the broker is an envelope: a 2-byte tag, the origin
// server's 64-bit id, the opcode, then the payload, so that a server skips
// its own publishes when they come back and delivers the others with their
// opcode. A message on a channel without the tag (a backend's
// `PUBLISH cnetmod:room hello`) is delivered too: as text when it is UTF-8,
// else as binary.
#include <cnetmod/engine/log.hpp>
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
#include <functional>
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

// A command sent and not yet fully answered: when it went, how many
// replies it still owes (SUBSCRIBE gets one per channel, or one error for
// all of them), what it was, and the topics it subscribed.
struct owed_command {
    enum kind_t : std::uint8_t { plain, subscribe, unsubscribe };
    clock::time_point at;
    std::size_t replies;
    kind_t kind;
    std::vector<std::string> topics;  // subscribe: the topics it named
};

// One connection to the broker: its stream, its reply reader, and the
// commands still unanswered, oldest first.
struct redis_link {
    tcp_stream s;
    redisReader* reader;
    std::deque<owed_command> owed;
    clock::time_point last_ping = clock::now();
    bool broken = false;
    std::string why;  // why it broke

    explicit redis_link(tcp_stream stream) : s(std::move(stream)), reader(redisReaderCreate()) {
        if (!reader) throw std::bad_alloc();
    }
    ~redis_link() { redisReaderFree(reader); }
    redis_link(const redis_link&) = delete;
    redis_link& operator=(const redis_link&) = delete;

    // Queues one command for the end-of-turn flush.
    void command(std::initializer_list<std::string_view> args, owed_command::kind_t kind = owed_command::plain,
                 std::vector<std::string> topics = {}) {
        const char* argv[4];
        std::size_t lens[4];
        if (args.size() > 4) throw std::logic_error("cnetmod: redis_link::command takes at most 4 arguments");
        int argc = 0;
        for (std::string_view a : args) {
            argv[argc] = a.data();
            lens[argc++] = a.size();
        }
        command_argv(argc, argv, lens, 1, kind, std::move(topics));
    }
    // `replies`: how many replies a success gets (SUBSCRIBE: one per channel).
    void command_argv(int argc, const char** argv, const std::size_t* lens, std::size_t replies,
                      owed_command::kind_t kind = owed_command::plain, std::vector<std::string> topics = {}) {
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
        owed.push_back(owed_command{clock::now(), replies, kind, std::move(topics)});
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
    // A reply to the oldest command: it is answered once all its replies
    // came, or at once by an error (Redis answers a failed command with one
    // error, however many channels it named). Returns the command when it
    // is done with.
    std::optional<owed_command> answered(bool error) {
        if (owed.empty()) return std::nullopt;
        if (!error && --owed.front().replies > 0) return std::nullopt;
        owed_command done = std::move(owed.front());
        owed.pop_front();
        return done;
    }
    // The oldest command unanswered longer than `limit`.
    bool stalled(clock::time_point now, std::chrono::milliseconds limit) const noexcept {
        return !owed.empty() && now - owed.front().at > limit;
    }
    task<reply_ptr> read_reply(deadline d) {
        for (;;) {
            if (auto r = next()) {
                answered(r->type == REDIS_REPLY_ERROR);
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

namespace {

// One "host[:port]" of a URL ("[v6]:port" too); the port defaults to 6379.
std::pair<std::string, std::uint16_t> parse_host_port(std::string_view hostport,
                                                      const std::function<std::invalid_argument(const char*)>& bad) {
    std::string host;
    std::string_view port;
    if (hostport.starts_with('[')) {  // [::1]:6379
        const auto close = hostport.find(']');
        if (close == std::string_view::npos) throw bad("unclosed [ in the host");
        host = std::string(hostport.substr(1, close - 1));
        const std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(':')) throw bad("expected :port after the host");
            port = after.substr(1);
        }
    } else if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
        host = std::string(hostport.substr(0, colon));
        port = hostport.substr(colon + 1);
    } else {
        host = std::string(hostport);
    }
    if (host.empty()) throw bad("no host");
    std::uint16_t number = 6379;
    if (!port.empty()) {
        unsigned p = 0;
        const auto r = std::from_chars(port.data(), port.data() + port.size(), p);
        if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535)
            throw bad("the port is not a number from 1 to 65535");
        number = static_cast<std::uint16_t>(p);
    }
    return {std::move(host), number};
}

}  // namespace

broker_url broker_url::parse(std::string_view url) {
    broker_url u;
    const std::function<std::invalid_argument(const char*)> bad = [&](const char* what) {
        return std::invalid_argument("cnetmod: broker URL '" + std::string(url) + "': " + what);
    };
    std::string_view rest = url;
    if (rest.starts_with("redis://")) {
        rest.remove_prefix(8);
    } else if (rest.starts_with("rediss://")) {
        rest.remove_prefix(9);
        u.tls = true;
    } else if (rest.starts_with("redis-cluster://")) {
        rest.remove_prefix(16);
        u.cluster = true;
    } else {
        throw bad("expected redis://, rediss:// or redis-cluster://");
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
    std::string_view hosts = rest;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        hosts = rest.substr(0, slash);
        const std::string_view db = rest.substr(slash + 1);
        if (!db.empty()) {
            const auto r = std::from_chars(db.data(), db.data() + db.size(), u.db);
            if (r.ec != std::errc() || r.ptr != db.data() + db.size() || u.db < 0)
                throw bad("the database is not a number");
        }
    }
    for (;;) {
        const auto comma = hosts.find(',');
        if (comma != std::string_view::npos && !u.cluster) throw bad("several hosts: use redis-cluster://");
        u.seeds.push_back(parse_host_port(hosts.substr(0, comma), bad));
        if (comma == std::string_view::npos) break;
        hosts.remove_prefix(comma + 1);
    }
    u.host = u.seeds.front().first;
    u.port = u.seeds.front().second;
    return u;
}

std::string broker_url::display() const {
    std::string out = cluster ? "redis-cluster://" : tls ? "rediss://" : "redis://";
    if (!user.empty() || !password.empty()) out += user + (password.empty() ? "@" : ":***@");
    for (std::size_t i = 0; i < seeds.size(); ++i) {
        if (i) out += ",";
        out += seeds[i].first.find(':') != std::string::npos ? "[" + seeds[i].first + "]" : seeds[i].first;
        out += ":" + std::to_string(seeds[i].second);
    }
    return out;
}

// ---- the bridge ----

// Redis Cluster's slot of a channel: CRC16 (XMODEM) of its hash tag (the
// part between the first { and the next }, when not empty) or of the whole
// name, modulo 16384.
std::uint16_t cluster_slot(std::string_view key) noexcept {
    if (const auto open = key.find('{'); open != std::string_view::npos) {
        const auto close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
    }
    std::uint16_t crc = 0;
    for (char c : key) {
        crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(c) << 8);
        for (int i = 0; i < 8; ++i) crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return static_cast<std::uint16_t>(crc & 16383);
}

namespace {

constexpr std::size_t cluster_slots = 16384;

// One Redis server the bridge talks to: one publishing and one subscribing
// connection (both set while connected), and what its loop needs.
struct broker_node {
    std::string host;
    std::uint16_t port;
    // Both set while connected. The node's loop owns them (its frame, and
    // its reader's): a context torn down with the loop waiting frees them
    // while its ring is still there, and the loop's guard clears these.
    redis_link* pub = nullptr;
    redis_link* sub = nullptr;
    bool removed = false;       // no longer in the cluster's slot map: its loop ends
    std::size_t confirmed = 0;  // channels the node confirmed on `sub`
    std::string key() const { return host + ":" + std::to_string(port); }
};

struct topic_entry {
    std::size_t cores = 0;      // cores with a local subscriber
    broker_node* on = nullptr;  // the node it is subscribed on (the command is sent)
};

}  // namespace

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
    std::string logged;        // the last failure written to the log: each is written once
    std::string logged_reply;  // the same for error replies

    // On the bridge core only:
    std::vector<std::shared_ptr<broker_node>> nodes;  // one unless cluster
    std::vector<broker_node*> slots;                  // cluster: the node of each slot (null: unknown)
    bool refresh_wanted = false;                      // cluster: the slot map is stale
    std::unordered_map<std::string, topic_entry> topics;
    std::string channel_scratch, envelope_scratch;
    std::minstd_rand jitter{std::random_device{}()};

    const char* publish_command() const noexcept { return url.cluster ? "SPUBLISH" : "PUBLISH"; }
    const char* subscribe_command() const noexcept { return url.cluster ? "SSUBSCRIBE" : "SUBSCRIBE"; }
    const char* unsubscribe_command() const noexcept { return url.cluster ? "SUNSUBSCRIBE" : "UNSUBSCRIBE"; }

    void bump(std::atomic<std::uint64_t>& c) noexcept {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    // Logs `why` unless it was the last thing logged; `back`: say once that
    // the bridge is connected again after a logged failure. An error reply
    // on a working connection (`transient`) is logged but is no failure.
    void log_line(std::string_view why, bool back, bool transient = false) {
        std::string line;
        {
            std::lock_guard lock(status_lock);
            if (!why.empty()) error = std::string(why);
            if (!why.empty() && transient) {
                if (why != logged_reply) {
                    logged_reply = std::string(why);
                    line = "broker " + url.display() + ": " + std::string(why);
                }
            } else if (!why.empty() && why != logged) {
                logged = std::string(why);
                line = "broker " + url.display() + ": " + std::string(why);
            } else if (back && !logged.empty()) {
                logged.clear();  // back after an error: say so once
                line = "broker " + url.display() + ": connected again";
            }
        }
        if (!line.empty()) log(back && why.empty() ? log_level::info : log_level::warning, line);
    }

    // Connected when every node of the map has both connections.
    void update_state(std::string_view why = {}, bool refused = false) {
        bool all = !nodes.empty();
        std::size_t confirmed = 0;
        for (const auto& n : nodes) {
            all = all && n->pub && n->sub;
            confirmed += n->confirmed;
        }
        if (url.cluster) all = all && !slots.empty();  // apply_slots takes only a map without holes
        subscribed.store(confirmed, std::memory_order_relaxed);
        const broker_state s = all       ? broker_state::connected
                               : refused ? broker_state::failed
                                         : broker_state::connecting;
        {
            std::lock_guard lock(status_lock);
            state = s;
        }
        log_line(why, s == broker_state::connected);
    }

    const std::string& channel(std::string_view topic) {
        channel_scratch.assign(o.channel_prefix);
        channel_scratch.append(topic);
        return channel_scratch;
    }

    // The node a topic's channel lives on (null while unknown).
    broker_node* owner(std::string_view topic) {
        if (!url.cluster) return nodes.empty() ? nullptr : nodes.front().get();
        if (slots.empty()) return nullptr;
        return slots[cluster_slot(channel(topic))];
    }

    task<std::shared_ptr<redis_link>> open_link(const std::string& host, std::uint16_t port) {
        const deadline d = timeout(o.connect_timeout);
        auto s = co_await tcp_connect(*ctx, host, port, d);
        if (url.tls) s.start_tls(*tls, host, d);
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

    // Subscribes `n` to every topic that lives on it, 256 channels a
    // command (one each in a cluster: SSUBSCRIBE takes channels of one slot).
    void subscribe_node(broker_node& n) {
        std::vector<std::string> names, named;
        for (auto& [t, e] : topics) {
            if (owner(t) != &n) continue;
            e.on = &n;
            names.push_back(o.channel_prefix + t);
            named.push_back(t);
        }
        const char* command = subscribe_command();
        const std::size_t per_command = url.cluster ? 1 : 256;
        for (std::size_t i = 0; i < names.size(); i += per_command) {
            const std::size_t count = std::min<std::size_t>(per_command, names.size() - i);
            std::vector<const char*> argv{command};
            std::vector<std::size_t> lens{std::strlen(command)};
            for (std::size_t j = i; j < i + count; ++j) {
                argv.push_back(names[j].data());
                lens.push_back(names[j].size());
            }
            n.sub->command_argv(static_cast<int>(argv.size()), argv.data(), lens.data(), count, owed_command::subscribe,
                                std::vector<std::string>(named.begin() + static_cast<std::ptrdiff_t>(i),
                                                         named.begin() + static_cast<std::ptrdiff_t>(i + count)));
        }
    }

    void subscribe_on(broker_node* n, std::string_view topic) {
        if (!n || !n->sub) return;
        try {
            n->sub->command({subscribe_command(), channel(topic)}, owed_command::subscribe, {std::string(topic)});
        } catch (const std::exception&) {
        }
    }

    void unsubscribe_on(broker_node* n, std::string_view topic) {
        if (!n || !n->sub) return;
        try {
            n->sub->command({unsubscribe_command(), channel(topic)}, owed_command::unsubscribe, {std::string(topic)});
        } catch (const std::exception&) {
        }
    }

    void publish(std::string_view topic, const prepared_message& m) {
        broker_node* n = owner(topic);
        if (!n || !n->pub || n->pub->s.queued_bytes() > o.max_queued_bytes) {
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
            n->pub->command({publish_command(), channel(topic), envelope_scratch});
        } catch (const std::exception&) {
            bump(dropped);  // the stream failed under it: the reader reconnects
            return;
        }
        bump(published);
    }

    void topic_change(std::string_view topic, bool up) {
        auto it = topics.find(std::string(topic));
        if (up) {
            if (it == topics.end()) it = topics.emplace(std::string(topic), topic_entry{}).first;
            if (it->second.cores++ > 0) return;
            it->second.on = owner(topic);
            subscribe_on(it->second.on, topic);
            return;
        }
        if (it == topics.end() || --it->second.cores > 0) return;
        broker_node* on = it->second.on;
        topics.erase(it);
        unsubscribe_on(on, topic);
    }

    // A message a node pushed on a subscribing connection.
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

    // A reply on a subscribing connection: a pushed message, or the answer
    // to (S)SUBSCRIBE, (S)UNSUBSCRIBE or PING.
    void on_sub_reply(broker_node& n, const redisReply& r) {
        if (r.type == REDIS_REPLY_ARRAY && r.elements >= 1 && r.element[0]->type == REDIS_REPLY_STRING) {
            const std::string_view kind = text_of(*r.element[0]);
            if ((kind == "message" || kind == "smessage") && r.elements == 3)
                return on_message(text_of(*r.element[1]), text_of(*r.element[2]));
            if (r.elements == 3 && r.element[2]->type == REDIS_REPLY_INTEGER &&
                (kind == "subscribe" || kind == "unsubscribe" || kind == "ssubscribe" || kind == "sunsubscribe")) {
                n.confirmed = static_cast<std::size_t>(r.element[2]->integer);
                if (kind.ends_with("unsubscribe")) {
                    // Ours only when the oldest command is our unsubscribe of
                    // that channel: a node that gives a slot away pushes one unasked.
                    const auto& owed = n.sub->owed;
                    const bool ours = !owed.empty() && owed.front().kind == owed_command::unsubscribe &&
                                      !owed.front().topics.empty() &&
                                      text_of(*r.element[1]) == o.channel_prefix + owed.front().topics.front();
                    if (!ours) {
                        if (kind == "sunsubscribe") refresh_wanted = true;
                        update_state();
                        return;
                    }
                }
            }
            n.sub->answered(false);
            update_state();
            return;
        }
        if (r.type != REDIS_REPLY_ERROR) {
            n.sub->answered(false);  // +PONG
            return;
        }
        // A (S)SUBSCRIBE refused (MOVED, CLUSTERDOWN, NOPERM...): its topics
        // count as subscribed nowhere, so that the next slot map places them again.
        if (auto done = n.sub->answered(true); done && done->kind == owed_command::subscribe) {
            for (const auto& t : done->topics)
                if (auto it = topics.find(t); it != topics.end() && it->second.on == &n) it->second.on = nullptr;
        }
        on_error_reply(text_of(r));
    }

    void on_error_reply(std::string_view text) {
        if (url.cluster && (text.starts_with("MOVED") || text.starts_with("ASK") || text.starts_with("CLUSTERDOWN"))) {
            refresh_wanted = true;  // the map changed under us; what was sent there is lost
            return;
        }
        log_line("error reply: " + std::string(text), false, true);
    }

    // Reads a node's publishing connection's replies (PUBLISH's receiver
    // counts, PONGs) until it breaks; then wakes the subscriber loop.
    static task<void> read_publisher(std::shared_ptr<broker_shared> self, std::shared_ptr<redis_link> pub,
                                     std::shared_ptr<redis_link> sub) {
        try {
            for (;;) {
                auto v = co_await pub->s.recv_view();
                if (v.empty()) throw std::runtime_error("the broker closed the connection");
                pub->feed(v);
                pub->s.consume(v.size());
                while (auto r = pub->next()) {
                    const bool error = r->type == REDIS_REPLY_ERROR;
                    pub->answered(error);
                    if (!error) continue;
                    if (text_of(*r).starts_with("MOVED") || text_of(*r).starts_with("CLUSTERDOWN")) {
                        // A publish that did not go out after all: dropped, not published.
                        self->published.fetch_sub(1, std::memory_order_relaxed);
                        self->bump(self->dropped);
                    }
                    self->on_error_reply(text_of(*r));
                }
            }
        } catch (const std::exception& e) {
            pub->why = e.what();
        }
        pub->broken = true;
        sub->s.abort();  // the subscriber loop ends, and the node reconnects
    }

    // Reads a node's subscribing connection and keeps both alive, until one
    // breaks or stalls, the node leaves the map or the bridge stops; returns why.
    task<std::string> read_subscriber(std::shared_ptr<broker_node> node, std::shared_ptr<redis_link> pub_link,
                                      std::shared_ptr<redis_link> sub_link) {
        for (;;) {
            if (stop.load(std::memory_order_relaxed) || node->removed) co_return std::string();
            if (pub_link->broken) co_return pub_link->why;
            const auto now = clock::now();
            if (pub_link->stalled(now, o.reply_timeout) || sub_link->stalled(now, o.reply_timeout))
                co_return "no reply from " + node->key() + " within " + std::to_string(o.reply_timeout.count()) + " ms";
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
                while (auto r = sub_link->next()) on_sub_reply(*node, *r);
            } catch (const std::system_error& e) {
                if (e.code() == std::errc::timed_out) continue;
                co_return pub_link->broken ? pub_link->why : e.what();
            } catch (const std::exception& e) {
                co_return e.what();
            }
        }
    }

    // One node's life: connect both connections, subscribe what lives on
    // it, read until something breaks, back off, again.
    static task<void> run_node(std::shared_ptr<broker_shared> self, std::shared_ptr<broker_node> node) {
        broker_shared& b = *self;
        struct clear_links {  // the node's pointers go with this frame, however it ends
            broker_shared& b;
            broker_node& n;
            ~clear_links() {
                n.pub = n.sub = nullptr;
                n.confirmed = 0;
                std::lock_guard lock(b.status_lock);
                if (b.state == broker_state::connected) b.state = broker_state::connecting;
            }
        } guard{b, *node};
        auto backoff = b.o.backoff_min;
        while (!b.stop.load(std::memory_order_relaxed) && !node->removed) {
            bool refused = false;
            std::string why;
            std::shared_ptr<redis_link> p, s;
            try {
                p = co_await b.open_link(node->host, node->port);
                s = co_await b.open_link(node->host, node->port);
            } catch (const broker_refused& e) {
                refused = true;
                why = e.what();
                p.reset();
            } catch (const std::exception& e) {
                why = std::string("cannot connect: ") + e.what();
                p.reset();
            }
            if (node->removed) break;
            if (p && s) {
                node->pub = p.get();
                node->sub = s.get();
                b.bump(b.connects);
                const auto session_start = clock::now();
                node->confirmed = 0;
                bool started = false;
                try {
                    b.subscribe_node(*node);
                    b.update_state();
                    spawn(*b.ctx, read_publisher(self, p, s));
                    started = true;
                } catch (const std::exception& e) {
                    why = e.what();  // the stream failed under the subscriptions: as a broken session
                }
                if (started) why = co_await b.read_subscriber(node, p, s);
                // The delay starts over only after a session that lasted: a
                // node that drops us right after each connect is backed off too.
                if (clock::now() - session_start >= b.o.backoff_max) backoff = b.o.backoff_min;
                node->pub = node->sub = nullptr;
                p->s.abort();
                s->s.abort();
                node->confirmed = 0;
                if (b.stop.load(std::memory_order_relaxed) || node->removed) break;
                if (b.url.cluster) b.refresh_wanted = true;  // a node went: its slots may have moved
            }
            b.update_state(url_cluster_prefix(b, *node) + why, refused);
            auto wait = refused ? b.o.backoff_max : backoff;
            const auto ms = wait.count();
            if (ms > 1) wait -= std::chrono::milliseconds(b.jitter() % static_cast<std::uint64_t>(ms / 2 + 1));
            co_await async_sleep(*b.ctx, wait);
            backoff = std::min(backoff * 2, b.o.backoff_max);
        }
        b.update_state();
    }

    static std::string url_cluster_prefix(const broker_shared& b, const broker_node& n) {
        return b.url.cluster ? n.key() + ": " : std::string();
    }

    // ---- Redis Cluster ----

    // Asks one node after another (the known ones, then the URL's seeds)
    // for the slot map, over a connection of its own.
    task<bool> refresh_slots() {
        std::vector<std::pair<std::string, std::uint16_t>> candidates;
        for (const auto& n : nodes) candidates.emplace_back(n->host, n->port);
        for (const auto& s : url.seeds)
            if (std::find(candidates.begin(), candidates.end(), s) == candidates.end()) candidates.push_back(s);
        std::string why = "no cluster node reachable";
        for (const auto& [host, port] : candidates) {
            try {
                auto link = co_await open_link(host, port);
                link->command({"CLUSTER", "SLOTS"});
                auto r = co_await link->read_reply(timeout(o.reply_timeout));
                link->s.abort();
                if (r->type == REDIS_REPLY_ERROR) {
                    why = host + ":" + std::to_string(port) + ": CLUSTER SLOTS: " + std::string(text_of(*r));
                    continue;
                }
                if (apply_slots(*r, host)) co_return true;
                why = host + ":" + std::to_string(port) + ": the cluster does not cover every slot";
            } catch (const std::exception& e) {
                why = host + ":" + std::to_string(port) + ": " + e.what();
            }
        }
        update_state(why);
        co_return false;
    }

    // Takes a CLUSTER SLOTS reply: nodes that own slots get a loop (new
    // ones) or keep theirs, nodes that own none leave, and topics whose
    // slot moved are subscribed where it went. False when the map has holes
    // (the cluster is down or resharding): the old map stays.
    bool apply_slots(const redisReply& r, const std::string& asked) {
        if (r.type != REDIS_REPLY_ARRAY) return false;
        std::vector<std::pair<std::string, std::uint16_t>> slot_owner(cluster_slots);
        std::size_t covered = 0;
        for (std::size_t i = 0; i < r.elements; ++i) {
            const redisReply& range = *r.element[i];
            if (range.type != REDIS_REPLY_ARRAY || range.elements < 3) continue;
            const redisReply& master = *range.element[2];
            if (range.element[0]->type != REDIS_REPLY_INTEGER || range.element[1]->type != REDIS_REPLY_INTEGER ||
                master.type != REDIS_REPLY_ARRAY || master.elements < 2 ||
                master.element[1]->type != REDIS_REPLY_INTEGER)
                continue;
            std::string host(text_of(*master.element[0]));
            if (host.empty() || host == "?") host = asked;  // the node we asked
            const auto port = static_cast<std::uint16_t>(master.element[1]->integer);
            const auto first = static_cast<std::size_t>(range.element[0]->integer);
            const auto last = static_cast<std::size_t>(range.element[1]->integer);
            for (std::size_t s = first; s <= last && s < cluster_slots; ++s) {
                if (slot_owner[s].first.empty()) ++covered;
                slot_owner[s] = {host, port};
            }
        }
        if (covered != cluster_slots) return false;
        // Nodes: keep those still in the map, start the new ones, retire the rest.
        std::vector<std::shared_ptr<broker_node>> kept;
        std::unordered_map<std::string, broker_node*> by_key;
        for (const auto& [host, port] : slot_owner) {
            const std::string key = host + ":" + std::to_string(port);
            if (by_key.count(key)) continue;
            auto it = std::find_if(nodes.begin(), nodes.end(), [&](const auto& n) { return n->key() == key; });
            std::shared_ptr<broker_node> n;
            if (it != nodes.end()) {
                n = *it;
            } else {
                n = std::make_shared<broker_node>();
                n->host = host;
                n->port = port;
                spawn(*ctx, run_node(shared_from_this(), n));
            }
            kept.push_back(n);
            by_key[key] = n.get();
        }
        for (const auto& n : nodes) {
            if (by_key.count(n->key())) continue;
            n->removed = true;
            if (n->sub) n->sub->s.abort();  // its loop ends
        }
        nodes = std::move(kept);
        slots.assign(cluster_slots, nullptr);
        for (std::size_t s = 0; s < cluster_slots; ++s)
            slots[s] = by_key[slot_owner[s].first + ":" + std::to_string(slot_owner[s].second)];
        // Topics whose slot moved: off the old node, onto the new one.
        for (auto& [t, e] : topics) {
            broker_node* now = owner(t);
            if (e.on == now) continue;
            if (e.on &&
                std::find_if(nodes.begin(), nodes.end(), [&](const auto& n) { return n.get() == e.on; }) != nodes.end())
                unsubscribe_on(e.on, t);
            e.on = now;
            subscribe_on(now, t);
        }
        update_state();
        return true;
    }

    // Keeps the slot map fresh: at start, when a node answers MOVED or
    // gives a slot away or goes, and every few seconds.
    static task<void> run_cluster(std::shared_ptr<broker_shared> self) {
        broker_shared& b = *self;
        auto last = clock::time_point{};
        auto backoff = b.o.backoff_min;
        while (!b.stop.load(std::memory_order_relaxed)) {
            const auto now = clock::now();
            if (b.slots.empty() || b.refresh_wanted || now - last >= std::chrono::seconds(5)) {
                b.refresh_wanted = false;
                last = now;
                if (!co_await b.refresh_slots()) {  // again after a backoff
                    b.refresh_wanted = true;
                    co_await async_sleep(*b.ctx, backoff);
                    backoff = std::min(backoff * 2, b.o.backoff_max);
                    continue;
                }
                backoff = b.o.backoff_min;
            }
            co_await async_sleep(*b.ctx, std::chrono::milliseconds(50));
        }
        for (const auto& n : b.nodes) {
            n->removed = true;
            if (n->sub) n->sub->s.abort();
        }
    }

    void start() {
        if (url.cluster) {
            spawn(*ctx, run_cluster(shared_from_this()));
            return;
        }
        auto n = std::make_shared<broker_node>();
        n->host = url.host;
        n->port = url.port;
        nodes.push_back(n);
        spawn(*ctx, run_node(shared_from_this(), n));
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
    if (b.o.connect_timeout.count() <= 0) b.o.connect_timeout = broker_options{}.connect_timeout;
    if (b.o.reply_timeout.count() <= 0) b.o.reply_timeout = broker_options{}.reply_timeout;
    b.o.backoff_max = std::max(b.o.backoff_max, b.o.backoff_min);
}

broker_bridge::~broker_bridge() {
    request_stop();
}

void broker_bridge::start(io_context& ctx) {
    if (shared_->ctx) {
        // A runtime started again: the bridge's loops went with its old
        // contexts, and what it knew of the topics with them.
        if (shared_->ctx != &ctx)
            shared_->log_line("the runtime started again: this ws::pubsub's bridge does not (make a new ws::pubsub)",
                              false);
        return;
    }
    shared_->ctx = &ctx;
    shared_->start();
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
