#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/http/server.hpp>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

using namespace cnetmod;
using namespace std::chrono_literals;

namespace {

net_init sigpipe_guard;

// Sends raw bytes and returns everything the server sends until it closes.
task<std::string> exchange(io_context& ctx, std::uint16_t port, std::string raw, std::chrono::milliseconds limit = 5s) {
    auto s = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(port));
    s.queue(raw);
    std::string got;
    try {
        for (;;) {
            auto v = co_await s.recv_view(timeout(limit));
            if (v.empty()) break;
            got.append(reinterpret_cast<const char*>(v.data()), v.size());
            s.consume(v.size());
        }
    } catch (const std::system_error&) {
        got += "<timeout>";
    }
    co_return got;
}

std::size_t count(const std::string& haystack, std::string_view needle) {
    std::size_t n = 0;
    for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
    return n;
}

struct http_fixture : ::testing::Test {
    io_context ctx;
    http::server srv{ctx, [] {
                         http::server_options o;
                         o.request_timeout = 300ms;
                         o.keep_alive_timeout = 2s;
                         return o;
                     }()};

    void SetUp() override {
        srv.get("/", [](http::request_context& c) -> task<void> {
            c.resp().set_header("Content-Type", "text/html");
            c.resp().set_body("<h1>hello</h1>");
            co_return;
        });
        srv.get("/query", [](http::request_context& c) -> task<void> {
            c.resp().set_body(std::string(c.path()) + "|" + std::string(c.query()) + "|" +
                              std::string(c.header("x-CASE")));
            co_return;
        });
        srv.post("/echo", [](http::request_context& c) -> task<void> {
            c.resp().set_status(http::status::created);
            c.resp().set_body(c.body());
            co_return;
        });
        srv.get("/slow", [](http::request_context& c) -> task<void> {
            co_await async_sleep(c.context(), 20ms);
            c.resp().set_body("slow");
        });
        srv.get("/throws", [](http::request_context&) -> task<void> {
            throw std::runtime_error("handler failure");
            co_return;
        });
        srv.listen(0, "127.0.0.1");
    }

    std::string run(std::string raw) {
        auto t = [&]() -> task<std::string> { co_return co_await exchange(ctx, srv.port(), std::move(raw)); };
        return sync_wait(ctx, t());
    }
};

}  // namespace

TEST_F(http_fixture, serves_a_page) {
    auto r = run("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
    EXPECT_NE(r.find("Content-Type: text/html\r\n"), std::string::npos) << r;
    EXPECT_NE(r.find("Content-Length: 14\r\n"), std::string::npos) << r;
    EXPECT_TRUE(r.ends_with("\r\n\r\n<h1>hello</h1>")) << r;
}

TEST_F(http_fixture, exposes_path_query_and_headers_case_insensitively) {
    auto r = run("GET /query?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Case: Yes\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(r.ends_with("/query|a=1&b=2|Yes")) << r;
}

TEST_F(http_fixture, unknown_path_404_other_method_405_with_allow) {
    auto r = run("GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 404 Not Found\r\n")) << r;
    r = run("DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << r;
    EXPECT_NE(r.find("Allow: POST\r\n"), std::string::npos) << r;
}

TEST_F(http_fixture, head_uses_the_get_handler_without_a_body) {
    auto r = run("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
    EXPECT_NE(r.find("Content-Length: 14\r\n"), std::string::npos) << r;
    EXPECT_TRUE(r.ends_with("\r\n\r\n")) << r;
}

TEST_F(http_fixture, keep_alive_and_pipelined_requests_answer_in_order) {
    auto r =
        run("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /query?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
            "GET /query?n=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(count(r, "HTTP/1.1 "), 4u) << r;
    const auto a = r.find("slow"), b = r.find("n=2"), c = r.find("abcde"), d = r.find("n=4");
    ASSERT_NE(d, std::string::npos) << r;
    EXPECT_LT(a, b);
    EXPECT_LT(b, c);
    EXPECT_LT(c, d);
}

TEST_F(http_fixture, bodies_by_length_and_chunked) {
    auto r = run("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 201 Created\r\n")) << r;
    EXPECT_TRUE(r.ends_with("hello world")) << r;
    r =
        run("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            "6\r\nchunky\r\n5\r\n body\r\n0\r\n\r\n");
    EXPECT_TRUE(r.ends_with("chunky body")) << r;
}

TEST_F(http_fixture, bad_requests_get_their_status_and_close) {
    auto r = run("GARBAGE\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 400 Bad Request\r\n")) << r;
    EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
    r = run("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 431 ")) << r.substr(0, 60);
    r = run("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 413 ")) << r;
    r = run("GET / HTTP/3.0\r\nHost: x\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 505 ")) << r;
}

TEST_F(http_fixture, a_request_that_stalls_gets_408) {
    auto r = run("GET / HTTP/1.1\r\nHost: x\r\n");  // never finished
    EXPECT_TRUE(r.starts_with("HTTP/1.1 408 Request Timeout\r\n")) << r;
}

TEST_F(http_fixture, a_throwing_handler_gets_500_and_the_server_carries_on) {
    testing::internal::CaptureStderr();
    auto r = run("GET /throws HTTP/1.1\r\nHost: x\r\n\r\n");
    auto err = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(r.starts_with("HTTP/1.1 500 Internal Server Error\r\n")) << r;
    EXPECT_NE(err.find("handler failure"), std::string::npos) << err;
    r = run("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
}

TEST_F(http_fixture, http10_closes_after_the_response) {
    auto r = run("GET / HTTP/1.0\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
    EXPECT_EQ(r.find("<timeout>"), std::string::npos) << r;
}

TEST(http_server, runs_on_every_core_of_a_runtime) {
    runtime rt({.cores = 2});
    rt.start();
    http::server srv(rt);
    std::atomic<int> cores_seen[2] = {0, 0};
    srv.get("/core", [&](http::request_context& c) -> task<void> {
        const int core = runtime::current_core();
        ++cores_seen[core];
        c.resp().set_body(std::to_string(core));
        co_return;
    });
    srv.listen(0, "127.0.0.1");
    io_context client;
    auto t = [&]() -> task<int> {
        int ok = 0;
        for (int i = 0; i < 100; ++i) {
            auto r =
                co_await exchange(client, srv.port(), "GET /core HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            if (r.starts_with("HTTP/1.1 200 OK")) ++ok;
        }
        co_return ok;
    };
    EXPECT_EQ(sync_wait(client, t()), 100);
    srv.stop();
    rt.stop();
    rt.wait();
    EXPECT_GT(cores_seen[0].load(), 0);
    EXPECT_GT(cores_seen[1].load(), 0);
}

// ---- hardening: half-close, write timeout, version answers, ports ----

// A client that sends its requests then shuts down its sending side still
// gets every answer (RFC 9112 §9.6: the server closes after answering).
TEST_F(http_fixture, a_half_closed_client_gets_every_answer) {
    auto t = [&]() -> task<std::string> {
        auto s = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(srv.port()));
        std::string requests;
        for (int i = 0; i < 50; ++i) requests += "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        s.queue(requests);
        co_await s.drain();
        ::shutdown(s.native_handle(), SHUT_WR);
        std::string got;
        for (;;) {
            auto v = co_await s.recv_view(timeout(5s));
            if (v.empty()) break;
            got.append(reinterpret_cast<const char*>(v.data()), v.size());
            s.consume(v.size());
        }
        co_return got;
    };
    EXPECT_EQ(count(sync_wait(ctx, t()), "HTTP/1.1 200 OK"), 50u);
}

// A client that pipelines requests and never reads is cut off after
// write_timeout; the server holds little for it meanwhile.
TEST(http_server, a_client_that_never_reads_is_cut_off_after_the_write_timeout) {
    io_context ctx;
    http::server_options o;
    o.write_timeout = 300ms;
    http::server srv(ctx, o);
    srv.get("/big", [](http::request_context& c) -> task<void> {
        c.resp().set_body(std::string(256 * 1024, 'b'));
        co_return;
    });
    srv.listen(0, "127.0.0.1");
    std::size_t answers = 0;
    bool ended = false;
    const auto before = http::cutoffs().write_timeout;
    std::thread client([&, port = srv.port()] {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        const ip_endpoint ep = ip_endpoint::loopback_v4(port);
        ASSERT_EQ(::connect(fd, ep.data(), ep.size()), 0);
        int small = 4096;
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        std::string requests;
        for (int i = 0; i < 100; ++i) requests += "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
        ASSERT_EQ(::send(fd, requests.data(), requests.size(), 0), static_cast<ssize_t>(requests.size()));
        std::this_thread::sleep_for(1500ms);  // not reading, well past the write timeout
        std::string got;
        char buf[65536];
        timeval tv{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        for (;;) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) {
                ended = n == 0 || errno == ECONNRESET;
                break;
            }
            got.append(buf, static_cast<std::size_t>(n));
        }
        answers = count(got, "HTTP/1.1 200 OK");
        ::close(fd);
    });
    auto t = [&]() -> task<std::string> {
        co_await async_sleep(ctx, 2500ms);
        co_return co_await exchange(ctx, srv.port(), "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    };
    const std::string bystander = sync_wait(ctx, t());
    client.join();
    EXPECT_TRUE(bystander.starts_with("HTTP/1.1 200 OK"));
    EXPECT_TRUE(ended) << "the connection was not ended";
    EXPECT_LT(answers, 100u) << "every answer was queued for a client that did not read";
    EXPECT_EQ(http::cutoffs().write_timeout, before + 1);
}

// RFC 6455 §4.2.2: a refused handshake of another version names version 13.
TEST(http_server, a_websocket_handshake_of_another_version_is_told_version_13) {
    io_context ctx;
    http::server srv(ctx);
    srv.get("/untouched", [](http::request_context&) -> task<void> { co_return; });
    srv.get("/refused", [](http::request_context& c) -> task<void> {
        c.resp().set_status(http::status::bad_request);
        co_return;
    });
    srv.listen(0, "127.0.0.1");
    auto ask = [&](std::string path) {
        return sync_wait(ctx, exchange(ctx, srv.port(),
                                       "GET " + path +
                                           " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"
                                           "Connection: close\r\n\r\n"));
    };
    const auto untouched = ask("/untouched");
    EXPECT_TRUE(untouched.starts_with("HTTP/1.1 426")) << untouched;
    EXPECT_NE(untouched.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos) << untouched;
    const auto refused = ask("/refused");
    EXPECT_TRUE(refused.starts_with("HTTP/1.1 400")) << refused;
    EXPECT_NE(refused.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos) << refused;
}

// A second server on a port in use is refused, unless it asks to share it.
TEST(http_server, a_port_in_use_is_refused_unless_shared) {
    runtime rt({.cores = 2});
    rt.start();
    http::server first(rt);
    first.get("/", [](http::request_context&) -> task<void> { co_return; });
    first.listen(0, "127.0.0.1");
    io_context ctx;
    http::server second(ctx);
    try {
        second.listen(first.port(), "127.0.0.1");
        ADD_FAILURE() << "a second server joined a port in use";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), std::errc::address_in_use) << e.what();
    }
    http::server_options shared;
    shared.share_port = true;
    http::server third(ctx, shared);
    EXPECT_NO_THROW(third.listen(first.port(), "127.0.0.1")) << "share_port joins the port";
    auto turn = [&] { sync_wait(ctx, co_invoke([&]() -> task<void> { co_await async_sleep(ctx, 20ms); })); };
    turn();  // the accept loop starts
    third.stop();
    turn();  // and ends
    first.stop();
    rt.stop();
    rt.wait();
}

// RFC 9112 §6 on the wire: a body framed by two Transfer-Encoding lines is
// refused and the connection closed, so a request hidden in it is never
// read; every refusal is counted.
TEST_F(http_fixture, a_request_hidden_behind_two_transfer_encoding_lines_is_never_served) {
    const auto before = http::cutoffs().refused;
    const auto r =
        run("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
            "0\r\n\r\nGET /query?smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_TRUE(r.starts_with("HTTP/1.1 501 Not Implemented\r\n")) << r;
    EXPECT_EQ(count(r, "HTTP/1.1 "), 1u) << r;
    EXPECT_EQ(r.find("smuggled"), std::string::npos) << r;
    const auto r10 = run("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    EXPECT_TRUE(r10.starts_with("HTTP/1.1 400 Bad Request\r\n")) << r10;
    EXPECT_EQ(http::cutoffs().refused, before + 2);
}

// write_timeout bounds a peer that takes nothing, not the whole of a large
// response: a slow but steady reader gets all of it.
TEST(http_server, a_slow_steady_reader_gets_a_response_that_takes_longer_than_the_write_timeout) {
    io_context ctx;
    http::server_options o;
    o.write_timeout = 300ms;
    http::server srv(ctx, o);
    const std::string body(4 * 1024 * 1024, 's');
    srv.get("/big", [&](http::request_context& c) -> task<void> {
        c.resp().set_body(body);
        co_return;
    });
    srv.listen(0, "127.0.0.1");
    std::atomic<std::size_t> received{0};
    std::atomic<bool> done{false};
    std::thread client([&, port = srv.port()] {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        int small = 64 * 1024;
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        const ip_endpoint ep = ip_endpoint::loopback_v4(port);
        if (::connect(fd, ep.data(), ep.size()) == 0) {
            const std::string request = "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            (void)::send(fd, request.data(), request.size(), 0);
            std::string buf(256 * 1024, '\0');
            for (bool open = true; open;) {  // 256 KiB every 100 ms: about 1.6 s in all, five write timeouts
                std::this_thread::sleep_for(100ms);
                for (std::size_t chunk = 0; chunk < buf.size();) {
                    const ssize_t n = ::recv(fd, buf.data(), buf.size() - chunk, 0);
                    if (n < 0 && errno == EINTR) continue;
                    if (n <= 0) {
                        open = false;
                        break;
                    }
                    chunk += static_cast<std::size_t>(n);
                    received += static_cast<std::size_t>(n);
                }
            }
        }
        ::close(fd);
        done = true;
    });
    auto wait = [&]() -> task<void> {
        const auto give_up = std::chrono::steady_clock::now() + 15s;
        while (!done && std::chrono::steady_clock::now() < give_up) co_await async_sleep(ctx, 50ms);
    };
    sync_wait(ctx, wait());
    client.join();
    const std::size_t got = received;
    EXPECT_GT(got, body.size()) << "the response (head and 4 MiB body) was cut short";
}
