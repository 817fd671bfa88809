#include <cnetmod/proto/ws/utf8.hpp>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using namespace cnetmod::ws;

namespace {
std::vector<simd_level> all_levels() {
    std::vector<simd_level> out{simd_level::scalar};
    for (auto l : {simd_level::sse2, simd_level::avx2, simd_level::avx512})
        if (l <= detected_simd_level()) out.push_back(l);
    return out;
}
bool valid_at(const std::string& s, simd_level level) {
    auto st =
        detail::utf8_at_level(utf8_validator::accept, reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), level);
    return st == utf8_validator::accept;
}
}  // namespace

TEST(utf8, accepts_valid_text) {
    for (const std::string& s : std::vector<std::string>{"", "plain ascii", "é", "€", "😀", "κόσμε", "\xEF\xBB\xBF",
                                                         "\xF4\x8F\xBF\xBF", "\xED\x9F\xBF", "\xEE\x80\x80",
                                                         std::string(1000, 'a') + "€" + std::string(1000, 'b')})
        for (auto level : all_levels()) EXPECT_TRUE(valid_at(s, level)) << s << " " << to_string(level);
}

TEST(utf8, rejects_invalid_sequences) {
    const std::vector<std::string> bad = {
        "\x80",              // lone continuation
        "\xC0\x80",          // overlong NUL
        "\xC1\xBF",          // overlong
        "\xE0\x80\x80",      // overlong 3-byte
        "\xE0\x9F\xBF",      // overlong 3-byte
        "\xED\xA0\x80",      // surrogate U+D800
        "\xED\xBF\xBF",      // surrogate U+DFFF
        "\xF0\x80\x80\x80",  // overlong 4-byte
        "\xF0\x8F\xBF\xBF",  // overlong 4-byte
        "\xF4\x90\x80\x80",  // above U+10FFFF
        "\xF5\x80\x80\x80",  // invalid lead
        "\xFF",              // invalid byte
        "\xC2",              // truncated
        "\xE2\x82",          // truncated
        "ab\xC2x",           // continuation missing
    };
    for (const auto& s : bad) {
        for (auto level : all_levels()) EXPECT_FALSE(valid_at(s, level)) << to_string(level);
        const std::string padded = std::string(300, 'a') + s + std::string(300, 'b');
        for (auto level : all_levels()) EXPECT_FALSE(valid_at(padded, level)) << to_string(level);
    }
}

TEST(utf8, incremental_feeding_agrees_at_every_split) {
    const std::string text = "Zürich — 東京 — 😀 — end";
    for (std::size_t split = 0; split <= text.size(); ++split) {
        utf8_validator v;
        EXPECT_TRUE(v.feed(std::string_view(text).substr(0, split)));
        EXPECT_TRUE(v.feed(std::string_view(text).substr(split)));
        EXPECT_TRUE(v.complete()) << split;
    }
    // A character split across feeds is not complete until its last byte.
    utf8_validator v;
    EXPECT_TRUE(v.feed(std::string_view("\xF0\x9F")));
    EXPECT_FALSE(v.complete());
    EXPECT_TRUE(v.feed(std::string_view("\x98\x80")));
    EXPECT_TRUE(v.complete());
}

TEST(utf8, fails_fast_at_the_first_bad_byte) {
    utf8_validator v;
    EXPECT_TRUE(v.feed(std::string_view("valid so far ")));
    EXPECT_FALSE(v.feed(std::string_view("\xED\xA0")));  // a surrogate is known bad before it ends
    EXPECT_TRUE(v.failed());
}

TEST(utf8, simd_levels_equal_scalar_on_random_input) {
    std::mt19937 rng(7);
    const std::vector<std::string> pieces = {
        "a", "b", "é", "€", "😀", "\x80", "\xC0", "\xED\xA0\x80", "\xF4\x90", std::string(70, 'x')};
    for (int round = 0; round < 20000; ++round) {
        std::string s;
        const int n = static_cast<int>(rng() % 40);
        for (int i = 0; i < n; ++i) s += pieces[rng() % (round % 2 ? pieces.size() : 5)];
        const bool expected = valid_at(s, simd_level::scalar);
        for (auto level : all_levels())
            ASSERT_EQ(valid_at(s, level), expected) << to_string(level) << " round " << round;
    }
}

TEST(utf8, ascii_prefix_stops_before_the_first_non_ascii_byte) {
    // Lengths around every block size, a non-ASCII byte at each position (or
    // none), at every alignment: the tails read past no block end and skip
    // a short all-ASCII message whole (from 16 bytes; AVX-512 from 1).
    std::string buffer(64 + 300, 'a');
    for (auto level : all_levels())
        for (std::size_t offset : {0u, 1u, 7u, 33u})
            for (std::size_t n = 0; n <= 300; ++n)
                for (std::size_t bad = 0; bad <= n; ++bad) {
                    std::string s(n, 'a');
                    if (bad < n) s[bad] = static_cast<char>(0x80 + bad % 0x80);
                    std::copy(s.begin(), s.end(), buffer.begin() + static_cast<std::ptrdiff_t>(offset));
                    const auto* p = reinterpret_cast<const std::uint8_t*>(buffer.data()) + offset;
                    const std::size_t r = detail::ascii_prefix(p, n, level);
                    ASSERT_LE(r, bad) << to_string(level) << " n " << n << " bad " << bad;
                    if (bad == n && level != simd_level::scalar && (n >= 16 || level == simd_level::avx512)) {
                        ASSERT_EQ(r, n) << to_string(level) << " n " << n;
                    }
                }
}
