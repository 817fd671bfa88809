#include <cnetmod/proto/ws/frame.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace cnetmod::ws;

namespace {
std::vector<std::byte> bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v) out.push_back(static_cast<std::byte>(b));
    return out;
}
}  // namespace

TEST(frame_header, round_trips_every_length_encoding_and_opcode) {
    const std::uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    for (std::uint64_t len : {0ull, 1ull, 125ull, 126ull, 127ull, 65535ull, 65536ull, 1ull << 40}) {
        for (opcode op :
             {opcode::continuation, opcode::text, opcode::binary, opcode::close, opcode::ping, opcode::pong}) {
            if (is_control(op) && len > 125) continue;
            for (bool masked : {false, true}) {
                for (bool fin : {true, false}) {
                    if (is_control(op) && !fin) continue;
                    std::byte buf[max_header_size];
                    const auto n = encode_frame_header(buf, op, len, fin, false, masked ? mask : nullptr);
                    EXPECT_EQ(n, (len < 126 ? 2u : len <= 65535 ? 4u : 10u) + (masked ? 4u : 0u));
                    // Every prefix is incomplete, the whole header complete.
                    for (std::size_t k = 0; k < n; ++k)
                        EXPECT_EQ(parse_frame_header({buf, k}).state, header_parse_result::status::incomplete);
                    const auto r = parse_frame_header({buf, n});
                    ASSERT_EQ(r.state, header_parse_result::status::complete);
                    EXPECT_EQ(r.size, n);
                    EXPECT_EQ(r.header.op, op);
                    EXPECT_EQ(r.header.fin, fin);
                    EXPECT_EQ(r.header.payload_length, len);
                    EXPECT_EQ(r.header.masked, masked);
                    if (masked) {
                        EXPECT_EQ(std::memcmp(r.header.mask, mask, 4), 0);
                    }
                }
            }
        }
    }
}

TEST(frame_header, reserved_bits_are_reported_for_the_connection_to_judge) {
    auto r = parse_frame_header(bytes({0xC1, 0x00}));
    ASSERT_EQ(r.state, header_parse_result::status::complete);
    EXPECT_TRUE(r.header.rsv1);
    EXPECT_FALSE(r.header.rsv2);
}

TEST(frame_header, protocol_violations_name_1002) {
    const std::vector<std::vector<std::byte>> bad = {
        bytes({0x83, 0x00}),                                // reserved opcode 3
        bytes({0x87, 0x00}),                                // 7
        bytes({0x8B, 0x00}),                                // 0xB
        bytes({0x8F, 0x00}),                                // 0xF
        bytes({0x09, 0x00}),                                // fragmented ping
        bytes({0x89, 0x7E, 0x00, 0x7E}),                    // ping of 126 bytes
        bytes({0x81, 0x7E, 0x00, 0x05}),                    // 16-bit length for 5 bytes
        bytes({0x81, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}),  // 64-bit length for 65535
        bytes({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}),     // most significant bit set
    };
    for (const auto& frame : bad) {
        const auto r = parse_frame_header(frame);
        EXPECT_EQ(r.state, header_parse_result::status::invalid) << std::to_integer<int>(frame[0]);
        EXPECT_EQ(r.close, close_code::protocol_error);
    }
}

TEST(close_codes, valid_ranges) {
    for (int c = 0; c < 6000; ++c) {
        const bool expected = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
        EXPECT_EQ(is_valid_close_code(static_cast<std::uint16_t>(c)), expected) << c;
    }
}
