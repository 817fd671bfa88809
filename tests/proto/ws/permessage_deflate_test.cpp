#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace cnetmod::ws;

namespace {

std::span<const std::byte> as_bytes(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

std::string from_octets(std::initializer_list<std::uint8_t> octets) {
    return std::string(octets.begin(), octets.end());
}

// Chat-like JSON, varied deterministically, about `size` bytes.
std::string json_like(std::size_t size) {
    static constexpr const char* names[] = {"alice", "bob", "carol", "dave"};
    static constexpr const char* words[] = {"hello", "lunch?", "ship it", "see the logs", "ok", "brb"};
    std::string s = "[";
    for (unsigned i = 0; s.size() < size; ++i) {
        s += R"({"type":"chat","name":")" + std::string(names[i % 4]) + R"(","text":")" + words[(i * 7) % 6] + " #" +
             std::to_string(i * 31 % 997) + R"(","ts":)" + std::to_string(1700000000 + i * 13) + "},";
    }
    s.resize(size);
    return s;
}

std::string random_bytes(std::size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(size, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

std::string inflate_ok(const std::string& compressed, std::size_t max_size = 64 << 20) {
    std::string out;
    EXPECT_EQ(decompress_message(as_bytes(compressed), max_size, out), inflate_status::ok);
    return out;
}

// Compresses and inflates `payload`; false when compress_message declined.
bool round_trips(const std::string& payload, int level) {
    std::string compressed = "head";
    const std::size_t n = compress_message(as_bytes(payload), level, compressed);
    if (n == 0) {
        EXPECT_EQ(compressed, "head");
        return false;
    }
    EXPECT_EQ(compressed.size(), 4 + n);
    EXPECT_LT(n, payload.size());
    EXPECT_EQ(compressed.back(), '\0');  // RFC 7692 §7.2.3.4's trailing byte
    compressed.erase(0, 4);
    EXPECT_EQ(inflate_ok(compressed, payload.size()), payload) << "level " << level;
    return true;
}

std::string error_of(std::string_view response) {
    const auto r = check_deflate_response(response);
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : std::string();
}

deflate_client_result accepted_response(std::string_view response) {
    const auto r = check_deflate_response(response);
    EXPECT_TRUE(std::holds_alternative<deflate_client_result>(r)) << response << ": " << error_of(response);
    return std::holds_alternative<deflate_client_result>(r) ? std::get<deflate_client_result>(r)
                                                            : deflate_client_result{};
}

constexpr std::string_view both_no_takeover =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
// A server that keeps no window (ws::options::compression_context_takeover false).
constexpr deflate_preferences no_takeover{false, 15};

}  // namespace

// ---- parse_extensions ----------------------------------------------------

TEST(parse_extensions, several_offers_in_order) {
    const auto list = parse_extensions(
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate, "
        "x-webkit-deflate-frame");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->size(), 3u);
    EXPECT_EQ((*list)[0].name, "permessage-deflate");
    ASSERT_EQ((*list)[0].params.size(), 2u);
    EXPECT_EQ((*list)[0].params[0].name, "client_max_window_bits");
    EXPECT_FALSE((*list)[0].params[0].value);
    EXPECT_EQ((*list)[0].params[1].name, "server_max_window_bits");
    EXPECT_EQ((*list)[0].params[1].value, "10");
    EXPECT_TRUE((*list)[1].params.empty());
    EXPECT_EQ((*list)[2].name, "x-webkit-deflate-frame");
}

TEST(parse_extensions, quoted_values_are_unquoted) {
    const auto list = parse_extensions(R"(permessage-deflate; client_max_window_bits="10"; a="1\5")");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->at(0).params.size(), 2u);
    EXPECT_EQ(list->at(0).params[0].value, "10");
    EXPECT_EQ(list->at(0).params[1].value, "15");
}

TEST(parse_extensions, tolerates_whitespace_and_empty_elements) {
    const auto list = parse_extensions(" \tpermessage-deflate ;client_max_window_bits = 12 ;\tx ,, foo ,");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->size(), 2u);
    ASSERT_EQ(list->at(0).params.size(), 2u);
    EXPECT_EQ(list->at(0).params[0].value, "12");
    EXPECT_EQ(list->at(0).params[1].name, "x");
    EXPECT_EQ(list->at(1).name, "foo");
    EXPECT_TRUE(parse_extensions("")->empty());
    EXPECT_TRUE(parse_extensions("  ")->empty());
}

TEST(parse_extensions, rejects_broken_syntax) {
    for (std::string_view bad : {
             "permessage-deflate;",      // parameter missing
             "; foo",                    // extension name missing
             "foo bar",                  // two tokens
             "foo; =1",                  // parameter name missing
             "foo; a=",                  // value missing
             "foo; a==1",                // stray '='
             "foo;; a",                  // empty parameter
             "foo=1",                    // value on the extension
             R"(foo; a="10)",            // unterminated quote
             R"(foo; a="not a token")",  // RFC 6455 §9.1: quoted value must be a token
             R"(foo; a="")",             // empty quoted value is not a token
             "foo; a=\"1\\",             // escape at the end
             "f\xc3\xb6o",               // not a token character
             "foo; a=1 2",               // two tokens as a value
         })
        EXPECT_FALSE(parse_extensions(bad)) << bad;
}

// ---- negotiate_deflate_server --------------------------------------------

TEST(negotiate_deflate_server, without_takeover_answers_no_context_takeover_both_ways) {
    for (std::string_view offer : {
             "permessage-deflate; client_max_window_bits",  // Chrome, Node ws, Python websockets 10.4 client
             "permessage-deflate",                          // Firefox
             "permessage-deflate; client_no_context_takeover; server_no_context_takeover",  // ours
         }) {
        const auto accepted = negotiate_deflate_server(offer, no_takeover);
        ASSERT_TRUE(accepted) << offer;
        EXPECT_EQ(accepted->response, both_no_takeover);
        EXPECT_TRUE(accepted->agreement.server_no_context_takeover);
        EXPECT_TRUE(accepted->agreement.client_no_context_takeover);
        EXPECT_EQ(accepted->agreement.server_max_window_bits, 15);
        EXPECT_EQ(accepted->agreement.client_max_window_bits, 15);
    }
}

TEST(negotiate_deflate_server, echoes_server_max_window_bits_15) {
    const auto accepted = negotiate_deflate_server(
        "permessage-deflate; server_max_window_bits=15; client_max_window_bits=10", no_takeover);
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->response,
              std::string(both_no_takeover) + "; server_max_window_bits=15; client_max_window_bits=10");
    EXPECT_EQ(accepted->agreement.client_max_window_bits, 10);  // the client's own limit, noted
}

// Offers as browsers and libraries send them (RFC 7692 §7.1), answered with
// the server's defaults: context takeover wherever the offer allows it.
TEST(negotiate_deflate_server, takes_over_context_as_browsers_and_libraries_offer) {
    const struct {
        std::string_view who, offer, response;
        deflate_agreement agreed;
    } cases[] = {
        {"Chromium, Safari, Node ws, Python websockets",
         "permessage-deflate; client_max_window_bits",
         "permessage-deflate",
         {false, false, 15, 15}},
        {"Firefox", "permessage-deflate", "permessage-deflate", {false, false, 15, 15}},
        {"Chromium, two offers",
         "permessage-deflate; client_max_window_bits, permessage-deflate",
         "permessage-deflate",
         {false, false, 15, 15}},
        {"Node ws, serverNoContextTakeover",
         "permessage-deflate; server_no_context_takeover; client_max_window_bits",
         "permessage-deflate; server_no_context_takeover",
         {true, false, 15, 15}},
        {"Python websockets, client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover; client_max_window_bits",
         "permessage-deflate; client_no_context_takeover",
         {false, true, 15, 15}},
        {"cnetmod without takeover",
         "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
         both_no_takeover,
         {true, true, 15, 15}},
        {"Python websockets, server_max_window_bits=10",
         "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
         "permessage-deflate; server_max_window_bits=10",
         {false, false, 10, 15}},
        {"Node ws, clientMaxWindowBits: 9",
         "permessage-deflate; client_max_window_bits=9",
         "permessage-deflate; client_max_window_bits=9",
         {false, false, 15, 9}},
        {"the smallest windows",
         "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
         "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
         {false, false, 8, 8}},
    };
    for (const auto& c : cases) {
        const auto accepted = negotiate_deflate_server(c.offer);
        ASSERT_TRUE(accepted) << c.who;
        EXPECT_EQ(accepted->response, c.response) << c.who;
        const auto& a = accepted->agreement;
        EXPECT_EQ(a.server_no_context_takeover, c.agreed.server_no_context_takeover) << c.who;
        EXPECT_EQ(a.client_no_context_takeover, c.agreed.client_no_context_takeover) << c.who;
        EXPECT_EQ(a.server_max_window_bits, c.agreed.server_max_window_bits) << c.who;
        EXPECT_EQ(a.client_max_window_bits, c.agreed.client_max_window_bits) << c.who;
    }
}

TEST(negotiate_deflate_server, a_smaller_preferred_window_limits_both_sides) {
    // The client offered client_max_window_bits: it is told the smaller window.
    auto accepted = negotiate_deflate_server("permessage-deflate; client_max_window_bits", {true, 12});
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->response, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12");
    EXPECT_EQ(accepted->agreement.server_max_window_bits, 12);
    EXPECT_EQ(accepted->agreement.client_max_window_bits, 12);
    // Firefox cannot be told: it keeps no context instead (§7.1.1.2), so no
    // 32 KiB window of its is kept here between messages.
    accepted = negotiate_deflate_server("permessage-deflate", {true, 12});
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->response, "permessage-deflate; client_no_context_takeover; server_max_window_bits=12");
    EXPECT_TRUE(accepted->agreement.client_no_context_takeover);
    EXPECT_FALSE(accepted->agreement.server_no_context_takeover);
    // A window of 8 is not asked of a client (zlib's compressor cannot keep
    // it: 9), but one that names 8 for itself gets it, and so does a
    // client asking it of us.
    accepted = negotiate_deflate_server("permessage-deflate; client_max_window_bits", {true, 8});
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->response, "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9");
    EXPECT_EQ(deflate_client_offer({true, 8}),
              "permessage-deflate; client_max_window_bits=8; server_max_window_bits=9");
    // A smaller window the client asks for wins over ours.
    accepted =
        negotiate_deflate_server("permessage-deflate; server_max_window_bits=9; client_max_window_bits=10", {true, 12});
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->agreement.server_max_window_bits, 9);
    EXPECT_EQ(accepted->agreement.client_max_window_bits, 10);
}

// Every pair of preferences and every window size on both sides: what our
// client offers, our server answers, and our client accepts, each side
// seeing the same agreement, within both sides' limits (§7.1.2).
TEST(negotiate_deflate_server, every_window_and_takeover_combination_agrees_on_both_sides) {
    int combinations = 0;
    for (bool client_takeover : {false, true})
        for (bool server_takeover : {false, true})
            for (std::uint8_t cw = 8; cw <= 15; ++cw)
                for (std::uint8_t sw = 8; sw <= 15; ++sw) {
                    const deflate_preferences client{client_takeover, cw}, server{server_takeover, sw};
                    const std::string offer = deflate_client_offer(client);
                    const auto accepted = negotiate_deflate_server(offer, server);
                    ASSERT_TRUE(accepted) << offer;
                    const auto checked = check_deflate_response(accepted->response, client);
                    ASSERT_TRUE(std::holds_alternative<deflate_client_result>(checked))
                        << offer << " -> " << accepted->response << ": " << std::get<std::string>(checked);
                    const auto& seen = std::get<deflate_client_result>(checked);
                    ASSERT_TRUE(seen.negotiated);
                    const auto& a = accepted->agreement;
                    const auto& b = seen.agreement;
                    const std::string where = offer + " -> " + accepted->response;
                    EXPECT_EQ(a.server_no_context_takeover, b.server_no_context_takeover) << where;
                    EXPECT_EQ(a.client_no_context_takeover, b.client_no_context_takeover) << where;
                    EXPECT_EQ(a.server_max_window_bits, b.server_max_window_bits) << where;
                    EXPECT_EQ(a.client_max_window_bits, b.client_max_window_bits) << where;
                    // 8 is never asked of a peer (zlib's compressors cannot keep it): 9 instead.
                    const auto asked = [](std::uint8_t b) { return std::max<std::uint8_t>(b, 9); };
                    EXPECT_LE(a.server_max_window_bits, std::min(asked(cw), sw)) << where;
                    // The client's window can be limited only where it offered client_max_window_bits;
                    // otherwise it keeps none between messages (§7.1.2.2).
                    EXPECT_LE(a.client_max_window_bits, cw) << where;
                    if (offer.find("client_max_window_bits") != std::string::npos) {
                        EXPECT_LE(a.client_max_window_bits, asked(sw)) << where;
                    } else if (sw < 15) {
                        EXPECT_TRUE(a.client_no_context_takeover) << where;
                    }
                    // Takeover only where neither side asked for none.
                    EXPECT_EQ(a.server_no_context_takeover, !(client_takeover && server_takeover)) << where;
                    EXPECT_EQ(a.client_no_context_takeover, !(client_takeover && server_takeover)) << where;
                    ++combinations;
                }
    EXPECT_EQ(combinations, 256);
}

TEST(negotiate_deflate_server, accepts_every_server_window_offered) {
    for (int bits = 8; bits <= 15; ++bits) {
        const std::string offer = "permessage-deflate; server_max_window_bits=" + std::to_string(bits);
        const auto accepted = negotiate_deflate_server(offer);
        ASSERT_TRUE(accepted) << offer;
        EXPECT_EQ(accepted->agreement.server_max_window_bits, bits);
        EXPECT_NE(accepted->response.find("server_max_window_bits=" + std::to_string(bits)), std::string::npos);
    }
    // Offers on a second line are one list with the first (RFC 9110 §5.3).
    const auto accepted = negotiate_deflate_server(
        "permessage-deflate; bogus, permessage-deflate; server_max_window_bits=10", no_takeover);
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->response, std::string(both_no_takeover) + "; server_max_window_bits=10");
}

TEST(negotiate_deflate_server, declines_unknown_parameters_and_takes_the_next_offer) {
    const auto accepted = negotiate_deflate_server(
        "x-webkit-deflate-frame, permessage-deflate; mystery, permessage-deflate; client_no_context_takeover",
        no_takeover);
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->response, both_no_takeover);
}

TEST(negotiate_deflate_server, declines_duplicated_and_ill_valued_parameters) {
    for (std::string_view offer : {
             "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
             "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
             "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
             "permessage-deflate; server_max_window_bits=15; server_max_window_bits=15",
             "permessage-deflate; server_max_window_bits=7",
             "permessage-deflate; server_max_window_bits=16",
             "permessage-deflate; server_max_window_bits=abc",
             "permessage-deflate; server_max_window_bits=015",  // §7.1.2.1: no leading zeros
             "permessage-deflate; server_max_window_bits",      // value required
             "permessage-deflate; client_max_window_bits=7",
             "permessage-deflate; client_max_window_bits=16",
             "permessage-deflate; client_max_window_bits=abc",
             "permessage-deflate; server_no_context_takeover=1",
             "permessage-deflate; client_no_context_takeover=true",
         })
        EXPECT_FALSE(negotiate_deflate_server(offer)) << offer;
}

TEST(negotiate_deflate_server, nothing_to_accept) {
    EXPECT_FALSE(negotiate_deflate_server("x-webkit-deflate-frame"));
    EXPECT_FALSE(negotiate_deflate_server("deflate-frame; no_context_takeover"));
    EXPECT_FALSE(negotiate_deflate_server(""));
    EXPECT_FALSE(negotiate_deflate_server("permessage-deflate;"));  // broken header
}

TEST(negotiate_deflate_server, accepts_a_quoted_window) {
    const auto accepted = negotiate_deflate_server(R"(permessage-deflate; client_max_window_bits="9")");
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->agreement.client_max_window_bits, 9);
}

// ---- the client side -----------------------------------------------------

TEST(check_deflate_response, our_offer_is_what_the_server_accepts) {
    EXPECT_EQ(deflate_client_offer(), "permessage-deflate; client_no_context_takeover; server_no_context_takeover");
    const auto accepted = negotiate_deflate_server(deflate_client_offer(), no_takeover);
    ASSERT_TRUE(accepted);
    const auto result = accepted_response(accepted->response);
    EXPECT_TRUE(result.negotiated);
}

TEST(check_deflate_response, empty_means_not_negotiated) {
    for (std::string_view none : {"", " ", ", "}) {
        const auto result = accepted_response(none);
        EXPECT_FALSE(result.negotiated) << none;
    }
}

TEST(check_deflate_response, accepted_variants) {
    auto minimal = accepted_response("permessage-deflate; server_no_context_takeover");
    EXPECT_TRUE(minimal.negotiated);
    EXPECT_TRUE(minimal.agreement.server_no_context_takeover);
    // We offered client_no_context_takeover: we keep no window, whether the
    // server names it or not (§7.1.1.2), so each message may go alone.
    EXPECT_TRUE(minimal.agreement.client_no_context_takeover);
    EXPECT_EQ(minimal.agreement.server_max_window_bits, 15);

    // Python websockets 10.4's server answering our offer.
    auto python = accepted_response(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12");
    EXPECT_TRUE(python.negotiated);
    EXPECT_EQ(python.agreement.server_max_window_bits, 12);
    EXPECT_TRUE(python.agreement.server_no_context_takeover);
    EXPECT_TRUE(python.agreement.client_no_context_takeover);

    auto spaced = accepted_response("  permessage-deflate ;client_no_context_takeover;server_no_context_takeover  ");
    EXPECT_TRUE(spaced.negotiated);
}

TEST(check_deflate_response, errors_name_the_fault) {
    const struct {
        std::string_view response, fault;
    } cases[] = {
        {"permessage-deflate;", "malformed"},
        {"x-webkit-deflate-frame", "x-webkit-deflate-frame"},
        {"permessage-deflate; server_no_context_takeover, permessage-deflate; server_no_context_takeover",
         "more than one"},
        {"permessage-deflate; server_no_context_takeover; mystery", "mystery"},
        {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", "repeated"},
        {"permessage-deflate; server_no_context_takeover; client_max_window_bits=10", "client_max_window_bits"},
        {"permessage-deflate; server_no_context_takeover; client_max_window_bits", "client_max_window_bits"},
        {"permessage-deflate; server_no_context_takeover; server_max_window_bits=16", "8..15"},
        {"permessage-deflate; server_no_context_takeover; server_max_window_bits", "needs a value"},
        {"permessage-deflate", "server_no_context_takeover"},
        {"permessage-deflate; client_no_context_takeover", "server_no_context_takeover"},
        {"permessage-deflate; server_no_context_takeover=1", "must not have a value"},
    };
    for (const auto& c : cases) {
        const auto error = error_of(c.response);
        EXPECT_NE(error.find(c.fault), std::string::npos) << c.response << " -> " << error;
    }
}

TEST(check_deflate_response, a_takeover_offer_takes_what_the_server_allows) {
    const deflate_preferences takeover{true, 15};
    EXPECT_EQ(deflate_client_offer(takeover), "permessage-deflate; client_max_window_bits");
    EXPECT_EQ(deflate_client_offer({true, 10}),
              "permessage-deflate; client_max_window_bits=10; server_max_window_bits=10");
    EXPECT_EQ(deflate_client_offer({false, 9}),
              "permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=9; "
              "server_max_window_bits=9");
    const struct {
        std::string_view response;
        deflate_agreement agreed;
    } cases[] = {
        {"permessage-deflate", {false, false, 15, 15}},                             // Node ws, Python websockets
        {"permessage-deflate; server_no_context_takeover", {true, false, 15, 15}},  // a server keeping none
        {"permessage-deflate; client_no_context_takeover", {false, true, 15, 15}},
        {"permessage-deflate; client_max_window_bits=10", {false, false, 15, 10}},
        {"permessage-deflate; server_max_window_bits=8", {false, false, 8, 15}},
    };
    for (const auto& c : cases) {
        const auto r = check_deflate_response(c.response, takeover);
        ASSERT_TRUE(std::holds_alternative<deflate_client_result>(r)) << c.response;
        const auto& a = std::get<deflate_client_result>(r).agreement;
        EXPECT_EQ(a.server_no_context_takeover, c.agreed.server_no_context_takeover) << c.response;
        EXPECT_EQ(a.client_no_context_takeover, c.agreed.client_no_context_takeover) << c.response;
        EXPECT_EQ(a.server_max_window_bits, c.agreed.server_max_window_bits) << c.response;
        EXPECT_EQ(a.client_max_window_bits, c.agreed.client_max_window_bits) << c.response;
    }
    const struct {
        std::string_view response;
        deflate_preferences offered;
        std::string_view fault;
    } bad[] = {
        {"permessage-deflate; client_max_window_bits", takeover, "without a value"},
        {"permessage-deflate; client_max_window_bits=11", {true, 10}, "above the offered 10"},
        {"permessage-deflate; client_max_window_bits=10", {true, 10}, "lacks server_max_window_bits"},
        {"permessage-deflate; server_max_window_bits=11", {true, 10}, "above the offered 10"},
    };
    for (const auto& c : bad) {
        const auto r = check_deflate_response(c.response, c.offered);
        ASSERT_TRUE(std::holds_alternative<std::string>(r)) << c.response;
        EXPECT_NE(std::get<std::string>(r).find(c.fault), std::string::npos) << std::get<std::string>(r);
    }
}

// ---- the codec -----------------------------------------------------------

TEST(compress_message, tiny_payloads_are_sent_plain) {
    std::string out = "kept";
    EXPECT_EQ(compress_message({}, 6, out), 0u);
    EXPECT_EQ(compress_message(as_bytes("a"), 6, out), 0u);
    EXPECT_EQ(compress_message(as_bytes("ab"), 6, out), 0u);
    EXPECT_EQ(out, "kept");
}

// libdeflate needs slack past its output; a message that shrinks by a few
// bytes must still be compressed.
TEST(compress_message, small_savings_are_kept) {
    const std::string chat = R"json({"type":"chat","name":"alice","text":"hello everyone (37)","ts":1700000017})json";
    EXPECT_TRUE(round_trips(chat, 1));
}

// Near the break-even size: either declined or strictly smaller, and exact.
TEST(compress_message, short_payloads_shrink_or_are_declined) {
    std::mt19937 rng(7);
    int compressed = 0;
    for (int i = 0; i < 2000; ++i) {
        std::string payload(3 + rng() % 200, '\0');
        const unsigned alphabet = 2 + rng() % 60;
        for (auto& c : payload) c = static_cast<char>('!' + rng() % alphabet);
        compressed += round_trips(payload, 1 + i % 12);
    }
    EXPECT_GT(compressed, 500);
}

TEST(compress_message, random_bytes_are_sent_plain) {
    for (int level : {1, 6, 12}) EXPECT_FALSE(round_trips(random_bytes(16 << 10, 1), level)) << level;
}

TEST(compress_message, json_round_trips_at_every_level) {
    const auto payload = json_like(16 << 10);
    for (int level = 1; level <= 12; ++level) EXPECT_TRUE(round_trips(payload, level)) << level;
}

TEST(compress_message, level_is_clamped) {
    const auto payload = json_like(1000);
    for (int level : {-5, 0, 13, 100}) EXPECT_TRUE(round_trips(payload, level)) << level;
}

TEST(compress_message, large_and_small_round_trip) {
    EXPECT_TRUE(round_trips(json_like(1 << 20), 6));
    EXPECT_TRUE(round_trips(std::string(1 << 20, 'z'), 1));
    EXPECT_TRUE(round_trips(R"({"type":"chat","name":"alice","text":"hi hi hi hi hi hi","ts":1700000000})", 6));
}

TEST(compress_message, each_thread_has_its_own_codec) {
    const auto payload = json_like(32 << 10);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&payload, t] {
            for (int i = 0; i < 20; ++i) EXPECT_TRUE(round_trips(payload, 1 + (t * 3 + i) % 12));
        });
    for (auto& t : threads) t.join();
}

// RFC 7692 §7.2.3 examples and zlib (Z_SYNC_FLUSH, tail stripped) output.
TEST(decompress_message, rfc_7692_examples) {
    // §7.2.3.1: "Hello", one compressed block, BFINAL=0.
    EXPECT_EQ(inflate_ok(from_octets({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), "Hello");
    // §7.2.3.3: a stored block and the 0x00 of the empty one.
    EXPECT_EQ(inflate_ok(from_octets({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00})), "Hello");
    // §7.2.3.4: a BFINAL=1 block, then one 0x00.
    EXPECT_EQ(inflate_ok(from_octets({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00})), "Hello");
    // §7.2.3.6: an empty message is one 0x00.
    EXPECT_EQ(inflate_ok(from_octets({0x00})), "");
}

TEST(decompress_message, fragments_concatenated) {
    // §7.2.3.1: the same message split over two frames; the caller joins the payloads.
    const auto joined = from_octets({0xf2, 0x48, 0xcd}) + from_octets({0xc9, 0xc9, 0x07, 0x00});
    EXPECT_EQ(inflate_ok(joined), "Hello");
}

TEST(decompress_message, zlib_streams) {
    // zlib.compressobj(6, DEFLATED, -15): "Hello, " flush, "world! Hello, world!" flush, tail stripped.
    EXPECT_EQ(inflate_ok(from_octets({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0x51, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
                                      0x2a, 0xcf, 0x2f, 0xca, 0x49, 0x51, 0x54, 0xf0, 0x40, 0xe6, 0x01, 0x00})),
              "Hello, world! Hello, world!");
    const std::string json =
        R"({"type":"chat","name":"alice","text":"hello hello hello, how are you?","ts":1700000000})";
    // Z_SYNC_FLUSH, tail stripped.
    EXPECT_EQ(
        inflate_ok(from_octets({0xaa, 0x56, 0x2a, 0xa9, 0x2c, 0x48, 0x55, 0xb2, 0x52, 0x4a, 0xce, 0x48, 0x2c, 0x51,
                                0xd2, 0x51, 0xca, 0x4b, 0xcc, 0x05, 0xf1, 0x12, 0x73, 0x32, 0x93, 0x53, 0x81, 0xdc,
                                0x92, 0xd4, 0x8a, 0x12, 0x20, 0x37, 0x23, 0x35, 0x27, 0x27, 0x5f, 0x01, 0x89, 0xd4,
                                0x51, 0xc8, 0xc8, 0x2f, 0x57, 0x48, 0x2c, 0x4a, 0x55, 0xa8, 0xcc, 0x2f, 0xb5, 0x07,
                                0x29, 0x2c, 0x56, 0xb2, 0x32, 0x34, 0x37, 0x80, 0x82, 0x5a, 0x00, 0x00})),
        json);
    // Z_FINISH: a BFINAL=1 block with nothing after it.
    EXPECT_EQ(inflate_ok(from_octets(
                  {0xab, 0x56, 0x2a, 0xa9, 0x2c, 0x48, 0x55, 0xb2, 0x52, 0x4a, 0xce, 0x48, 0x2c, 0x51, 0xd2, 0x51, 0xca,
                   0x4b, 0xcc, 0x05, 0xf1, 0x12, 0x73, 0x32, 0x93, 0x53, 0x81, 0xdc, 0x92, 0xd4, 0x8a, 0x12, 0x20, 0x37,
                   0x23, 0x35, 0x27, 0x27, 0x5f, 0x01, 0x89, 0xd4, 0x51, 0xc8, 0xc8, 0x2f, 0x57, 0x48, 0x2c, 0x4a, 0x55,
                   0xa8, 0xcc, 0x2f, 0xb5, 0x07, 0x29, 0x2c, 0x56, 0xb2, 0x32, 0x34, 0x37, 0x80, 0x82, 0x5a, 0x00})),
              json);
}

TEST(decompress_message, appends_to_out) {
    std::string out = "> ";
    ASSERT_EQ(decompress_message(as_bytes(from_octets({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), 5, out),
              inflate_status::ok);
    EXPECT_EQ(out, "> Hello");
}

TEST(decompress_message, exactly_max_size_is_accepted) {
    const auto hello = from_octets({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
    std::string out = "kept";
    EXPECT_EQ(decompress_message(as_bytes(hello), 5, out), inflate_status::ok);
    EXPECT_EQ(decompress_message(as_bytes(hello), 4, out), inflate_status::too_big);
    EXPECT_EQ(out, "kept" + std::string("Hello"));
    EXPECT_EQ(decompress_message(as_bytes(from_octets({0x00})), 0, out), inflate_status::ok);

    // Past the first guess of the output room, through the doubling steps.
    const auto big = std::string(3 << 20, 'q');
    std::string compressed;
    ASSERT_GT(compress_message(as_bytes(big), 6, compressed), 0u);
    std::string inflated;
    EXPECT_EQ(decompress_message(as_bytes(compressed), big.size(), inflated), inflate_status::ok);
    EXPECT_EQ(inflated, big);
    inflated.clear();
    EXPECT_EQ(decompress_message(as_bytes(compressed), big.size() - 1, inflated), inflate_status::too_big);
    EXPECT_TRUE(inflated.empty());
}

// A 16 MiB run of zeros compresses to about 16 KiB; inflating it under a
// 1 MiB limit must stop at the limit. Guaranteed: out.capacity() stays below
// 2 × (out.size() before + max_size).
TEST(decompress_message, bomb_is_too_big_and_memory_stays_bounded) {
    const std::string zeros(16 << 20, '\0');
    std::string bomb;
    ASSERT_GT(compress_message(as_bytes(zeros), 6, bomb), 0u);
    EXPECT_LT(bomb.size(), 32u << 10);
    for (std::size_t max_size : {std::size_t{1000}, std::size_t{4096}, std::size_t{100000}, std::size_t{1} << 20,
                                 (std::size_t{3} << 20) + 7}) {
        std::string out;
        EXPECT_EQ(decompress_message(as_bytes(bomb), max_size, out), inflate_status::too_big) << max_size;
        EXPECT_TRUE(out.empty());
        EXPECT_LE(out.capacity(), 2 * max_size) << max_size;
    }
    std::string out;
    EXPECT_EQ(decompress_message(as_bytes(bomb), zeros.size(), out), inflate_status::ok);
    EXPECT_EQ(out.size(), zeros.size());
}

TEST(decompress_message, garbage_is_bad_data) {
    for (const auto& garbage : {
             from_octets({0x07}),                                // BTYPE=11 is reserved
             from_octets({0x06, 0x00}),                          // the same, BFINAL=0
             from_octets({0x01, 0x05, 0x00, 0x00, 0x00, 0x41}),  // stored block: NLEN is not ~LEN
             from_octets({0xf2, 0x00, 0x11, 0x00, 0x00}),        // §7.2.3.2: refers back to a previous message
             std::string(64, '\xff'),
         }) {
        std::string out = "kept";
        EXPECT_EQ(decompress_message(as_bytes(garbage), 1 << 20, out), inflate_status::bad_data);
        EXPECT_EQ(out, "kept");
    }
}
