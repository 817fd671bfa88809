#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/http/server.hpp>

#include <gtest/gtest.h>

#include <string>

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
