#include "test_support.hpp"
#include <cnetmod/engine/detail/io_operation.hpp>
#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/detail/socket_core.hpp>

#include <gtest/gtest.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace cnetmod;
using namespace std::chrono_literals;
using testing_support::echo_server;
using testing_support::pattern;
using testing_support::read_exactly;

namespace {

net_init sigpipe_guard;

task<bool> echo_client(io_context& ctx, std::uint16_t port, std::uint32_t seed, std::size_t size) {
    auto s = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(port));
    const auto sent = pattern(size, seed);
    co_await s.send(sent);
    const auto got = co_await read_exactly(s, size, timeout(30s));
    co_await s.close();
    co_return got == sent;
}

}  // namespace

TEST(tcp, echo_with_1000_concurrent_connections_byte_for_byte) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    constexpr int connections = 1000;
    int matched = 0, finished = 0;
    auto main_task = [&]() -> task<void> {
        spawn(ctx, echo_server(ctx, listener));
        for (int i = 0; i < connections; ++i) {
            spawn(ctx, co_invoke([&, i]() -> task<void> {
                      if (co_await echo_client(ctx, listener.port(), static_cast<std::uint32_t>(i), 4096 + i))
                          ++matched;
                      ++finished;
                  }));
        }
        while (finished < connections) co_await async_sleep(ctx, 5ms);
        listener.close();
    };
    sync_wait(ctx, main_task());
    EXPECT_EQ(finished, connections);
    EXPECT_EQ(matched, connections);
}

TEST(tcp, large_transfer_survives_partial_sends_and_backpressure) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        spawn(ctx, echo_server(ctx, listener));
        bool ok = co_await echo_client(ctx, listener.port(), 99, 16 * 1024 * 1024);
        EXPECT_TRUE(ok);
        listener.close();
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, many_small_sends_in_one_turn_are_one_system_call) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept();
        std::string expected;
        for (int i = 0; i < 100; ++i) {
            std::string msg = "message " + std::to_string(i) + ";";
            expected += msg;
            client.queue(msg);
        }
        co_await client.drain();
        EXPECT_EQ(client.send_calls(), 1u);
        auto got = co_await read_exactly(server, expected.size(), timeout(5s));
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data()), got.size()), expected);
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, shared_buffers_are_sent_without_copy_in_order_with_copied_bytes) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept();
        auto shared = shared_buffer::copy_of(std::as_bytes(std::span("<shared>", 8)));
        client.queue(std::string_view("a"));
        client.queue(shared);
        client.queue(std::string_view("b"));
        client.queue(shared);
        EXPECT_EQ(shared.use_count(), 3);
        co_await client.drain();
        EXPECT_EQ(shared.use_count(), 1) << "sent buffers are released";
        auto got = co_await read_exactly(server, 18, timeout(5s));
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data()), got.size()), "a<shared>b<shared>");
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, receive_under_provided_buffer_exhaustion_loses_nothing) {
    // Four 256-byte buffers for the whole core: one connection that is never
    // read takes them all, and every other connection must still be served.
    io_context ctx({.recv_buffer_count = 4, .recv_buffer_size = 256});
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto hog_client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto hog_server = co_await listener.accept();
        const auto hog_bytes = pattern(64 * 1024, 7);
        hog_client.queue(hog_bytes);
        // Start the hog's receive without consuming: it fills the ring.
        auto first = co_await hog_server.recv_view(timeout(5s));
        EXPECT_FALSE(first.empty());
        co_await async_sleep(ctx, 50ms);
        EXPECT_EQ(detail::reactor_of(ctx).recv_buffers().available(), 0u) << "the hog holds every buffer";

        spawn(ctx, echo_server(ctx, listener));
        int matched = 0;
        for (int i = 0; i < 20; ++i)
            if (co_await echo_client(ctx, listener.port(), 100 + i, 8 * 1024)) ++matched;
        EXPECT_EQ(matched, 20);

        // The hog's data is intact too once it reads.
        auto got = co_await read_exactly(hog_server, hog_bytes.size(), timeout(10s));
        EXPECT_TRUE(got == hog_bytes);
        listener.close();
    };
    sync_wait(ctx, main_task());
    EXPECT_EQ(detail::reactor_of(ctx).recv_buffers().available(), 4u) << "every buffer went back to the ring";
}

TEST(tcp, idle_connections_hold_no_receive_buffer) {
    io_context ctx({.recv_buffer_count = 64, .recv_buffer_size = 1024});
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        std::vector<tcp_stream> clients, servers;
        for (int i = 0; i < 200; ++i) {
            clients.push_back(co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port())));
            servers.push_back(co_await listener.accept());
        }
        // Each server side waits in recv once, then idles.
        for (auto& s : servers)
            spawn(ctx, [](tcp_stream& st) -> task<void> {
                auto v = co_await st.recv_view();
                st.consume(v.size());
                try {
                    co_await st.recv_view();
                } catch (const std::system_error&) {
                    // the client's abort below resets the connection
                }
            }(s));
        for (auto& c : clients) c.queue(std::string_view("x"));
        co_await async_sleep(ctx, 100ms);
        EXPECT_EQ(detail::reactor_of(ctx).recv_buffers().available(), 64u);
        for (auto& c : clients) c.abort();
        co_await async_sleep(ctx, 20ms);
    };
    sync_wait(ctx, main_task());
}

// Issue 12: what only a busy socket needs (receive queue, send queue,
// waiting writers) is lent while bytes wait and given back when it idles.
TEST(tcp, idle_sockets_hold_no_lent_state_after_traffic) {
    static_assert(sizeof(detail::socket_core) <= 64);
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        std::vector<tcp_stream> clients, servers;
        for (int i = 0; i < 50; ++i) {
            clients.push_back(co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port())));
            servers.push_back(co_await listener.accept());
        }
        // Each server echoes 3 messages, then waits for more.
        for (auto& s : servers)
            spawn(ctx, [](tcp_stream& st) -> task<void> {
                try {
                    for (;;) {
                        auto v = co_await st.recv_view();
                        if (v.empty()) co_return;
                        st.queue(v);
                        st.consume(v.size());
                    }
                } catch (const std::system_error&) {
                }
            }(s));
        for (int round = 0; round < 3; ++round) {
            for (auto& c : clients) co_await c.send(pattern(4000, round));
            for (auto& c : clients) EXPECT_EQ(co_await read_exactly(c, 4000, timeout(10s)), pattern(4000, round));
        }
        EXPECT_GT(detail::send_queue_allocations(), 0u);
        co_await async_sleep(ctx, 50ms);
        EXPECT_EQ(detail::lent_socket_sides(), 0u) << "100 idle sockets, open, hold no queue";
        for (auto& c : clients) EXPECT_EQ(c.send_capacity(), 0u);
        for (auto& c : clients) c.abort();
        co_await async_sleep(ctx, 20ms);
    };
    sync_wait(ctx, main_task());
}

// Sockets are named by a slot of the ring's registered-file table while
// there is one; the rest use their descriptors, and both work alike. A
// closed socket's slot is emptied (the peer sees the end) and reused.
TEST(tcp, sockets_use_registered_file_slots_while_there_are_any) {
    io_context ctx({.registered_files = 4});
    ASSERT_EQ(ctx.features().registered_files, 4u) << "this kernel has sparse file tables (5.19)";
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        std::vector<tcp_stream> clients, servers;
        for (int i = 0; i < 3; ++i) {
            clients.push_back(co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port())));
            servers.push_back(co_await listener.accept());
        }
        int registered = 0;
        for (auto* side : {&clients, &servers})
            for (auto& s : *side) registered += s.is_registered();
        EXPECT_EQ(registered, 4) << "four slots, six sockets";
        for (int i = 0; i < 3; ++i) {
            co_await clients[i].send(pattern(70000, i));
            EXPECT_EQ(co_await read_exactly(servers[i], 70000, timeout(10s)), pattern(70000, i));
            co_await servers[i].send(pattern(5000, i + 10));
            EXPECT_EQ(co_await read_exactly(clients[i], 5000, timeout(10s)), pattern(5000, i + 10));
        }
        // Close a registered one: its peer reads the end, and its slot goes to the next socket.
        const std::size_t closed = clients[0].is_registered() ? 0 : 1;
        EXPECT_TRUE(clients[closed].is_registered());
        co_await clients[closed].close(timeout(1s));
        auto end = co_await servers[closed].recv_view(timeout(5s));
        EXPECT_TRUE(end.empty()) << "the emptied slot let the socket close";
        auto next = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        EXPECT_TRUE(next.is_registered()) << "the slot was reused";
        auto next_peer = co_await listener.accept();
        co_await next.send(pattern(100, 1));
        EXPECT_EQ(co_await read_exactly(next_peer, 100, timeout(5s)), pattern(100, 1));
    };
    sync_wait(ctx, main_task());
}

// A slot emptied by a close goes back to use only after the turn's SQEs
// are submitted: an SQE the closed socket prepared earlier in the turn may
// still name it, and must not reach a new socket.
TEST(tcp, an_emptied_slot_is_not_reused_in_the_same_turn) {
    io_context ctx({.registered_files = 1});
    ASSERT_EQ(ctx.features().registered_files, 1u);
    auto main_task = [&]() -> task<void> {
        int a[2], b[2], c[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c), 0);
        auto first = std::make_unique<tcp_stream>(ctx, a[0]);
        EXPECT_TRUE(first->is_registered());
        first->queue(std::string_view("a send prepared this turn"));
        first.reset();  // closed in the same turn
        tcp_stream second(ctx, b[0]);
        EXPECT_FALSE(second.is_registered()) << "the slot is quarantined until the next submission";
        co_await async_sleep(ctx, 1ms);  // a loop turn, with its submission, passes
        tcp_stream third(ctx, c[0]);
        EXPECT_TRUE(third.is_registered()) << "and free again after it";
        // Both work, registered or not.
        second.queue(std::string_view("two"));
        third.queue(std::string_view("three"));
        co_await second.drain(timeout(2s));
        co_await third.drain(timeout(2s));
        char buf[16];
        EXPECT_EQ(::recv(b[1], buf, sizeof buf, 0), 3);
        EXPECT_EQ(::recv(c[1], buf, sizeof buf, 0), 5);
        for (int fd : {a[1], b[1], c[1]}) ::close(fd);
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, no_registered_files_when_the_table_is_off) {
    io_context ctx({.registered_files = 0});
    EXPECT_EQ(ctx.features().registered_files, 0u);
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto c = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto s = co_await listener.accept();
        EXPECT_FALSE(c.is_registered());
        co_await c.send(pattern(1000, 3));
        EXPECT_EQ(co_await read_exactly(s, 1000, timeout(5s)), pattern(1000, 3));
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, reading_pauses_above_the_high_water_mark) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0), {.stream = {.receive_high_water = 64 * 1024}});
    auto main_task = [&]() -> task<void> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept();
        const auto bytes = pattern(8 * 1024 * 1024, 3);
        client.queue(bytes);
        co_await server.recv_view();  // arms receiving
        co_await async_sleep(ctx, 200ms);
        // The high-water mark plus what arrived before the cancel took effect.
        EXPECT_LE(server.buffered(), 64u * 1024 + 64u * ctx.options().recv_buffer_size);
        EXPECT_GT(client.queued_bytes(), 0u) << "the sender is held back by TCP";
        auto got = co_await read_exactly(server, bytes.size(), timeout(30s));
        EXPECT_TRUE(got == bytes);
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, send_suspends_above_the_high_water_mark_until_drained) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()), {}, {},
                                           {.send_high_water = 256 * 1024});
        auto server = co_await listener.accept();
        const auto chunk = pattern(64 * 1024, 5);
        std::size_t max_queued = 0;
        bool reader_done = false;
        std::size_t received = 0;
        spawn(ctx, co_invoke([&]() -> task<void> {
                  co_await async_sleep(ctx, 100ms);  // let the sender hit the mark first
                  for (;;) {
                      auto v = co_await server.recv_view();
                      if (v.empty()) break;
                      received += v.size();
                      server.consume(v.size());
                  }
                  co_await server.close();
                  reader_done = true;
              }));
        for (int i = 0; i < 256; ++i) {
            co_await client.send(chunk);
            max_queued = std::max(max_queued, client.queued_bytes());
        }
        co_await client.close();
        while (!reader_done) co_await async_sleep(ctx, 5ms);
        EXPECT_EQ(received, 256u * chunk.size());
        EXPECT_LE(max_queued, 256u * 1024 + chunk.size()) << "send() held the queue near its mark";
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, graceful_close_delivers_everything_then_end_of_stream) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept();
        const auto bytes = pattern(1024 * 1024, 11);
        spawn(ctx, co_invoke([&]() -> task<void> {
                  server.queue(bytes);
                  co_await server.close(timeout(5s));
              }));
        auto got = co_await read_exactly(client, bytes.size() + 1, timeout(5s));
        EXPECT_TRUE(got == bytes) << "all bytes, then end of stream";
        auto tail = co_await client.recv_view(timeout(5s));
        EXPECT_TRUE(tail.empty());
        co_await client.close();
        EXPECT_FALSE(client.is_open());
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, abort_resets_the_connection) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept();
        server.queue(std::string_view("unread"));
        co_await server.drain();
        server.abort();
        EXPECT_FALSE(server.is_open());
        try {
            for (;;) {
                auto v = co_await client.recv_view(timeout(5s));
                if (v.empty()) break;
                client.consume(v.size());
            }
            ADD_FAILURE() << "expected a reset";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), ECONNRESET) << e.what();
        }
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, connects_over_ipv6_and_by_resolved_name) {
    io_context ctx;
    auto v6 = tcp_listener::bind(ctx, ip_endpoint::loopback_v6(0));
    auto v4 = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        spawn(ctx, echo_server(ctx, v6));
        spawn(ctx, echo_server(ctx, v4));
        auto a = co_await tcp_connect(ctx, "::1", v6.port());
        EXPECT_TRUE(a.remote_endpoint().is_v6());
        EXPECT_EQ(a.remote_endpoint().address(), "::1");
        // "localhost" may resolve to ::1 first, where nothing listens on this
        // port: connect falls through to 127.0.0.1.
        auto b = co_await tcp_connect(ctx, "localhost", v4.port(), timeout(5s));
        EXPECT_EQ(b.remote_endpoint().address(), "127.0.0.1");
        co_await b.send(std::string_view("hi"));
        auto got = co_await read_exactly(b, 2, timeout(5s));
        EXPECT_EQ(got.size(), 2u);
        v4.close();
        v6.close();
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, errors_name_what_failed) {
    io_context ctx;
    std::uint16_t unused_port;
    {
        auto probe = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
        unused_port = probe.port();
    }
    auto main_task = [&]() -> task<void> {
        try {
            co_await tcp_connect(ctx, ip_endpoint::loopback_v4(unused_port));
            ADD_FAILURE() << "connect to a closed port succeeded";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), ECONNREFUSED);
            EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(unused_port)), std::string::npos)
                << e.what();
        }
        try {
            co_await tcp_connect(ctx, "no-such-host.invalid", 80, timeout(10s));
            ADD_FAILURE() << "resolved an .invalid name";
        } catch (const std::system_error& e) {
            EXPECT_NE(std::string(e.what()).find("no-such-host.invalid"), std::string::npos) << e.what();
        }
    };
    sync_wait(ctx, main_task());
    auto held = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0), {.reuse_port = false});
    try {
        tcp_listener::bind(ctx, ip_endpoint::loopback_v4(held.port()), {.reuse_port = false});
        ADD_FAILURE() << "bound a port twice";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EADDRINUSE);
    }
}

TEST(tcp, deadlines_on_receive_and_accept) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto t0 = std::chrono::steady_clock::now();
        try {
            co_await listener.accept(timeout(50ms));
            ADD_FAILURE() << "accepted nothing";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code(), std::errc::timed_out);
        }
        EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept(timeout(5s));
        try {
            co_await server.recv_view(timeout(50ms));
            ADD_FAILURE() << "received from a silent peer";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code(), std::errc::timed_out);
        }
        // The stream still works after a timed-out receive.
        client.queue(std::string_view("late"));
        auto got = co_await read_exactly(server, 4, timeout(5s));
        EXPECT_EQ(got.size(), 4u);
    };
    sync_wait(ctx, main_task());
}

TEST(tcp, any_operation_takes_a_deadline_and_a_stop_token) {
    io_context ctx;
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    auto main_task = [&]() -> task<void> {
        char buf[16];
        // A linked timeout cancels a recv that never completes.
        int rc = co_await submit(
            ctx, [&](io_uring_sqe* sqe) { io_uring_prep_recv(sqe, fds[0], buf, sizeof buf, 0); }, timeout(30ms));
        EXPECT_EQ(rc, -ETIMEDOUT);
        // A stop request cancels one too.
        std::stop_source stop;
        spawn(ctx, co_invoke([&]() -> task<void> {
                  co_await async_sleep(ctx, 20ms);
                  stop.request_stop();
              }));
        rc = co_await submit(
            ctx, [&](io_uring_sqe* sqe) { io_uring_prep_recv(sqe, fds[0], buf, sizeof buf, 0); }, {}, stop.get_token());
        EXPECT_EQ(rc, -ECANCELED);
        // And a recv that completes in time is untouched by its deadline.
        ::write(fds[1], "ok", 2);
        rc = co_await submit(
            ctx, [&](io_uring_sqe* sqe) { io_uring_prep_recv(sqe, fds[0], buf, sizeof buf, 0); }, timeout(5s));
        EXPECT_EQ(rc, 2);
    };
    sync_wait(ctx, main_task());
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST(tcp, registered_buffers_go_out_zero_copy_and_return_to_their_pool) {
    io_context ctx(
        {.registered_buffer_count = 4, .registered_buffer_size = 256 * 1024, .send_zc_threshold = 64 * 1024});
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept();
        std::vector<std::byte> expected;
        for (int round = 0; round < 8; ++round) {
            auto big = ctx.acquire_registered_buffer();
            EXPECT_TRUE(big.has_value());
            if (!big) co_return;
            const auto bytes = pattern(200 * 1024, static_cast<std::uint32_t>(round));
            std::memcpy(big->data().data(), bytes.data(), bytes.size());
            big->resize(bytes.size());
            client.queue(std::string_view("<small>"));  // copied, in order with the zero-copy send
            client.queue(std::move(*big));
            expected.insert(expected.end(), reinterpret_cast<const std::byte*>("<small>"),
                            reinterpret_cast<const std::byte*>("<small>") + 7);
            expected.insert(expected.end(), bytes.begin(), bytes.end());
            auto got = co_await read_exactly(server, 7 + bytes.size(), timeout(10s));
            EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.end() - static_cast<std::ptrdiff_t>(got.size())));
        }
        // A registered buffer under the threshold is copied instead.
        auto small = ctx.acquire_registered_buffer();
        small->resize(1000);
        client.queue(std::move(*small));
        co_await read_exactly(server, 1000, timeout(5s));
        EXPECT_GE(client.zero_copy_sends(), 8u);
        co_await async_sleep(ctx, 50ms);  // notifications arrive once the data is acknowledged
    };
    sync_wait(ctx, main_task());
    std::vector<registered_buffer> all;
    while (auto b = ctx.acquire_registered_buffer()) all.push_back(std::move(*b));
    EXPECT_EQ(all.size(), 4u) << "every buffer came back after its notification";
}

namespace {
task<void> forwarding_echo_session(tcp_stream s) {
    for (;;) {
        auto view = co_await s.recv_view();
        if (view.empty()) break;
        s.queue_received(view.size());  // no copy: the receive buffer itself is sent
    }
    co_await s.close();
}
}  // namespace

TEST(tcp, received_bytes_are_forwarded_without_copy_and_buffers_return) {
    io_context ctx({.recv_buffer_count = 64, .recv_buffer_size = 4096});
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    int matched = 0;
    auto main_task = [&]() -> task<void> {
        spawn(ctx, co_invoke([&]() -> task<void> {
                  for (;;) {
                      tcp_stream s;
                      try {
                          s = co_await listener.accept();
                      } catch (const std::system_error&) {
                          co_return;
                      }
                      spawn(ctx, forwarding_echo_session(std::move(s)));
                  }
              }));
        for (int i = 0; i < 50; ++i)
            if (co_await echo_client(ctx, listener.port(), 500 + i, 100 * 1024 + i)) ++matched;
        listener.close();
        co_await async_sleep(ctx, 20ms);
    };
    sync_wait(ctx, main_task());
    EXPECT_EQ(matched, 50);
    EXPECT_EQ(detail::reactor_of(ctx).recv_buffers().available(), 64u)
        << "every forwarded buffer went back to the ring";
}

TEST(tcp, a_large_burst_does_not_stay_in_the_send_queue) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto main_task = [&]() -> task<void> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept();
        client.queue(pattern(4 * 1024 * 1024, 1));
        auto got = co_await read_exactly(server, 4 * 1024 * 1024, timeout(10s));
        EXPECT_EQ(got.size(), 4u * 1024 * 1024);
        co_await client.drain();
        EXPECT_EQ(client.send_capacity(), 0u) << "an idle stream holds no send-queue memory";
        // The queue goes back to the core's pool with its 4 MiB arena cut
        // down, and the next stream to send borrows it again.
        const std::size_t allocations = detail::send_queue_allocations();
        client.queue(std::string_view("small"));
        EXPECT_GT(client.send_capacity(), 0u);
        EXPECT_LE(client.send_capacity(), 2u * 64 * 1024) << "the 4 MiB buffer went back to the heap";
        co_await client.drain();
        EXPECT_EQ(client.send_capacity(), 0u);
        EXPECT_EQ(detail::send_queue_allocations(), allocations) << "the queue came from the pool";
    };
    sync_wait(ctx, main_task());
}

// Accepted connections carry TCP keepalive (set on the listener, inherited),
// so that a peer gone without FIN or RST is found; the probes' timing is the
// listener's to set.
TEST(tcp_listener, accepted_sockets_have_tcp_keepalive) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0),
                                       {.keepalive_idle = std::chrono::seconds(42), .keepalive_count = 3});
    auto t = [&]() -> task<std::array<int, 4>> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto accepted = co_await listener.accept();
        std::array<int, 4> v{};
        socklen_t len = sizeof(int);
        ::getsockopt(accepted.native_handle(), SOL_SOCKET, SO_KEEPALIVE, &v[0], &len);
        ::getsockopt(accepted.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &v[1], &len);
        ::getsockopt(accepted.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &v[2], &len);
        ::getsockopt(accepted.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &v[3], &len);
        co_return v;
    };
    const auto v = sync_wait(ctx, t());
    EXPECT_EQ(v[0], 1);
    EXPECT_EQ(v[1], 42);
    EXPECT_EQ(v[2], 10);
    EXPECT_EQ(v[3], 3);
}

// discard_queued drops what waits unsent (a peer being cut off) at once.
TEST(tcp_stream, discard_queued_drops_unsent_bytes) {
    io_context ctx;
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto t = [&]() -> task<std::pair<std::size_t, std::size_t>> {
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto accepted = co_await listener.accept();
        const std::string big(256 * 1024, 'd');
        accepted.queue(big);
        const std::size_t queued = accepted.queued_bytes();
        const std::size_t dropped = accepted.discard_queued();
        co_return std::make_pair(queued - accepted.queued_bytes(), dropped);
    };
    const auto [gone, dropped] = sync_wait(ctx, t());
    EXPECT_EQ(gone, 256u * 1024);
    EXPECT_EQ(dropped, 256u * 1024);
}
