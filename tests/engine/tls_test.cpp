// tls_session pairs pumped against each other in memory: a client and a
// server session, with a loop moving each one's output into the other.
#include "../support/tls_certs.hpp"
#include "test_support.hpp"
#include <cnetmod/engine/tls.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <string>
#include <vector>

using namespace cnetmod;
using testing::HasSubstr;
using testing_support::pattern;

namespace {

const testing_support::test_certs& certs() {
    static const testing_support::test_certs made = testing_support::make_test_certs();
    return made;
}

tls_context server_context() {
    return tls_context::server({.cert_file = certs().cert_file, .key_file = certs().key_file});
}

tls_context trusting_client() {
    return tls_context::client({.ca_file = certs().ca_file});
}

std::span<const std::byte> as_bytes(std::string_view text) {
    return std::as_bytes(std::span(text.data(), text.size()));
}

// Moves `from`'s pending output into `to`, at most `chunk` bytes per feed.
std::size_t transfer(tls_session& from, tls_session& to, std::size_t chunk = 16 * 1024) {
    std::vector<std::byte> buffer(chunk);
    std::size_t moved = 0;
    while (const std::size_t n = from.take_output(buffer)) {
        to.feed(std::span(buffer).first(n));
        moved += n;
    }
    return moved;
}

// Runs both handshakes until both are done (true) or either failed (false).
bool handshake(tls_session& client, tls_session& server) {
    for (int round = 0; round < 8; ++round) {
        const auto client_step = client.handshake();
        transfer(client, server);
        const auto server_step = server.handshake();
        transfer(server, client);
        if (server_step == tls_session::step::failed) {
            client.handshake();  // reads the server's alert
            return false;
        }
        if (client_step == tls_session::step::failed) return false;
        if (client_step == tls_session::step::done && server_step == tls_session::step::done) return true;
    }
    ADD_FAILURE() << "handshake made no progress";
    return false;
}

// Sends `payload` from one session to the other, reading it back in 4 KiB
// pieces as the ciphertext arrives in 16 KiB pieces.
std::vector<std::byte> send_through(tls_session& from, tls_session& to, std::span<const std::byte> payload) {
    EXPECT_TRUE(from.write(payload));
    std::vector<std::byte> received;
    std::array<std::byte, 4096> piece;
    std::vector<std::byte> ciphertext(16 * 1024);
    while (const std::size_t n = from.take_output(ciphertext)) {
        to.feed(std::span(ciphertext).first(n));
        while (const std::size_t got = to.read(piece))
            received.insert(received.end(), piece.begin(), piece.begin() + got);
    }
    EXPECT_FALSE(to.failed()) << to.error_text();
    return received;
}

struct session_pair {
    tls_session client;
    tls_session server;
};

session_pair connected_pair(const tls_context& client_context, std::string_view name = "localhost") {
    session_pair pair{tls_session(client_context, name), tls_session(server_context())};
    EXPECT_TRUE(handshake(pair.client, pair.server))
        << "client: " << pair.client.error_text() << "; server: " << pair.server.error_text();
    return pair;
}

TEST(tls, handshake_agrees_on_tls13_and_http11) {
    auto [client, server] = connected_pair(trusting_client());
    EXPECT_TRUE(client.handshake_done());
    EXPECT_TRUE(server.handshake_done());
    EXPECT_EQ(client.version(), "TLSv1.3");
    EXPECT_EQ(server.version(), "TLSv1.3");
    EXPECT_EQ(client.alpn(), "http/1.1");
    EXPECT_EQ(server.alpn(), "http/1.1");
    EXPECT_EQ(client.pending_output(), 0u);
    EXPECT_EQ(server.pending_output(), 0u);
    EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(tls, data_flows_both_ways_at_every_size) {
    auto [client, server] = connected_pair(trusting_client());
    std::uint32_t seed = 1;
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{16 * 1024}, std::size_t{1 << 20}}) {
        const auto request = pattern(size, seed++);
        EXPECT_EQ(send_through(client, server, request), request) << size << " bytes client -> server";
        const auto response = pattern(size, seed++);
        EXPECT_EQ(send_through(server, client, response), response) << size << " bytes server -> client";
    }
}

TEST(tls, records_split_at_any_byte_are_reassembled) {
    auto [client, server] = connected_pair(trusting_client());
    const auto message = pattern(40 * 1000, 7);
    ASSERT_TRUE(client.write(message));
    std::vector<std::byte> received(message.size());
    std::size_t got = 0;
    std::array<std::byte, 1> byte;
    while (client.take_output(byte) == 1) {
        server.feed(byte);
        got += server.read(std::span(received).subspan(got));
    }
    EXPECT_EQ(received, message);
}

TEST(tls, chain_file_is_accepted_as_certificate) {
    tls_session client(trusting_client(), "localhost");
    tls_session server(tls_context::server({.cert_file = certs().chain_file, .key_file = certs().key_file}));
    EXPECT_TRUE(handshake(client, server)) << client.error_text();
}

TEST(tls, ip_address_is_verified_against_the_certificate) {
    connected_pair(trusting_client(), "127.0.0.1");
    tls_session client(trusting_client(), "127.0.0.2");
    tls_session server(server_context());
    EXPECT_FALSE(handshake(client, server));
    EXPECT_THAT(client.error_text(), HasSubstr("IP address mismatch"));
}

TEST(tls, system_store_does_not_trust_the_test_ca) {
    tls_session client(tls_context::client({}), "localhost");
    tls_session server(server_context());
    EXPECT_FALSE(handshake(client, server));
    EXPECT_TRUE(client.failed());
    EXPECT_EQ(client.error_text(), "certificate verify failed: unable to get local issuer certificate");
    // The client's alert tells the server why.
    EXPECT_TRUE(server.failed());
    EXPECT_THAT(server.error_text(), HasSubstr("unknown ca"));
    EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(tls, hostname_mismatch_fails) {
    tls_session client(trusting_client(), "example.com");
    tls_session server(server_context());
    EXPECT_FALSE(handshake(client, server));
    EXPECT_EQ(client.error_text(), "certificate verify failed: hostname mismatch");
}

TEST(tls, no_verification_accepts_any_certificate) {
    const auto trusting_anything = tls_context::client({.verify = false});
    auto [client, server] = connected_pair(trusting_anything, "example.com");
    const auto message = pattern(5, 11);
    EXPECT_EQ(send_through(client, server, message), message);
}

TEST(tls, garbage_fails_one_session_and_leaves_another_alone) {
    tls_session good_client(trusting_client(), "localhost");
    tls_session good_server(server_context());
    ASSERT_EQ(good_client.handshake(), tls_session::step::want_more);
    transfer(good_client, good_server);

    tls_session bad_server(server_context());
    bad_server.feed(as_bytes("GET / HTTP/1.1\r\n\r\n"));
    EXPECT_EQ(bad_server.handshake(), tls_session::step::failed);
    EXPECT_THAT(bad_server.error_text(), HasSubstr("http request"));
    EXPECT_EQ(ERR_peek_error(), 0u);

    EXPECT_TRUE(handshake(good_client, good_server)) << good_client.error_text() << good_server.error_text();
    const auto message = pattern(1000, 3);
    EXPECT_EQ(send_through(good_client, good_server, message), message);
    EXPECT_EQ(bad_server.handshake(), tls_session::step::failed);
}

TEST(tls, random_bytes_fail_with_openssl_reason) {
    tls_session server(server_context());
    server.feed(pattern(100, 9));
    EXPECT_EQ(server.handshake(), tls_session::step::failed);
    EXPECT_FALSE(server.error_text().empty());
    EXPECT_FALSE(server.write(as_bytes("x")));
}

TEST(tls, close_notify_is_seen_by_the_peer) {
    auto [client, server] = connected_pair(trusting_client());
    client.shutdown();
    EXPECT_FALSE(client.write(as_bytes("late")));
    transfer(client, server);
    std::array<std::byte, 64> buffer;
    EXPECT_EQ(server.read(buffer), 0u);
    EXPECT_TRUE(server.closed_by_peer());
    EXPECT_FALSE(server.failed());
    server.shutdown();
    transfer(server, client);
    EXPECT_EQ(client.read(buffer), 0u);
    EXPECT_TRUE(client.closed_by_peer());
}

TEST(tls, data_before_close_notify_is_delivered) {
    auto [client, server] = connected_pair(trusting_client());
    ASSERT_TRUE(client.write(as_bytes("bye")));
    client.shutdown();
    transfer(client, server);
    std::array<std::byte, 64> buffer;
    EXPECT_EQ(server.read(buffer), 3u);
    EXPECT_TRUE(server.closed_by_peer());
}

TEST(tls, key_update_is_answered_with_the_next_write) {
    auto [client, server] = connected_pair(trusting_client());
    ASSERT_EQ(SSL_key_update(server.native(), SSL_KEY_UPDATE_REQUESTED), 1);
    const auto message = pattern(100, 4);
    EXPECT_EQ(send_through(server, client, message), message);
    // RFC 8446 §4.6.3: the client answers before its next data, not at once.
    EXPECT_EQ(SSL_get_key_update_type(client.native()), SSL_KEY_UPDATE_NOT_REQUESTED);
    const auto reply = pattern(100, 5);
    EXPECT_EQ(send_through(client, server, reply), reply);
    EXPECT_EQ(SSL_get_key_update_type(client.native()), SSL_KEY_UPDATE_NONE);
}

TEST(tls, client_without_alpn_is_accepted) {
    auto context = trusting_client();
    ASSERT_EQ(SSL_CTX_set_alpn_protos(context.native(), nullptr, 0), 0);
    auto [client, server] = connected_pair(context);
    EXPECT_EQ(server.alpn(), "");
}

TEST(tls, client_offering_only_h2_is_refused) {
    auto context = trusting_client();
    static constexpr unsigned char h2[] = {2, 'h', '2'};
    ASSERT_EQ(SSL_CTX_set_alpn_protos(context.native(), h2, sizeof h2), 0);
    tls_session client(context, "localhost");
    tls_session server(server_context());
    EXPECT_FALSE(handshake(client, server));
    EXPECT_THAT(server.error_text(), HasSubstr("no application protocol"));
    EXPECT_THAT(client.error_text(), HasSubstr("no application protocol"));
}

TEST(tls, tls12_only_client_still_works) {
    auto context = trusting_client();
    ASSERT_EQ(SSL_CTX_set_max_proto_version(context.native(), TLS1_2_VERSION), 1);
    auto [client, server] = connected_pair(context);
    EXPECT_EQ(client.version(), "TLSv1.2");
    EXPECT_EQ(server.alpn(), "http/1.1");
    const auto message = pattern(100 * 1000, 6);
    EXPECT_EQ(send_through(client, server, message), message);
    EXPECT_EQ(send_through(server, client, message), message);
}

TEST(tls, tls11_client_is_refused) {
    auto context = trusting_client();
    SSL_CTX_set_security_level(context.native(), 0);
    ASSERT_EQ(SSL_CTX_set_min_proto_version(context.native(), TLS1_VERSION), 1);
    ASSERT_EQ(SSL_CTX_set_max_proto_version(context.native(), TLS1_1_VERSION), 1);
    tls_session client(context, "localhost");
    tls_session server(server_context());
    EXPECT_FALSE(handshake(client, server));
    EXPECT_FALSE(server.error_text().empty());
}

TEST(tls, session_moves) {
    auto pair = connected_pair(trusting_client());
    tls_session moved = std::move(pair.client);
    const auto message = pattern(500, 8);
    EXPECT_EQ(send_through(moved, pair.server, message), message);
}

// ---- configuration errors ----

std::string server_error(const std::string& cert, const std::string& key) {
    try {
        tls_context::server({.cert_file = cert, .key_file = key});
    } catch (const tls_error& e) {
        return e.what();
    }
    return "no error";
}

TEST(tls, missing_certificate_file_is_named) {
    const std::string missing = certs().dir + "/missing.pem";
    const auto message = server_error(missing, certs().key_file);
    EXPECT_THAT(message, HasSubstr(missing));
    EXPECT_THAT(message, HasSubstr("No such file"));
}

TEST(tls, bad_certificate_file_is_named) {
    const auto message = server_error(certs().bad_file, certs().key_file);
    EXPECT_THAT(message, HasSubstr(certs().bad_file));
    EXPECT_THAT(message, HasSubstr("no start line"));
}

TEST(tls, bad_key_file_is_named) {
    const auto message = server_error(certs().cert_file, certs().bad_file);
    EXPECT_THAT(message, HasSubstr(certs().bad_file));
    EXPECT_THAT(message, HasSubstr("private key"));
}

TEST(tls, mismatching_key_is_named) {
    const auto message = server_error(certs().cert_file, certs().ca_key_file);
    EXPECT_THAT(message, HasSubstr(certs().ca_key_file));
    EXPECT_THAT(message, HasSubstr("key values mismatch"));
}

TEST(tls, empty_paths_are_reported) {
    EXPECT_THAT(server_error("", certs().key_file), HasSubstr("no certificate file given"));
    EXPECT_THAT(server_error(certs().cert_file, ""), HasSubstr("no private key file given"));
}

TEST(tls, bad_ca_file_is_named) {
    for (const std::string& file : {certs().bad_file, certs().dir + "/missing.pem"}) {
        try {
            tls_context::client({.ca_file = file});
            ADD_FAILURE() << "no error for " << file;
        } catch (const tls_error& e) {
            EXPECT_THAT(e.what(), HasSubstr(file));
        }
    }
    EXPECT_EQ(ERR_peek_error(), 0u);
}

// ---- memory ----

TEST(tls, large_transfer_leaves_no_large_buffers) {
    auto [client, server] = connected_pair(trusting_client());
    const auto message = pattern(1 << 20, 10);
    ASSERT_TRUE(client.write(message));
    std::vector<std::byte> all(client.pending_output());
    ASSERT_EQ(client.take_output(all), all.size());
    server.feed(all);  // a megabyte of ciphertext at once
    std::vector<std::byte> plain(message.size());
    EXPECT_EQ(server.read(plain), message.size());
    EXPECT_LE(client.buffer_capacity(), 256u * 1024);
    EXPECT_LE(server.buffer_capacity(), 256u * 1024);
}

TEST(tls, release_buffers_frees_drained_storage) {
    auto [client, server] = connected_pair(trusting_client());
    const auto message = pattern(64 * 1024, 12);
    ASSERT_TRUE(client.write(message));
    std::vector<std::byte> all(client.pending_output());
    ASSERT_EQ(client.take_output(all), all.size());
    server.feed(all);
    std::vector<std::byte> plain(message.size());
    EXPECT_EQ(server.read(plain), message.size());
    EXPECT_GT(client.buffer_capacity(), 64u * 1024);  // kept for the next large write
    std::array<std::byte, 16> none;
    EXPECT_EQ(client.read(none), 0u);  // takes in the server's session tickets, the client's only input
    client.release_buffers();
    server.release_buffers();
    EXPECT_EQ(client.buffer_capacity(), 0u);
    EXPECT_EQ(server.buffer_capacity(), 0u);
    // Both still work.
    EXPECT_EQ(send_through(client, server, message), message);
    EXPECT_EQ(send_through(server, client, message), message);
}

// An idle session after a handshake and traffic both ways (the state of an
// idle wss:// connection) holds no ciphertext storage, and a moved session
// keeps working through its BIO.
TEST(tls, idle_session_holds_no_ciphertext_storage) {
    auto pair = connected_pair(trusting_client());
    const auto message = pattern(3000, 14);
    EXPECT_EQ(send_through(pair.client, pair.server, message), message);
    EXPECT_EQ(send_through(pair.server, pair.client, message), message);
    EXPECT_GT(pair.server.buffer_capacity(), 0u);
    pair.server.release_buffers();
    pair.client.release_buffers();
    EXPECT_EQ(pair.server.buffer_capacity(), 0u);
    EXPECT_EQ(pair.client.buffer_capacity(), 0u);
    tls_session server = std::move(pair.server);
    EXPECT_EQ(send_through(pair.client, server, message), message);
    EXPECT_EQ(send_through(server, pair.client, message), message);
    server.shutdown();
    transfer(server, pair.client);
    std::array<std::byte, 16> none;
    EXPECT_EQ(pair.client.read(none), 0u);
    EXPECT_TRUE(pair.client.closed_by_peer());
}

// Reports what an idle, connected session costs (glibc's malloc only;
// sanitizers replace it and report nothing, so there is nothing to check).
TEST(tls, idle_session_memory) {
    const auto client_context = trusting_client();
    const auto server_ctx = server_context();
    constexpr std::size_t pairs = 64;
    std::vector<tls_session> clients, servers;
    clients.reserve(pairs);
    servers.reserve(pairs);
    const auto before = mallinfo2().uordblks;
    for (std::size_t i = 0; i < pairs; ++i) {
        auto& client = clients.emplace_back(client_context, "localhost");
        auto& server = servers.emplace_back(server_ctx);
        ASSERT_TRUE(handshake(client, server));
        const auto message = pattern(100, i);
        ASSERT_EQ(send_through(client, server, message), message);
        ASSERT_EQ(send_through(server, client, message), message);
        client.release_buffers();  // as an idle connection does
        server.release_buffers();
    }
    const auto connected = mallinfo2().uordblks;
    clients.clear();
    const auto servers_only = mallinfo2().uordblks;
    if (connected <= before) GTEST_SKIP() << "malloc statistics unavailable";
    const std::size_t client_bytes = (connected - servers_only) / pairs;
    const std::size_t server_bytes = (servers_only - before) / pairs;
    std::printf("idle TLS session: client %zu bytes, server %zu bytes\n", client_bytes, server_bytes);
    RecordProperty("idle_client_session_bytes", static_cast<int>(client_bytes));
    RecordProperty("idle_server_session_bytes", static_cast<int>(server_bytes));
    EXPECT_LT(client_bytes, 64u * 1024);
    EXPECT_LT(server_bytes, 64u * 1024);
}

}  // namespace
