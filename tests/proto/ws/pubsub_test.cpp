// ws::pubsub over a two-core runtime, with real clients on loopback: every
// subscriber on every core receives every publish in order, a subscriber
// that stops reading is dropped from or cut off by the policy while the
// others receive everything, and unsubscribing (explicitly or by closing)
// leaves no subscriber behind.
#include "ws_test_support.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <future>

using namespace cnetmod;
using namespace cnetmod::ws_testing;
using namespace std::chrono_literals;

namespace {

net_init sigpipe_guard;

// 1,000 clients and their server ends need more descriptors than the default 1,024.
const bool fd_limit_raised = [] {
    rlimit r{};
    ::getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    return ::setrlimit(RLIMIT_NOFILE, &r) == 0;
}();

// Two cores serving /sub?topic=T (subscribe, then read until closed; the
// text "unsub" unsubscribes and is answered "unsubscribed", any other text
// is answered "echo:TEXT") and /pub?topic=T (every message received is
// published to T).
struct pubsub_server {
    runtime rt{[] {
        runtime_options o;
        o.cores = 2;
        o.pin_threads = false;
        return o;
    }()};
    ws::options opts;
    std::unique_ptr<ws::pubsub> topics;
    std::unique_ptr<http::server> srv;
    std::atomic<int> subscribed{0};
    std::atomic<int> per_core[2] = {0, 0};

    explicit pubsub_server(ws::pubsub_options po = {}, ws::options o = {}) : opts(std::move(o)) {
        topics = std::make_unique<ws::pubsub>(rt, po);
        rt.start();
        srv = std::make_unique<http::server>(rt);
        srv->get("/sub", [this](http::request_context& c) -> task<void> {
            const std::string topic = http::query_param(c.query(), "topic").value_or("t");
            auto ws = co_await c.upgrade_to_websocket(opts);
            topics->subscribe(ws, topic);
            per_core[runtime::current_core()]++;
            subscribed++;
            while (auto m = co_await ws.recv()) {
                if (*m == "unsub") {
                    topics->unsubscribe(ws, topic);
                    co_await ws.send("unsubscribed");
                } else {
                    co_await ws.send("echo:" + *m);
                }
            }
            subscribed--;
        });
        srv->get("/pub", [this](http::request_context& c) -> task<void> {
            const std::string topic = http::query_param(c.query(), "topic").value_or("t");
            auto ws = co_await c.upgrade_to_websocket(opts);
            while (auto m = co_await ws.recv_view()) topics->publish(topic, m->payload, m->opcode);
        });
        srv->listen(0, "127.0.0.1");
    }
    ~pubsub_server() {
        srv.reset();
        rt.stop();
        rt.wait();
    }
    std::string url(std::string_view path) const {
        return "ws://127.0.0.1:" + std::to_string(srv->port()) + std::string(path);
    }
    // Subscribers of `topic` on both cores, counted on each core.
    std::size_t subscribers(const std::string& topic) {
        std::size_t n = 0;
        for (std::size_t core = 0; core < 2; ++core) {
            std::promise<std::size_t> count;
            rt.submit_to(core, [&] { count.set_value(topics->local_subscribers(topic)); });
            n += count.get_future().get();
        }
        return n;
    }
    void wait_for_subscribed(int n) {
        for (int i = 0; i < 1000 && subscribed.load() != n; ++i) std::this_thread::sleep_for(10ms);
        ASSERT_EQ(subscribed.load(), n);
    }
};

// Reads `count` messages and checks they are numbered 0..count-1 in order
// (counting each in `received`, when given).
task<bool> read_in_order(ws::connection& c, int count, std::size_t size, int* received = nullptr) {
    for (int i = 0; i < count; ++i) {
        auto m = co_await c.recv();
        if (!m || *m != numbered(i, size)) co_return false;
        if (received) ++*received;
    }
    co_return true;
}

}  // namespace

TEST(pubsub, a_thousand_subscribers_on_two_cores_each_get_a_thousand_messages_in_order) {
    ASSERT_TRUE(fd_limit_raised);
    pubsub_server server;
    io_context ctx;
    constexpr int subscribers = 1000, messages = 1000;
    std::vector<ws::connection> subs(subscribers);
    int in_order = 0;
    auto t = [&]() -> task<void> {
        for (auto& s : subs) s = co_await ws::connect(ctx, server.url("/sub?topic=room"));
        while (server.subscribed.load() < subscribers) co_await async_sleep(ctx, 5ms);
        auto pub = co_await ws::connect(ctx, server.url("/pub?topic=room"));
        for (int i = 0; i < messages; ++i) {
            const std::string m = numbered(i, 32);
            pub.queue_message(ws::opcode::text, std::as_bytes(std::span(m.data(), m.size())));
        }
        int done = 0;
        for (auto& s : subs)
            spawn(ctx, co_invoke([&]() -> task<void> {
                      in_order += co_await read_in_order(s, messages, 32);
                      ++done;
                  }));
        while (done < subscribers) co_await async_sleep(ctx, 5ms);
        co_await pub.close();
        for (auto& s : subs) co_await s.close();
    };
    sync_wait(ctx, t());
    EXPECT_EQ(in_order, subscribers);
    EXPECT_GT(server.per_core[0].load(), 0) << "subscribers on core 0";
    EXPECT_GT(server.per_core[1].load(), 0) << "subscribers on core 1";
    server.wait_for_subscribed(0);
    EXPECT_EQ(server.subscribers("room"), 0u) << "closing unsubscribed every one";
    EXPECT_EQ(server.topics->dropped(), 0u);
}

namespace {

// Three readers and one subscriber that never reads; `count` messages of `size`.
struct slow_outcome {
    int readers_in_order = 0;
};

slow_outcome run_with_a_stalled_subscriber(pubsub_server& server, int count, std::size_t size) {
    io_context ctx;
    slow_outcome out;
    auto t = [&]() -> task<void> {
        // The stalled one: a raw handshake, then it never reads.
        auto stalled = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(server.srv->port()));
        stalled.queue(
            std::string_view("GET /sub?topic=feed HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        std::vector<ws::connection> readers;
        for (int i = 0; i < 3; ++i) readers.push_back(co_await ws::connect(ctx, server.url("/sub?topic=feed")));
        while (server.subscribed.load() < 4) co_await async_sleep(ctx, 5ms);
        auto pub = co_await ws::connect(ctx, server.url("/pub?topic=feed"));
        int done = 0, received = 0;
        for (auto& r : readers)
            spawn(ctx, co_invoke([&]() -> task<void> {
                      out.readers_in_order += co_await read_in_order(r, count, size, &received);
                      ++done;
                  }));
        // Published as fast as the readers read (each message once all three
        // have the one before): only the stalled subscriber falls behind.
        for (int i = 0; i < count; ++i) {
            co_await pub.send(numbered(i, size));
            while (received < 3 * (i + 1) && done == 0) co_await yield(ctx);  // a reader that failed ends the wait
        }
        while (done < 3) co_await async_sleep(ctx, 5ms);
        co_await pub.close();
        for (auto& r : readers) co_await r.close();
        stalled.abort();
    };
    sync_wait(ctx, t());
    return out;
}

}  // namespace

TEST(pubsub, a_stalled_subscriber_loses_messages_while_the_others_get_all) {
    ws::pubsub_options po;
    po.max_queued_bytes = 256 * 1024;
    pubsub_server server(po);
    const auto out = run_with_a_stalled_subscriber(server, 600, 32 * 1024);
    EXPECT_EQ(out.readers_in_order, 3);
    EXPECT_GT(server.topics->dropped(), 0u) << "the stalled subscriber's messages were dropped";
    EXPECT_EQ(server.topics->closed_slow(), 0u);
    server.wait_for_subscribed(0);
    EXPECT_EQ(server.subscribers("feed"), 0u);
}

TEST(pubsub, the_close_policy_cuts_a_stalled_subscriber_off_and_the_others_get_all) {
    ws::pubsub_options po;
    po.max_queued_bytes = 256 * 1024;
    po.policy = ws::slow_subscriber_policy::close;
    po.close_grace = 300ms;
    pubsub_server server(po);
    const auto out = run_with_a_stalled_subscriber(server, 600, 32 * 1024);
    EXPECT_EQ(out.readers_in_order, 3);
    EXPECT_EQ(server.topics->closed_slow(), 1u);
    EXPECT_EQ(server.topics->dropped(), 0u);
    server.wait_for_subscribed(0);
    EXPECT_EQ(server.subscribers("feed"), 0u);
}

TEST(pubsub, unsubscribe_stops_delivery_at_once) {
    pubsub_server server;
    io_context ctx;
    auto t = [&]() -> task<void> {
        auto leaver = co_await ws::connect(ctx, server.url("/sub?topic=news"));
        auto stayer = co_await ws::connect(ctx, server.url("/sub?topic=news"));
        while (server.subscribed.load() < 2) co_await async_sleep(ctx, 5ms);
        co_await leaver.send("unsub");
        EXPECT_EQ((co_await leaver.recv()).value_or(""), "unsubscribed");
        auto pub = co_await ws::connect(ctx, server.url("/pub?topic=news"));
        co_await pub.send("after");
        EXPECT_EQ((co_await stayer.recv()).value_or(""), "after");
        co_await leaver.send("still here?");
        EXPECT_EQ((co_await leaver.recv()).value_or(""), "echo:still here?") << "nothing published reached it";
        co_await pub.close();
        co_await leaver.close();
        co_await stayer.close();
    };
    sync_wait(ctx, t());
    server.wait_for_subscribed(0);
    EXPECT_EQ(server.subscribers("news"), 0u);
}

TEST(pubsub, one_compressed_frame_for_those_that_negotiated_it_a_plain_one_for_the_rest) {
    ws::options so;
    so.enable_compression = true;
    ws::pubsub_options po;
    po.message_options = so;
    pubsub_server server(po, so);
    io_context ctx;
    const std::string big = numbered(7, 8000);
    auto t = [&]() -> task<void> {
        ws::options on;
        on.enable_compression = true;
        auto a = co_await ws::connect(ctx, server.url("/sub?topic=z"), on);
        auto b = co_await ws::connect(ctx, server.url("/sub?topic=z"));
        while (server.subscribed.load() < 2) co_await async_sleep(ctx, 5ms);
        EXPECT_TRUE(a.compression());
        EXPECT_FALSE(b.compression());
        auto pub = co_await ws::connect(ctx, server.url("/pub?topic=z"));
        co_await pub.send(big);
        EXPECT_EQ((co_await a.recv()).value_or(""), big);
        EXPECT_EQ((co_await b.recv()).value_or(""), big);
        co_await pub.close();
        co_await a.close();
        co_await b.close();
    };
    sync_wait(ctx, t());
}

TEST(pubsub, a_batch_interval_keeps_every_message_and_its_order) {
    ASSERT_TRUE(fd_limit_raised);
    ws::pubsub_options po;
    po.batch_interval = 2ms;
    pubsub_server server(po);
    io_context ctx;
    constexpr int subscribers = 50, messages = 300;
    std::vector<ws::connection> subs(subscribers);
    int in_order = 0, done = 0;
    auto t = [&]() -> task<void> {
        for (auto& s : subs) s = co_await ws::connect(ctx, server.url("/sub?topic=batched"));
        while (server.subscribed.load() < subscribers) co_await async_sleep(ctx, 5ms);
        auto pub = co_await ws::connect(ctx, server.url("/pub?topic=batched"));
        for (auto& s : subs)
            spawn(ctx, co_invoke([&]() -> task<void> {
                      in_order += co_await read_in_order(s, messages, 64);
                      ++done;
                  }));
        for (int i = 0; i < messages; ++i) {
            co_await pub.send(numbered(i, 64));
            if (i % 10 == 9) co_await async_sleep(ctx, 1ms);  // publishes spread over several intervals
        }
        while (done < subscribers) co_await async_sleep(ctx, 5ms);
        co_await pub.close();
        for (auto& s : subs) co_await s.close();
    };
    sync_wait(ctx, t());
    EXPECT_EQ(in_order, subscribers);
    EXPECT_GT(server.per_core[0].load(), 0);
    EXPECT_GT(server.per_core[1].load(), 0);
}

namespace {

// ~100-byte JSON chat lines, 2 KiB and 40 KiB documents: every form a
// published message can take to a peer that keeps its window.
std::string mixed_message(int i) {
    std::string line = R"({"type":"chat","room":"general","from":"user)" + std::to_string(i % 7) +
                       R"(","text":"message number )" + std::to_string(i) + R"("})";
    if (i % 10 == 3) {
        std::string doc = "[";
        while (doc.size() < 2048) doc += line + ",";
        return doc;
    }
    if (i % 50 == 17) {
        std::string big = "[";
        for (int k = 0; big.size() < 40 * 1024; ++k) big += numbered(k * 7919 % 100000, 64) + ",";
        return big + line;
    }
    return line;
}

}  // namespace

TEST(pubsub, published_and_direct_messages_interleave_on_connections_that_keep_their_window) {
    // Subscribers with context takeover (32 KiB and 1 KiB windows), one
    // without, and one without compression, each sending its own messages
    // (answered directly, "echo:...") while 300 publishes arrive: the shared
    // sync-flushed form and each connection's own compressed messages must
    // leave both ends' windows equal, or a later message mis-decodes.
    ws::options so;
    so.enable_compression = true;
    ws::pubsub_options po;
    po.message_options = so;
    pubsub_server server(po, so);
    io_context ctx;
    constexpr int messages = 300;
    struct kind {
        bool compression, takeover;
        int window;
    };
    const std::vector<kind> kinds = {{true, true, 15}, {true, true, 10}, {true, false, 15}, {false, false, 15}};
    int all_good = 0;
    auto t = [&]() -> task<void> {
        std::vector<ws::connection> subs;
        for (const auto& k : kinds) {
            ws::options co;
            co.enable_compression = k.compression;
            co.compression_context_takeover = k.takeover;
            co.compression_window_bits = k.window;
            subs.push_back(co_await ws::connect(ctx, server.url("/sub?topic=mix"), co));
            EXPECT_EQ(subs.back().compression(), k.compression);
        }
        while (server.subscribed.load() < static_cast<int>(kinds.size())) co_await async_sleep(ctx, 5ms);
        auto pub = co_await ws::connect(ctx, server.url("/pub?topic=mix"));
        int done = 0;
        for (std::size_t s = 0; s < subs.size(); ++s)
            spawn(ctx, co_invoke([&, s]() -> task<void> {
                      auto& c = subs[s];
                      int published = 0, echoed = 0;
                      bool good = true;
                      while (good && (published < messages || echoed < messages / 3)) {
                          auto m = co_await c.recv();
                          if (!m) {
                              good = false;
                              break;
                          }
                          if (m->starts_with("echo:")) {
                              good = *m == "echo:" + mixed_message(1000 + echoed * 3 + static_cast<int>(s));
                              ++echoed;
                          } else {
                              good = *m == mixed_message(published);
                              ++published;
                          }
                          if (!good) ADD_FAILURE() << "subscriber " << s << " at " << published << "/" << echoed;
                      }
                      all_good += good;
                      ++done;
                  }));
        for (int i = 0; i < messages; ++i) {
            co_await pub.send(mixed_message(i));
            if (i % 3 == 0)
                for (std::size_t s = 0; s < subs.size(); ++s)
                    co_await subs[s].send(mixed_message(1000 + i + static_cast<int>(s)));
            if (i == 119) co_await async_sleep(ctx, 2200ms);  // idle for two sweeps: the streams go back to the pool
        }
        while (done < static_cast<int>(subs.size())) co_await async_sleep(ctx, 5ms);
        co_await pub.close();
        for (auto& c : subs) co_await c.close();
    };
    sync_wait(ctx, t());
    EXPECT_EQ(all_good, static_cast<int>(kinds.size()));
}
