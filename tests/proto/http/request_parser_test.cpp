#include <cnetmod/proto/http/request_parser.hpp>

#include <gtest/gtest.h>

using namespace cnetmod::http;

namespace {
std::optional<parse_error> parse(std::string head, request& r) {
    return parse_request_head(std::move(head), r, parser_limits{});
}
}  // namespace

TEST(request_parser, parses_request_line_fields_and_query) {
    request r;
    auto err =
        parse("GET /chat?name=ann&x=1 HTTP/1.1\r\nHost: a\r\nX-Thing:  spaced value \r\nupgrade: websocket\r\n\r\n", r);
    ASSERT_FALSE(err) << err->reason;
    EXPECT_EQ(r.method(), "GET");
    EXPECT_EQ(r.target(), "/chat?name=ann&x=1");
    EXPECT_EQ(r.path(), "/chat");
    EXPECT_EQ(r.query(), "name=ann&x=1");
    EXPECT_EQ(r.version_minor(), 1);
    EXPECT_EQ(r.header("x-thing"), "spaced value");
    EXPECT_EQ(r.header("UPGRADE"), "websocket");
    EXPECT_EQ(r.header("missing"), "");
    EXPECT_TRUE(r.keep_alive());
}

TEST(request_parser, views_survive_a_move_of_a_short_request) {
    request a;
    ASSERT_FALSE(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", a));
    request b = std::move(a);
    EXPECT_EQ(b.path(), "/");
    EXPECT_EQ(b.header("Host"), "h");
}

TEST(request_parser, finds_the_head_end_across_feeds) {
    std::string buf = "GET / HTTP/1.1\r\nHost: a\r\n\r";
    EXPECT_EQ(find_head_end(buf), std::string::npos);
    const auto before = buf.size();
    buf += "\nBODY";
    EXPECT_EQ(find_head_end(buf, before), before + 1);
}

TEST(request_parser, rejects_malformed_requests_with_the_right_status) {
    struct bad_case {
        const char* head;
        status expected;
    } cases[] = {
        {"GET /\r\n\r\n", status::bad_request},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", status::bad_request},
        {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", status::bad_request},
        {"GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", status::bad_request},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", status::http_version_not_supported},
        {"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", status::bad_request},
        {"GET / HTTP/1.1\r\n\r\n", status::bad_request},                            // no Host
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status::bad_request},      // two Hosts
        {"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", status::bad_request},  // space in name
        {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", status::bad_request},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n", status::bad_request},  // obs-fold
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", status::bad_request},
    };
    for (const auto& c : cases) {
        request r;
        auto err = parse(c.head, r);
        ASSERT_TRUE(err) << "accepted: " << c.head;
        EXPECT_EQ(err->code, c.expected) << c.head << " -> " << err->reason;
    }
}

TEST(request_parser, limits_give_431) {
    std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 150; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    many += "\r\n";
    request r;
    auto err = parse(many, r);
    ASSERT_TRUE(err);
    EXPECT_EQ(err->code, status::request_header_fields_too_large);
    std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(9000, 'a') + "\r\n\r\n";
    err = parse(big, r);
    ASSERT_TRUE(err);
    EXPECT_EQ(err->code, status::request_header_fields_too_large);
}

TEST(request_parser, http10_and_connection_tokens_decide_keep_alive) {
    request r;
    ASSERT_FALSE(parse("GET / HTTP/1.0\r\n\r\n", r));
    EXPECT_FALSE(r.keep_alive());
    ASSERT_FALSE(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", r));
    EXPECT_TRUE(r.keep_alive());
    ASSERT_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", r));
    EXPECT_FALSE(r.keep_alive());
    EXPECT_TRUE(list_contains_token("keep-alive, Upgrade", "upgrade"));
    EXPECT_FALSE(list_contains_token("keep-alive, Upgrades", "upgrade"));
}

TEST(request_parser, body_framing_rules) {
    parser_limits limits;
    body_framing f;
    request r;
    ASSERT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", r));
    ASSERT_FALSE(body_framing_of(r, limits, f));
    EXPECT_EQ(f.type, body_framing::kind::length);
    EXPECT_EQ(f.length, 12u);
    ASSERT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", r));
    EXPECT_EQ(body_framing_of(r, limits, f)->code, status::bad_request);
    ASSERT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", r));
    EXPECT_EQ(body_framing_of(r, limits, f)->code, status::bad_request);
    ASSERT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", r));
    EXPECT_EQ(body_framing_of(r, limits, f)->code, status::payload_too_large);
    ASSERT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", r));
    EXPECT_EQ(body_framing_of(r, limits, f)->code, status::not_implemented);
    ASSERT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", r));
    EXPECT_EQ(body_framing_of(r, limits, f)->code, status::bad_request);
    ASSERT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", r));
    ASSERT_FALSE(body_framing_of(r, limits, f));
    EXPECT_EQ(f.type, body_framing::kind::chunked);
}

TEST(chunked_decoder, decodes_byte_by_byte_and_whole) {
    const std::string wire = "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    for (bool bytewise : {false, true}) {
        chunked_decoder d;
        std::string body;
        std::size_t used = 0;
        if (bytewise) {
            for (std::size_t i = 0; i < wire.size() && !d.done(); ++i) used += d.feed(wire.substr(i, 1), body, 1 << 20);
        } else {
            used = d.feed(wire, body, 1 << 20);
        }
        EXPECT_TRUE(d.done());
        EXPECT_FALSE(d.error());
        EXPECT_EQ(body, "hello, world");
        EXPECT_EQ(wire.substr(used), "NEXT") << "the decoder stops at the end of the body";
    }
}

TEST(chunked_decoder, rejects_bad_sizes_and_bodies_over_the_limit) {
    chunked_decoder d;
    std::string body;
    d.feed("zz\r\n", body, 100);
    ASSERT_TRUE(d.error());
    EXPECT_EQ(d.error()->code, status::bad_request);
    chunked_decoder big;
    big.feed("1000\r\n", body, 100);
    ASSERT_TRUE(big.error());
    EXPECT_EQ(big.error()->code, status::payload_too_large);
    chunked_decoder no_crlf;
    no_crlf.feed("3\r\nabcX", body, 100);
    ASSERT_TRUE(no_crlf.error());
}

// RFC 9112 §6: exactly one chunked, as the final coding, over every
// Transfer-Encoding line; nothing of the kind in HTTP/1.0.
TEST(request_parser, transfer_coding_lists_span_lines_and_end_in_one_chunked) {
    parser_limits limits;
    body_framing f;
    request r;
    auto framing = [&](std::string_view fields, std::string_view version = "1.1") {
        std::string head = "POST / HTTP/" + std::string(version) + "\r\nHost: a\r\n" + std::string(fields) + "\r\n";
        EXPECT_FALSE(parse(head, r)) << fields;
        return body_framing_of(r, limits, f);
    };
    EXPECT_EQ(framing("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n")->code, status::not_implemented)
        << "the two-line smuggling form reads as one list ending in an unknown coding";
    EXPECT_EQ(framing("Transfer-Encoding: chunked, identity\r\n")->code, status::not_implemented);
    EXPECT_EQ(framing("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")->code, status::bad_request);
    EXPECT_EQ(framing("Transfer-Encoding: chunked, chunked\r\n")->code, status::bad_request);
    EXPECT_EQ(framing("Transfer-Encoding: chunked\r\n", "1.0")->code, status::bad_request);
    EXPECT_EQ(framing("Transfer-Encoding: \r\n")->code, status::bad_request);
    EXPECT_EQ(framing("Transfer-Encoding: ,\r\n")->code, status::bad_request) << "a list of nothing names no chunked";
    EXPECT_FALSE(framing("Transfer-Encoding: , Chunked ,\r\n")) << "empty elements are allowed, case does not matter";
    EXPECT_EQ(f.type, body_framing::kind::chunked);
    EXPECT_FALSE(framing("Transfer-Encoding: chunked\r\n"));
    EXPECT_EQ(f.type, body_framing::kind::chunked);
}

TEST(chunked_decoder, extensions_and_trailers_are_bounded_like_a_head) {
    parser_limits limits;
    limits.max_chunk_extension_bytes = 16;
    limits.max_head_bytes = 64;
    limits.max_header_fields = 3;
    std::string body;
    chunked_decoder ok(limits);
    ok.feed("1;a=0123456789ab\r\nx\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", body, 100);
    EXPECT_TRUE(ok.done());
    EXPECT_FALSE(ok.error());

    chunked_decoder long_extension(limits);
    long_extension.feed("1;" + std::string(17, 'e') + "\r\nx\r\n0\r\n\r\n", body, 100);
    ASSERT_TRUE(long_extension.error());
    EXPECT_EQ(long_extension.error()->code, status::bad_request);

    chunked_decoder many_lines(limits);
    many_lines.feed("0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", body, 100);
    ASSERT_TRUE(many_lines.error());
    EXPECT_EQ(many_lines.error()->code, status::request_header_fields_too_large);

    chunked_decoder long_trailer(limits);
    long_trailer.feed("0\r\nA: " + std::string(70, 'v') + "\r\n\r\n", body, 100);
    ASSERT_TRUE(long_trailer.error());
    EXPECT_EQ(long_trailer.error()->code, status::request_header_fields_too_large);
}
