// wss:// and TLS streams end to end on loopback, with certificates made by
// the openssl command at test time: TLS under tcp_stream, http::server with
// a certificate, ws::connect with verification, and the failures: an
// untrusted certificate, garbage instead of TLS, a handshake that never
// comes, certificate files that cannot be used.
#include "../../engine/test_support.hpp"
#include "../../support/tls_certs.hpp"
#include "ws_test_support.hpp"
#include <cnetmod/engine/tls.hpp>

#include <gtest/gtest.h>

#include <random>

using namespace cnetmod;
using namespace cnetmod::ws_testing;
using cnetmod::testing_support::make_test_certs;
using cnetmod::testing_support::pattern;
using cnetmod::testing_support::read_exactly;
using cnetmod::testing_support::test_certs;

namespace {

net_init sigpipe_guard;

const test_certs& certs() {
    static const test_certs made = make_test_certs();
    return made;
}

http::server_options tls_server_options_for_tests() {
    http::server_options o;
    o.tls = tls_server_options{certs().cert_file, certs().key_file};
    return o;
}

ws::options trusting_client() {
    ws::options o;
    o.tls.ca_file = certs().ca_file;
    return o;
}

struct wss_echo {
    io_context ctx;
    ws::options opts;
    http::server srv;
    explicit wss_echo(ws::options o = {}, http::server_options so = tls_server_options_for_tests())
        : opts(std::move(o)), srv(ctx, std::move(so)) {
        srv.get("/ws", [this](http::request_context& c) -> task<void> { co_await echo(c, opts); });
        srv.listen(0, "127.0.0.1");
    }
    std::string url(std::string_view host = "localhost") const {
        return "wss://" + std::string(host) + ":" + std::to_string(srv.port()) + "/ws";
    }
};

std::string random_text(std::size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::string s(n, 'a');
    for (auto& c : s) c = static_cast<char>('a' + gen() % 26);
    return s;
}

// Connects with `opts`, sends `text`, and returns what came back.
std::string round_trip(wss_echo& f, const std::string& url, const ws::options& opts, const std::string& text) {
    auto t = [&]() -> task<std::string> {
        auto c = co_await ws::connect(f.ctx, url, opts);
        co_await c.send(text);
        auto back = co_await c.recv();
        co_await c.close();
        co_return back.value_or("");
    };
    return sync_wait(f.ctx, t());
}

}  // namespace

TEST(wss, echoes_every_size_with_and_without_compression) {
    for (bool deflate : {false, true}) {
        ws::options so;
        so.enable_compression = deflate;
        wss_echo f{so};
        auto co = trusting_client();
        co.enable_compression = deflate;
        const std::vector<std::string> messages = {"", "x", random_text(16 * 1024, 1), std::string(1024 * 1024, 'c'),
                                                   random_text(1024 * 1024, 2)};
        auto t = [&]() -> task<void> {
            auto c = co_await ws::connect(f.ctx, f.url(), co);
            EXPECT_EQ(c.compression(), deflate);
            for (const auto& m : messages) {
                co_await c.send(m);
                auto back = co_await c.recv();
                EXPECT_EQ(back.value_or("<closed>"), m) << m.size();
            }
            co_await c.close();
            EXPECT_EQ(c.close_code(), 1000);
        };
        sync_wait(f.ctx, t());
    }
}

TEST(wss, a_client_on_an_ip_address_checks_the_ip_in_the_certificate) {
    wss_echo f;
    EXPECT_EQ(round_trip(f, f.url("127.0.0.1"), trusting_client(), "by address"), "by address");
}

TEST(wss, an_untrusted_certificate_fails_with_openssls_reason) {
    wss_echo f;
    ws::options system_store;  // the test CA is in no system store
    auto t = [&]() -> task<std::string> {
        try {
            auto c = co_await ws::connect(f.ctx, f.url(), system_store);
        } catch (const std::system_error& e) {
            co_return e.what();
        }
        co_return "connected";
    };
    const std::string what = sync_wait(f.ctx, t());
    EXPECT_NE(what.find("certificate verify failed"), std::string::npos) << what;
}

TEST(wss, verification_can_be_turned_off_for_tests) {
    wss_echo f;
    ws::options insecure;
    insecure.tls.verify = false;
    EXPECT_EQ(round_trip(f, f.url(), insecure, "unchecked"), "unchecked");
}

TEST(wss, garbage_instead_of_tls_is_dropped_and_others_carry_on) {
    wss_echo f;
    auto co = trusting_client();
    auto t = [&]() -> task<void> {
        auto good = co_await ws::connect(f.ctx, f.url(), co);
        auto raw = co_await tcp_connect(f.ctx, ip_endpoint::loopback_v4(f.srv.port()));
        raw.queue(std::string_view("GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        // The server answers with an alert at most, then closes.
        std::size_t got = 0;
        bool ended = false;
        try {
            for (;;) {
                auto v = co_await raw.recv_view(timeout(std::chrono::seconds(5)));
                if (v.empty()) {
                    ended = true;
                    break;
                }
                got += v.size();
                raw.consume(v.size());
            }
        } catch (const std::system_error& e) {
            ended = e.code() != std::errc::timed_out;  // a reset ends it too
        }
        EXPECT_TRUE(ended);
        EXPECT_LT(got, 64u) << "no HTTP answer in clear, an alert at most";
        co_await good.send("still here");
        EXPECT_EQ((co_await good.recv()).value_or(""), "still here");
        co_await good.close();
    };
    sync_wait(f.ctx, t());
}

TEST(wss, a_handshake_that_never_comes_is_cut_off_at_its_timeout) {
    http::server_options so = tls_server_options_for_tests();
    so.tls_handshake_timeout = std::chrono::milliseconds(200);
    wss_echo f{{}, so};
    auto t = [&]() -> task<bool> {
        auto raw = co_await tcp_connect(f.ctx, ip_endpoint::loopback_v4(f.srv.port()));
        try {
            auto v = co_await raw.recv_view(timeout(std::chrono::seconds(5)));
            co_return v.empty();
        } catch (const std::system_error& e) {
            co_return e.code() != std::errc::timed_out;
        }
    };
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(sync_wait(f.ctx, t())) << "the server closed the silent connection";
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
}

TEST(wss, unusable_certificate_files_are_named_in_the_error) {
    io_context ctx;
    auto expect_error = [&](const std::string& cert, const std::string& key, const std::string& named) {
        http::server_options so;
        so.tls = tls_server_options{cert, key};
        try {
            http::server srv(ctx, so);
            ADD_FAILURE() << "no error for " << cert << " / " << key;
        } catch (const tls_error& e) {
            EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
        }
    };
    expect_error(certs().bad_file, certs().key_file, certs().bad_file);
    expect_error(certs().cert_file, certs().bad_file, certs().bad_file);
    expect_error(certs().dir + "/missing.pem", certs().key_file, "missing.pem");
    expect_error(certs().cert_file, certs().ca_key_file, certs().ca_key_file);
}

// ---- the stream underneath ----

namespace {

task<void> tls_echo_session(tcp_stream s) {
    for (;;) {
        std::span<const std::byte> view;
        try {
            view = co_await s.recv_view();
        } catch (const std::system_error&) {
            break;
        }
        if (view.empty()) break;
        s.queue(view);
        s.consume(view.size());
    }
    co_await s.close();
}

}  // namespace

TEST(tls_stream, carries_a_megabyte_both_ways_and_reports_the_session) {
    io_context ctx;
    const auto server_tls = tls_context::server({certs().cert_file, certs().key_file});
    tls_client_options co;
    co.ca_file = certs().ca_file;
    const auto client_tls = tls_context::client(co);
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto t = [&]() -> task<void> {
        auto serve = [&]() -> task<void> {
            auto s = co_await listener.accept();
            s.start_tls(server_tls);
            co_await tls_echo_session(std::move(s));
        };
        spawn(ctx, serve());
        auto c = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        c.start_tls(client_tls, "localhost");
        EXPECT_TRUE(c.is_tls());
        const auto payload = pattern(1024 * 1024 + 7, 42);
        c.queue(std::span<const std::byte>(payload));  // held until the handshake is done
        const auto back = co_await read_exactly(c, payload.size(), timeout(std::chrono::seconds(10)));
        EXPECT_TRUE(back == payload);
        EXPECT_EQ(c.tls_version(), "TLSv1.3");
        EXPECT_EQ(c.alpn(), "http/1.1");
        co_await c.close();  // close_notify, FIN, and the server's end
        EXPECT_FALSE(c.tls_failed());
    };
    sync_wait(ctx, t());
}
