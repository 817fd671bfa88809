// ws::pubsub across servers through a real Redis (Debian's redis-server,
// started by the test on a free port, without persistence, killed at the
// end): two servers of two cores each, clients on both, every message once
// per subscriber and in order per publisher; subscriptions reaching the
// broker; the broker down at start, killed, stopped and restarted; a wrong
// password. Skipped when redis-server is not installed.
#include "../../support/tls_certs.hpp"
#include "ws_test_support.hpp"
#include <cnetmod/proto/ws/detail/broker.hpp>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <map>
#include <set>

using namespace cnetmod;
using namespace cnetmod::ws_testing;
using namespace std::chrono_literals;

namespace {

net_init sigpipe_guard;

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

bool have_redis() {
    return std::system("command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1") == 0;
}

// One redis-server process on 127.0.0.1:port, no persistence; it dies with
// the test (PR_SET_PDEATHSIG) if the test dies first.
struct redis_server {
    std::uint16_t port = free_port();
    std::string password;
    const testing_support::test_certs* tls = nullptr;  // set: TLS only, on `port`
    std::string cluster_dir;                           // set: a cluster node keeping its nodes.conf there
    pid_t pid = -1;

    explicit redis_server(std::string pw = {}, bool start_now = true,
                          const testing_support::test_certs* certs = nullptr)
        : password(std::move(pw)), tls(certs) {
        if (start_now) start();
    }
    ~redis_server() { kill_now(); }

    void start() {
        const std::string p = std::to_string(port);
        pid = ::fork();
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            const int null = ::open("/dev/null", O_WRONLY);
            ::dup2(null, 1);
            std::vector<const char*> argv{"redis-server", "--bind", "127.0.0.1",  "--save", "", "--appendonly", "no",
                                          "--daemonize",  "no",     "--loglevel", "warning"};
            if (tls) {
                for (const char* a : {"--port", "0", "--tls-port", p.c_str(), "--tls-cert-file", tls->cert_file.c_str(),
                                      "--tls-key-file", tls->key_file.c_str(), "--tls-ca-cert-file",
                                      tls->ca_file.c_str(), "--tls-auth-clients", "no"})
                    argv.push_back(a);
            } else {
                argv.push_back("--port");
                argv.push_back(p.c_str());
            }
            const std::string conf = "nodes-" + p + ".conf";
            if (!cluster_dir.empty()) {
                for (const char* a : {"--cluster-enabled", "yes", "--cluster-config-file", conf.c_str(), "--dir",
                                      cluster_dir.c_str(), "--cluster-node-timeout", "2000"})
                    argv.push_back(a);
            }
            if (!password.empty()) {
                argv.push_back("--requirepass");
                argv.push_back(password.c_str());
            }
            argv.push_back(nullptr);
            ::execvp("redis-server", const_cast<char* const*>(argv.data()));
            ::_exit(127);
        }
        for (int i = 0; i < 500; ++i) {  // up to 5 s for it to answer
            if (cli("PING").find("PONG") != std::string::npos) return;
            std::this_thread::sleep_for(10ms);
        }
        ADD_FAILURE() << "redis-server on port " << port << " did not start";
    }
    void kill_now() {
        if (pid <= 0) return;
        ::kill(pid, SIGCONT);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        pid = -1;
    }
    void pause() { ::kill(pid, SIGSTOP); }
    void resume() { ::kill(pid, SIGCONT); }
    // redis-cli's answer to a command (arguments as one shell string).
    std::string cli(const std::string& args) const {
        std::string cmd = "timeout 5 redis-cli -p " + std::to_string(port);
        if (!password.empty()) cmd += " --no-auth-warning -a " + password;
        if (tls) cmd += " --tls --cacert " + tls->ca_file;
        cmd += " " + args + " 2>&1";
        std::string out;
        if (FILE* f = ::popen(cmd.c_str(), "r")) {
            char buf[4096];
            std::size_t n;
            while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
            ::pclose(f);
        }
        return out;
    }
    std::string url(std::string_view credentials = {}) const {
        if (tls) return "rediss://" + std::string(credentials) + "localhost:" + std::to_string(port);
        return "redis://" + std::string(credentials) + "127.0.0.1:" + std::to_string(port);
    }
};

ws::pubsub_options broker_options(std::string url) {
    ws::pubsub_options po;
    po.broker.url = std::move(url);
    po.broker.ping_interval = 200ms;
    po.broker.reply_timeout = 1000ms;
    po.broker.connect_timeout = 1000ms;
    po.broker.backoff_min = 50ms;
    po.broker.backoff_max = 400ms;
    return po;
}

// A server of two cores: /sub?topic=T subscribes (the text "unsub"
// unsubscribes and is answered "unsubscribed"), /pub?topic=T publishes
// every message it receives.
struct server {
    runtime rt{[] {
        runtime_options o;
        o.cores = 2;
        o.pin_threads = false;
        return o;
    }()};
    std::unique_ptr<ws::pubsub> topics;
    std::unique_ptr<http::server> srv;
    std::atomic<int> subscribed{0};
    std::atomic<int> per_core[2] = {0, 0};

    explicit server(ws::pubsub_options po) {
        topics = std::make_unique<ws::pubsub>(rt, po);
        rt.start();
        srv = std::make_unique<http::server>(rt);
        srv->get("/sub", [this](http::request_context& c) -> task<void> {
            const std::string topic = http::query_param(c.query(), "topic").value_or("t");
            auto ws = co_await c.upgrade_to_websocket();
            topics->subscribe(ws, topic);
            per_core[runtime::current_core()]++;
            subscribed++;
            while (auto m = co_await ws.recv()) {
                if (*m == "unsub") {
                    topics->unsubscribe(ws, topic);
                    co_await ws.send("unsubscribed");
                }
            }
            subscribed--;
        });
        srv->get("/pub", [this](http::request_context& c) -> task<void> {
            const std::string topic = http::query_param(c.query(), "topic").value_or("t");
            auto ws = co_await c.upgrade_to_websocket();
            while (auto m = co_await ws.recv_view()) topics->publish(topic, m->payload, m->opcode);
        });
        srv->listen(0, "127.0.0.1");
    }
    ~server() {
        srv.reset();
        rt.stop();
        rt.wait();
    }
    std::string url(std::string_view path) const {
        return "ws://127.0.0.1:" + std::to_string(srv->port()) + std::string(path);
    }
    ws::broker_status broker() const { return topics->broker(); }
    // Waits (up to `limit`) until the bridge's status satisfies `ok`.
    template <class F>
    bool wait_broker(F ok, std::chrono::milliseconds limit = 10s) const {
        for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
            if (ok(broker())) return true;
            std::this_thread::sleep_for(5ms);
        }
        return false;
    }
    bool wait_connected(std::size_t topics_subscribed = 0) const {
        return wait_broker([&](const ws::broker_status& s) {
            return s.state == ws::broker_state::connected && s.subscribed_topics == topics_subscribed;
        });
    }
    void wait_for_subscribed(int n) {
        for (int i = 0; i < 1000 && subscribed.load() != n; ++i) std::this_thread::sleep_for(10ms);
        ASSERT_EQ(subscribed.load(), n);
    }
};

// Reads messages until `count` have come, and checks that those of each
// publisher (told apart by size) are numbered 0, 1, 2... with none twice.
task<bool> read_per_publisher(ws::connection& c, int count, std::map<std::size_t, int>& next) {
    for (int i = 0; i < count; ++i) {
        auto m = co_await c.recv();
        if (!m) co_return false;
        int& expected = next[m->size()];
        if (*m != numbered(expected, m->size())) {
            ADD_FAILURE() << "out of order or twice: got '" << *m << "', expected number " << expected;
            co_return false;
        }
        ++expected;
    }
    co_return true;
}

}  // namespace

TEST(broker_url, parses_what_redis_urls_say_and_refuses_the_rest) {
    using ws::detail::broker_url;
    const auto a = broker_url::parse("redis://127.0.0.1:6390");
    EXPECT_FALSE(a.tls);
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 6390);
    EXPECT_TRUE(a.password.empty());
    const auto b = broker_url::parse("rediss://alice:s3cr:t@cache.local/2");
    EXPECT_TRUE(b.tls);
    EXPECT_EQ(b.user, "alice");
    EXPECT_EQ(b.password, "s3cr:t");
    EXPECT_EQ(b.host, "cache.local");
    EXPECT_EQ(b.port, 6379);
    EXPECT_EQ(b.db, 2);
    EXPECT_EQ(b.display(), "rediss://alice:***@cache.local:6379");
    const auto c = broker_url::parse("redis://:pw@[::1]:7000");
    EXPECT_EQ(c.host, "::1");
    EXPECT_EQ(c.port, 7000);
    EXPECT_EQ(c.password, "pw");
    EXPECT_TRUE(c.user.empty());
    const auto d = broker_url::parse("redis-cluster://:pw@10.0.0.1:7000,10.0.0.2,[::1]:7002");
    EXPECT_TRUE(d.cluster);
    EXPECT_EQ(d.seeds, (std::vector<std::pair<std::string, std::uint16_t>>{
                           {"10.0.0.1", 7000}, {"10.0.0.2", 6379}, {"::1", 7002}}));
    EXPECT_EQ(d.display(), "redis-cluster://:***@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002");
    for (const char* bad : {"http://x:1", "redis://", "redis://h:0", "redis://h:70000", "redis://h:p", "redis://h:1/x",
                            "redis://[::1:5", "redis://a:1,b:2", "redis-cluster://a:1,", "redis-cluster://a:x"})
        EXPECT_THROW(broker_url::parse(bad), std::invalid_argument) << bad;
    EXPECT_THROW(ws::pubsub(*std::make_unique<io_context>(), broker_options("redis//nowhere")), std::invalid_argument);
}

TEST(broker, two_servers_deliver_every_message_once_per_subscriber_and_in_order_per_publisher) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_server redis;
    server a(broker_options(redis.url())), b(broker_options(redis.url()));
    ASSERT_TRUE(a.wait_connected());
    ASSERT_TRUE(b.wait_connected());
    constexpr int subscribers_each = 12, per_publisher = 300;
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        std::vector<ws::connection> subs;
        for (int i = 0; i < subscribers_each; ++i) {
            subs.push_back(co_await ws::connect(ctx, a.url("/sub?topic=room")));
            subs.push_back(co_await ws::connect(ctx, b.url("/sub?topic=room")));
        }
        a.wait_for_subscribed(subscribers_each);
        b.wait_for_subscribed(subscribers_each);
        EXPECT_TRUE(a.per_core[0] > 0 && a.per_core[1] > 0 && b.per_core[0] > 0 && b.per_core[1] > 0)
            << "subscribers on both cores of both servers";
        // Each server has subscribed once, whatever its number of cores and subscribers.
        EXPECT_TRUE(a.wait_connected(1));
        EXPECT_TRUE(b.wait_connected(1));
        EXPECT_NE(redis.cli("PUBSUB NUMSUB cnetmod:room").find("\n2"), std::string::npos);
        // A publisher on each server, told apart by message size.
        auto pa = co_await ws::connect(ctx, a.url("/pub?topic=room"));
        auto pb = co_await ws::connect(ctx, b.url("/pub?topic=room"));
        for (int i = 0; i < per_publisher; ++i) {
            co_await pa.send(numbered(i, 40));
            co_await pb.send(numbered(i, 60));
        }
        for (auto& s : subs) {
            std::map<std::size_t, int> next;
            EXPECT_TRUE(co_await read_per_publisher(s, 2 * per_publisher, next));
            EXPECT_EQ(next[40], per_publisher);
            EXPECT_EQ(next[60], per_publisher);
        }
        // A backend publishing on the channel directly reaches both servers' subscribers as text.
        EXPECT_NE(redis.cli("PUBLISH cnetmod:room from-backend").find('2'), std::string::npos);
        for (auto& s : subs) {
            EXPECT_EQ((co_await s.recv()).value_or(""), "from-backend");
            EXPECT_EQ(s.last_opcode(), ws::opcode::text);
        }
        // Nothing more: no message came twice.
        co_await pa.send(numbered(0, 7));
        for (auto& s : subs) EXPECT_EQ((co_await s.recv()).value_or(""), numbered(0, 7));
        for (auto& s : subs) co_await s.close();
        co_await pa.close();
        co_await pb.close();
    }());
    const auto sa = a.broker(), sb = b.broker();
    EXPECT_EQ(sa.published, per_publisher + 1u);
    EXPECT_EQ(sb.published, per_publisher + 0u);
    EXPECT_EQ(sa.received, per_publisher + 1u) << "B's publishes and the backend's";
    EXPECT_EQ(sb.received, per_publisher + 2u);
    EXPECT_EQ(sa.dropped + sb.dropped, 0u);
}

TEST(broker, a_server_subscribes_while_it_has_a_local_subscriber_and_unsubscribes_after_the_last) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_server redis;
    server a(broker_options(redis.url())), b(broker_options(redis.url()));
    ASSERT_TRUE(a.wait_connected());
    ASSERT_TRUE(b.wait_connected());
    const auto numsub = [&] {
        const std::string out = redis.cli("PUBSUB NUMSUB cnetmod:x");
        return out.substr(out.find('\n') + 1, 1);
    };
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        auto s1 = co_await ws::connect(ctx, a.url("/sub?topic=x"));
        auto s2 = co_await ws::connect(ctx, a.url("/sub?topic=x"));
        EXPECT_TRUE(a.wait_connected(1));
        EXPECT_EQ(numsub(), "1");
        auto s3 = co_await ws::connect(ctx, b.url("/sub?topic=x"));
        EXPECT_TRUE(b.wait_connected(1));
        EXPECT_EQ(numsub(), "2");
        co_await s1.send("unsub");
        EXPECT_EQ((co_await s1.recv()).value_or(""), "unsubscribed");
        EXPECT_EQ(numsub(), "2") << "A still has a subscriber";
        co_await s2.close();
        EXPECT_TRUE(a.wait_connected(0));
        EXPECT_EQ(numsub(), "1");
        co_await s3.close();
        EXPECT_TRUE(b.wait_connected(0));
        EXPECT_EQ(numsub(), "0");
        co_await s1.close();
    }());
}

// The broker is killed, then restarted on its port; then stopped (SIGSTOP)
// and resumed. Local delivery never stops; what is published while the
// broker is known to be down is counted as dropped, exactly; once it is
// back, both servers reconnect and resubscribe, and delivery resumes.
TEST(broker, a_killed_or_stalled_broker_costs_only_cross_server_delivery_while_it_is_away) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_server redis;
    server a(broker_options(redis.url())), b(broker_options(redis.url()));
    ASSERT_TRUE(a.wait_connected());
    ASSERT_TRUE(b.wait_connected());
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        auto local = co_await ws::connect(ctx, a.url("/sub?topic=feed"));
        auto remote = co_await ws::connect(ctx, b.url("/sub?topic=feed"));
        EXPECT_TRUE(a.wait_connected(1));
        EXPECT_TRUE(b.wait_connected(1));
        auto pub = co_await ws::connect(ctx, a.url("/pub?topic=feed"));
        int n = 0;  // numbers published so far
        std::map<std::size_t, int> next_local, next_remote;
        for (; n < 20; ++n) co_await pub.send(numbered(n, 30));
        EXPECT_TRUE(co_await read_per_publisher(local, 20, next_local));
        EXPECT_TRUE(co_await read_per_publisher(remote, 20, next_remote));

        // Killed: local delivery goes on, and the publishes are counted as dropped.
        redis.kill_now();
        EXPECT_TRUE(a.wait_broker([](const ws::broker_status& s) { return s.state != ws::broker_state::connected; }));
        const auto dropped_before = a.broker().dropped;
        for (int i = 0; i < 25; ++i, ++n) co_await pub.send(numbered(n, 30));
        EXPECT_TRUE(co_await read_per_publisher(local, 25, next_local));
        // (counted on the bridge's core, which the publishes reach after their local delivery)
        EXPECT_TRUE(a.wait_broker([&](const ws::broker_status& s) { return s.dropped >= dropped_before + 25; }, 2s));
        EXPECT_EQ(a.broker().dropped, dropped_before + 25);
        // Back on the same port: reconnected and resubscribed, delivery resumes.
        redis.start();
        EXPECT_TRUE(a.wait_connected(1));
        EXPECT_TRUE(b.wait_connected(1));
        next_remote[30] = n;  // what was published while it was away is gone
        for (int i = 0; i < 20; ++i, ++n) co_await pub.send(numbered(n, 30));
        EXPECT_TRUE(co_await read_per_publisher(local, 20, next_local));
        EXPECT_TRUE(co_await read_per_publisher(remote, 20, next_remote));

        // Stalled: the servers keep serving; the bridges notice within
        // reply_timeout; after SIGCONT they are back.
        redis.pause();
        const auto stalled_at = std::chrono::steady_clock::now();
        for (int i = 0; i < 20; ++i, ++n) co_await pub.send(numbered(n, 30));
        EXPECT_TRUE(co_await read_per_publisher(local, 20, next_local));
        EXPECT_LT(std::chrono::steady_clock::now() - stalled_at, 500ms) << "local delivery waited for the broker";
        EXPECT_TRUE(a.wait_broker([](const ws::broker_status& s) { return s.state != ws::broker_state::connected; }));
        redis.resume();
        EXPECT_TRUE(a.wait_connected(1));
        EXPECT_TRUE(b.wait_connected(1));
        // What was written to the stalled broker may still arrive, at most once and in order.
        const int marker = n;
        for (int i = 0; i < 20; ++i, ++n) co_await pub.send(numbered(n, 30));
        EXPECT_TRUE(co_await read_per_publisher(local, 20, next_local));
        for (;;) {
            auto m = co_await remote.recv();
            if (!m) break;
            const int got = std::stoi(*m);
            EXPECT_GE(got, next_remote[30]) << "twice or out of order";
            EXPECT_EQ(*m, numbered(got, 30));
            next_remote[30] = got + 1;
            if (got == n - 1) break;
        }
        EXPECT_EQ(next_remote[30], n) << "the messages published after the broker came back";
        EXPECT_GE(n, marker);
        co_await local.close();
        co_await remote.close();
        co_await pub.close();
    }());
    EXPECT_GE(a.broker().connects, 3u);
}

// A stalled broker (SIGSTOP) that has not yet been found out: the bytes
// waiting for it are bounded by max_queued_bytes (beyond what the kernel's
// socket buffers took), what does not fit is dropped and counted, and
// local delivery does not wait.
TEST(broker, a_stalled_broker_holds_at_most_max_queued_bytes_and_the_rest_is_counted_as_dropped) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_server redis;
    auto po = broker_options(redis.url());
    po.broker.max_queued_bytes = 256 * 1024;
    po.broker.reply_timeout = 20s;  // not found out during the test
    server a(po);
    ASSERT_TRUE(a.wait_connected());
    constexpr int count = 4000;
    constexpr std::size_t size = 8192;  // 32 MiB in all: more than the socket buffers take
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        auto sub = co_await ws::connect(ctx, a.url("/sub?topic=big"));
        auto pub = co_await ws::connect(ctx, a.url("/pub?topic=big"));
        a.wait_for_subscribed(1);
        redis.pause();
        const auto start = std::chrono::steady_clock::now();
        int delivered = 0;  // each publish reaches the local subscriber before the next goes
        for (int i = 0; i < count; ++i) {
            co_await pub.send_binary(numbered(i, size));
            if ((co_await sub.recv()).value_or("") == numbered(i, size)) ++delivered;
        }
        EXPECT_EQ(delivered, count);
        EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
        // Every publish is either written for the broker or dropped (counted on its core, just after).
        EXPECT_TRUE(a.wait_broker([&](const ws::broker_status& s) { return s.published + s.dropped >= count; }, 5s));
        const auto st = a.broker();
        EXPECT_EQ(st.published + st.dropped, static_cast<std::uint64_t>(count));
        EXPECT_GT(st.dropped, 0u) << "nothing dropped: the bound did not hold back 32 MiB";
        EXPECT_EQ(st.state, ws::broker_state::connected) << "not found out yet (reply_timeout 20 s)";
        redis.resume();
        co_await sub.close();
        co_await pub.close();
    }());
}

// Redis refuses a SUBSCRIBE of several channels with one error (here an
// ACL user without the right to one of them): the bridge counts that one
// error as the command's whole answer, logs it and goes on connected.
TEST(broker, a_refused_subscribe_is_logged_and_not_taken_for_a_stall) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_server redis;
    EXPECT_NE(redis.cli("ACL SETUSER limited on '>pw' resetchannels '&cnetmod:ok' '+@all' '~*'").find("OK"),
              std::string::npos);
    server a(broker_options(redis.url("limited:pw@")));
    ASSERT_TRUE(a.wait_connected()) << a.broker().error;
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        auto ok = co_await ws::connect(ctx, a.url("/sub?topic=ok"));
        auto no = co_await ws::connect(ctx, a.url("/sub?topic=no"));
        a.wait_for_subscribed(2);
        EXPECT_TRUE(a.wait_connected(1)) << "ok subscribed, no refused";
        EXPECT_TRUE(
            a.wait_broker([](const ws::broker_status& s) { return s.error.find("NOPERM") != std::string::npos; }));
        // The subscribing connection killed: the bridge reconnects and sends
        // one SUBSCRIBE for both channels, which Redis refuses as a whole.
        const auto connects = a.broker().connects;
        redis.cli("CLIENT KILL TYPE pubsub");
        EXPECT_TRUE(a.wait_broker([&](const ws::broker_status& s) {
            return s.connects > connects && s.state == ws::broker_state::connected;
        }));
        std::this_thread::sleep_for(2500ms);  // 2.5 reply_timeouts
        EXPECT_EQ(a.broker().connects, connects + 1)
            << "reconnected again: the refused SUBSCRIBE was taken for a stall";
        EXPECT_EQ(a.broker().state, ws::broker_state::connected);
        co_await ok.close();
        co_await no.close();
    }());
}

TEST(broker, down_at_start_the_server_serves_locally_and_connects_when_the_broker_comes) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_server redis({}, false);  // not started yet
    server a(broker_options(redis.url()));
    EXPECT_TRUE(a.wait_broker([](const ws::broker_status& s) { return !s.error.empty(); }));
    EXPECT_EQ(a.broker().state, ws::broker_state::connecting);
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        auto sub = co_await ws::connect(ctx, a.url("/sub?topic=t"));
        auto pub = co_await ws::connect(ctx, a.url("/pub?topic=t"));
        a.wait_for_subscribed(1);
        co_await pub.send("local");
        EXPECT_EQ((co_await sub.recv()).value_or(""), "local");
        EXPECT_TRUE(a.wait_broker([](const ws::broker_status& s) { return s.dropped >= 1; }, 2s));
        EXPECT_EQ(a.broker().dropped, 1u);
        redis.start();
        EXPECT_TRUE(a.wait_connected(1)) << a.broker().error;
        EXPECT_NE(redis.cli("PUBSUB NUMSUB cnetmod:t").find("\n1"), std::string::npos);
        redis.cli("PUBLISH cnetmod:t from-redis");
        EXPECT_EQ((co_await sub.recv()).value_or(""), "from-redis");
        co_await sub.close();
        co_await pub.close();
    }());
}

TEST(broker, a_refusing_broker_is_a_state_and_one_log_line_and_local_delivery_goes_on) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_server redis("right-password");
    testing::internal::CaptureStderr();
    {
        server wrong(broker_options(redis.url(":wrong-password@"))), none(broker_options(redis.url()));
        EXPECT_TRUE(wrong.wait_broker([](const ws::broker_status& s) { return s.state == ws::broker_state::failed; }));
        EXPECT_TRUE(none.wait_broker([](const ws::broker_status& s) { return s.state == ws::broker_state::failed; }));
        EXPECT_NE(wrong.broker().error.find("AUTH refused"), std::string::npos) << wrong.broker().error;
        EXPECT_NE(none.broker().error.find("NOAUTH"), std::string::npos) << none.broker().error;
        std::this_thread::sleep_for(1200ms);  // several retries at backoff_max
        io_context ctx;
        sync_wait(ctx, [&]() -> task<void> {
            auto sub = co_await ws::connect(ctx, wrong.url("/sub?topic=t"));
            auto pub = co_await ws::connect(ctx, wrong.url("/pub?topic=t"));
            wrong.wait_for_subscribed(1);
            co_await pub.send("still local");
            EXPECT_EQ((co_await sub.recv()).value_or(""), "still local");
            co_await sub.close();
            co_await pub.close();
        }());
        server right(broker_options(redis.url(":right-password@")));
        EXPECT_TRUE(right.wait_connected());
    }
    const std::string err = testing::internal::GetCapturedStderr();
    auto count = [&](std::string_view what) {
        std::size_t n = 0;
        for (auto at = err.find(what); at != std::string::npos; at = err.find(what, at + 1)) ++n;
        return n;
    };
    EXPECT_EQ(count("AUTH refused"), 1u) << err;
    EXPECT_EQ(count("NOAUTH"), 1u) << err;
    EXPECT_EQ(err.find("wrong-password"), std::string::npos) << "the password is not logged";
}

// rediss://: the bridge's connections go through the engine's TLS, checked
// against the CA given in broker_options::tls; a broker whose certificate
// the bridge does not trust is an error state, not a connection.
TEST(broker, rediss_carries_topics_over_tls_and_refuses_an_untrusted_broker) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    static const testing_support::test_certs certs = testing_support::make_test_certs();
    redis_server redis({}, true, &certs);
    ASSERT_NE(redis.cli("PING").find("PONG"), std::string::npos) << "redis-server without TLS support?";
    auto po = broker_options(redis.url());
    po.broker.tls.ca_file = certs.ca_file;
    testing::internal::CaptureStderr();
    {
        server a(po), b(po), untrusting(broker_options(redis.url()));
        EXPECT_TRUE(a.wait_connected()) << a.broker().error;
        EXPECT_TRUE(b.wait_connected()) << b.broker().error;
        EXPECT_TRUE(untrusting.wait_broker([](const ws::broker_status& s) { return !s.error.empty(); }));
        EXPECT_NE(untrusting.broker().state, ws::broker_state::connected);
        io_context ctx;
        sync_wait(ctx, [&]() -> task<void> {
            auto sub = co_await ws::connect(ctx, b.url("/sub?topic=secure"));
            EXPECT_TRUE(b.wait_connected(1));
            auto pub = co_await ws::connect(ctx, a.url("/pub?topic=secure"));
            for (int i = 0; i < 50; ++i) co_await pub.send_binary(numbered(i, 2000));
            for (int i = 0; i < 50; ++i) {
                EXPECT_EQ((co_await sub.recv()).value_or(""), numbered(i, 2000));
                EXPECT_EQ(sub.last_opcode(), ws::opcode::binary);
            }
            co_await sub.close();
            co_await pub.close();
        }());
    }
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("rediss://localhost:" + std::to_string(redis.port)), std::string::npos) << err;
}

namespace {

// Three redis-server nodes with cluster mode on, joined into one cluster
// (redis-cli --cluster create; three masters, no replicas), in a temporary
// directory of their own (their nodes.conf: a node restarted there rejoins).
struct redis_cluster {
    std::string dir;
    std::vector<std::unique_ptr<redis_server>> nodes;

    redis_cluster() {
        char tmpl[] = "/tmp/cnetmod-cluster-XXXXXX";
        dir = ::mkdtemp(tmpl);
        for (int i = 0; i < 3; ++i) nodes.push_back(std::make_unique<redis_server>(std::string(), false));
        for (auto& n : nodes) {
            n->port = port_with_bus();
            n->cluster_dir = dir;
            n->start();
        }
        std::string create = "timeout 20 redis-cli --cluster create";
        for (auto& n : nodes) create += " 127.0.0.1:" + std::to_string(n->port);
        create += " --cluster-yes >/dev/null 2>&1";
        EXPECT_EQ(std::system(create.c_str()), 0) << create;
        EXPECT_TRUE(wait_ok());
    }
    ~redis_cluster() {
        nodes.clear();
        std::system(("rm -rf " + dir).c_str());
    }
    // A free port whose cluster bus port (10000 above it) is free too.
    static std::uint16_t port_with_bus() {
        for (;;) {
            const std::uint16_t p = free_port();
            if (p > 55535) continue;
            const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(static_cast<std::uint16_t>(p + 10000));
            const bool bus_free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
            ::close(fd);
            if (bus_free) return p;
        }
    }
    bool wait_ok() {
        for (int i = 0; i < 1000; ++i) {
            bool ok = true;
            for (auto& n : nodes) ok = ok && n->cli("CLUSTER INFO").find("cluster_state:ok") != std::string::npos;
            if (ok) return true;
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }
    std::string url() const {
        return "redis-cluster://127.0.0.1:" + std::to_string(nodes[0]->port);  // one seed: the rest comes from it
    }
    // The node whose shard has `channel`'s subscribers (-1: none has any; -2: several do).
    int shard_of(const std::string& channel) const {
        int found = -1;
        for (int i = 0; i < 3; ++i) {
            const std::string out = nodes[i]->cli("PUBSUB SHARDNUMSUB " + channel);
            if (out.substr(out.find('\n') + 1, 1) != "0") found = found == -1 ? i : -2;
        }
        return found;
    }
};

}  // namespace

TEST(broker_cluster, the_slot_of_a_channel_is_what_redis_says) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_cluster cluster;
    redis_server& redis = *cluster.nodes[0];
    for (std::string key : {"cnetmod:room", "a", "", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "{}x",
                            "cnetmod:topic-42", "\xCE\xB1\xCE\xB2"}) {
        const std::string out = redis.cli("CLUSTER KEYSLOT '" + key + "'");
        EXPECT_EQ(std::to_string(ws::detail::cluster_slot(key)) + "\n", out) << key;
    }
}

// Redis Cluster: each topic's channel lives on its slot's node (sharded
// SSUBSCRIBE and SPUBLISH there, nowhere else); two servers given one seed
// find the rest; a node killed and restarted costs only its topics, until
// the servers reconnect and resubscribe.
TEST(broker_cluster, topics_go_to_their_slots_node_and_come_back_after_a_node_restarts) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_cluster cluster;
    server a(broker_options(cluster.url())), b(broker_options(cluster.url()));
    ASSERT_TRUE(a.wait_connected()) << a.broker().error;
    ASSERT_TRUE(b.wait_connected()) << b.broker().error;
    constexpr int topics = 6, per_topic = 20;
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        std::vector<ws::connection> subs, pubs;
        for (int t = 0; t < topics; ++t) {
            subs.push_back(co_await ws::connect(ctx, b.url("/sub?topic=t" + std::to_string(t))));
            pubs.push_back(co_await ws::connect(ctx, a.url("/pub?topic=t" + std::to_string(t))));
        }
        EXPECT_TRUE(b.wait_connected(topics)) << b.broker().subscribed_topics;
        std::vector<int> shard(topics);
        std::set<int> shards;
        for (int t = 0; t < topics; ++t) {
            shard[t] = cluster.shard_of("cnetmod:t" + std::to_string(t));
            EXPECT_GE(shard[t], 0) << "t" << t << ": subscribed on exactly one node";
            shards.insert(shard[t]);
        }
        EXPECT_GE(shards.size(), 2u) << "six topics over three nodes";
        std::vector<std::map<std::size_t, int>> next(topics);
        for (int i = 0; i < per_topic; ++i)
            for (int t = 0; t < topics; ++t) co_await pubs[t].send(numbered(i, 40));
        for (int t = 0; t < topics; ++t) EXPECT_TRUE(co_await read_per_publisher(subs[t], per_topic, next[t]));

        // The node of t0 goes and comes back on its port.
        redis_server& gone = *cluster.nodes[static_cast<std::size_t>(std::max(shard[0], 0))];
        gone.kill_now();
        EXPECT_TRUE(b.wait_broker([](const ws::broker_status& s) { return s.state != ws::broker_state::connected; }));
        gone.start();
        EXPECT_TRUE(cluster.wait_ok());
        EXPECT_TRUE(a.wait_connected()) << a.broker().error;
        EXPECT_TRUE(b.wait_connected(topics)) << b.broker().error;
        for (int i = 0; i < per_topic; ++i)
            for (int t = 0; t < topics; ++t) co_await pubs[t].send(numbered(i, 50));
        for (int t = 0; t < topics; ++t) EXPECT_TRUE(co_await read_per_publisher(subs[t], per_topic, next[t]));
        for (auto& c : subs) co_await c.close();
        for (auto& c : pubs) co_await c.close();
    }());
    EXPECT_EQ(a.broker().published, 2u * topics * per_topic);
    EXPECT_EQ(b.broker().received, 2u * topics * per_topic);
}

// A topic's slot moves to another node (CLUSTER SETSLOT, as resharding does
// it): the node that gave it away unsubscribes the servers, publishing
// there answers MOVED, and the servers follow the slot to its new node.
TEST(broker_cluster, a_topic_follows_its_slot_when_it_moves) {
    if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
    redis_cluster cluster;
    server a(broker_options(cluster.url())), b(broker_options(cluster.url()));
    ASSERT_TRUE(a.wait_connected()) << a.broker().error;
    ASSERT_TRUE(b.wait_connected()) << b.broker().error;
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        auto sub = co_await ws::connect(ctx, b.url("/sub?topic=moving"));
        auto pub = co_await ws::connect(ctx, a.url("/pub?topic=moving"));
        EXPECT_TRUE(b.wait_connected(1));
        const int from = cluster.shard_of("cnetmod:moving");
        EXPECT_GE(from, 0);
        if (from < 0) co_return;
        co_await pub.send("before");
        EXPECT_EQ((co_await sub.recv()).value_or(""), "before");
        // Slot, source and target; then the four steps of moving an empty slot.
        const int to = (from + 1) % 3;
        const std::string slot = std::to_string(ws::detail::cluster_slot("cnetmod:moving"));
        auto id = [&](int i) {
            std::string s = cluster.nodes[static_cast<std::size_t>(i)]->cli("CLUSTER MYID");
            return s.substr(0, s.find('\n'));
        };
        const std::string from_id = id(from), to_id = id(to);
        EXPECT_NE(cluster.nodes[to]->cli("CLUSTER SETSLOT " + slot + " IMPORTING " + from_id).find("OK"),
                  std::string::npos);
        EXPECT_NE(cluster.nodes[from]->cli("CLUSTER SETSLOT " + slot + " MIGRATING " + to_id).find("OK"),
                  std::string::npos);
        for (auto& n : cluster.nodes) n->cli("CLUSTER SETSLOT " + slot + " NODE " + to_id);
        EXPECT_TRUE(cluster.wait_ok());
        // Publishes until one gets through (those sent to the old node are
        // lost: at most once); after 10 s, a local publish on B ends the wait.
        bool probing = true, probe_done = false;
        spawn(ctx, co_invoke([&]() -> task<void> {
                  for (int i = 0; i < 200 && probing; ++i) {
                      co_await pub.send("probe");
                      co_await async_sleep(ctx, 50ms);
                  }
                  if (probing) {
                      auto local = co_await ws::connect(ctx, b.url("/pub?topic=moving"));
                      co_await local.send("gave up");
                      co_await local.close();
                  }
                  probe_done = true;
              }));
        const auto got = co_await sub.recv();
        probing = false;
        while (!probe_done) co_await async_sleep(ctx, 10ms);
        EXPECT_EQ(got.value_or(""), "probe");
        EXPECT_TRUE(b.wait_connected(1));
        EXPECT_EQ(cluster.shard_of("cnetmod:moving"), to) << "subscribed on the slot's new node";
        // Probes that were in flight may still come; then the rest in order.
        for (int i = 0; i < 20; ++i) co_await pub.send(numbered(i, 30));
        int next = 0;
        while (next < 20) {
            auto m = co_await sub.recv();
            if (!m) break;
            if (*m == "probe") continue;
            EXPECT_EQ(*m, numbered(next, 30));
            ++next;
        }
        EXPECT_EQ(next, 20);
        co_await sub.close();
        co_await pub.close();
    }());
}
