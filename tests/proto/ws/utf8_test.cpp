#include <cnetmod/proto/ws/utf8.hpp>

#include <gtest/gtest.h>
#include <simdjson.h>

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

// Issue 13: the SIMD path (simdjson for whole characters, the state machine
// for a character cut by a chunk's end) against the scalar state machine.
namespace {

const std::uint8_t* bytes_of(std::string_view s) {
    return reinterpret_cast<const std::uint8_t*>(s.data());
}

std::uint8_t scalar_state(std::string_view s) {
    return detail::utf8_scalar(utf8_validator::accept, bytes_of(s), s.size());
}

// Runs `check` once with each simdjson kernel this CPU can run (icelake,
// haswell, westmere, fallback), as validate_utf8 would dispatch on other CPUs.
template <class Check>
void for_each_kernel(Check check) {
    const simdjson::implementation* active = simdjson::get_active_implementation();
    for (const simdjson::implementation* kernel : simdjson::get_available_implementations()) {
        if (!kernel->supported_by_runtime_system()) continue;
        simdjson::get_active_implementation() = kernel;
        SCOPED_TRACE(kernel->name());
        check();
    }
    simdjson::get_active_implementation() = active;
}

// Feeds `text` cut at `cuts` (ascending), to a validator and to chained
// utf8_simd calls, and expects each feed to agree with the scalar machine
// over everything fed so far: false exactly for the chunk that holds the
// first bad byte, complete() exactly at a character boundary.
void expect_fed_like_scalar(std::string_view text, const std::vector<std::size_t>& cuts) {
    utf8_validator v;
    std::uint8_t simd = utf8_validator::accept;
    std::size_t from = 0;
    for (std::size_t k = 0; k <= cuts.size(); ++k) {
        const std::size_t to = k < cuts.size() ? cuts[k] : text.size();
        const auto chunk = text.substr(from, to - from);
        const std::uint8_t expected = scalar_state(text.substr(0, to));
        ASSERT_EQ(v.feed(chunk), expected != utf8_validator::reject) << "chunk " << from << ".." << to;
        ASSERT_EQ(v.complete(), expected == utf8_validator::accept) << "chunk " << from << ".." << to;
        if (simd != utf8_validator::reject) simd = detail::utf8_simd(simd, bytes_of(chunk), chunk.size());
        ASSERT_EQ(simd, expected) << "utf8_simd, chunk " << from << ".." << to;
        from = to;
    }
}

// Padding that puts a sequence under test at the start, after a short run,
// and deep into a chunk that takes the SIMD path, after ASCII and after
// multi-byte text.
std::vector<std::string> paddings() {
    return {"",
            "a",
            "é",
            std::string(15, 'a'),
            std::string(64, 'a'),
            std::string(63, 'a') + "€",
            "Привет, мир — 東京 😀 " + std::string(100, 'x') + "ё"};
}

// Text in several scripts, `n` bytes or a little less, ending on a character.
std::string mixed_script_text(std::size_t n, unsigned seed) {
    const std::vector<std::string> words = {
        "hello",        "world,", "Привет",   "съешь",    "ещё",          "東京都",      "晴れです。",
        "中文",         "한국어", "😀",        "🎉🎉",       "👍🏽",     "👩‍💻", "\xF4\x8F\xBF\xBF",
        "\xEF\xBF\xBF", "ü",      "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF"};
    std::mt19937 rng(seed);
    std::string out;
    for (;;) {
        const auto& w = words[rng() % words.size()];
        if (out.size() + w.size() + 1 > n) break;
        out += w;
        out += rng() % 3 ? " " : "";
    }
    return out;
}

}  // namespace

TEST(utf8_simd, validator_keeps_one_byte_per_connection) {
    EXPECT_EQ(sizeof(utf8_validator), 1u);
}

TEST(utf8_simd, every_split_of_every_sequence_length) {
    // The shortest and longest character of each length, and the bounds of E0, ED, F0, F4.
    const std::vector<std::string> characters = {
        "a",                 // U+0061
        "\x7F",              // U+007F
        "\xC2\x80",          // U+0080
        "\xDF\xBF",          // U+07FF
        "\xE0\xA0\x80",      // U+0800
        "\xE2\x82\xAC",      // U+20AC
        "\xED\x9F\xBF",      // U+D7FF
        "\xEF\xBF\xBF",      // U+FFFF
        "\xF0\x90\x80\x80",  // U+10000
        "\xF0\x9F\x98\x80",  // U+1F600
        "\xF3\xBF\xBF\xBF",  // U+FFFFF
        "\xF4\x8F\xBF\xBF",  // U+10FFFF
    };
    for_each_kernel([&] {
        for (const auto& before : paddings())
            for (const auto& after : paddings())
                for (const auto& c : characters) {
                    const std::string text = before + c + after;
                    ASSERT_EQ(scalar_state(text), utf8_validator::accept);
                    // One cut inside or at each end of the character, and every cut at once.
                    std::vector<std::size_t> each;
                    for (std::size_t k = 0; k <= c.size(); ++k) {
                        expect_fed_like_scalar(text, {before.size() + k});
                        each.push_back(before.size() + k);
                    }
                    expect_fed_like_scalar(text, each);
                }
    });
}

TEST(utf8_simd, invalid_bytes_fail_at_the_chunk_that_brings_them) {
    // Each is bad at its last byte: a prefix that can never become valid.
    const std::vector<std::string> bad = {
        "\x80",                  // a continuation without a lead
        "\xBF",                  // the same, the highest
        "\xC0",                  // C0, C1: only ever overlong
        "\xC1",                  //
        "\xF5",                  // F5-FF: never in UTF-8
        "\xFF",                  //
        "\xC2\x41",              // a character cut short by ASCII
        "\xE2\x82\x41",          //
        "\xF0\x9F\x98\x41",      //
        "\xE0\x80",              // overlong 3-byte
        "\xE0\x9F",              //
        "\xF0\x80",              // overlong 4-byte
        "\xF0\x8F",              //
        "\xED\xA0",              // surrogates U+D800..U+DFFF
        "\xED\xBF",              //
        "\xF4\x90",              // above U+10FFFF
        "\xF4\xBF",              //
        "\xC3\xA9\x80",          // a continuation too many
        "\xF0\x9F\x98\x80\x80",  //
    };
    for_each_kernel([&] {
        for (const auto& before : paddings())
            for (const auto& b : bad)
                for (const std::string& after : {std::string(), std::string("ok"), std::string(100, 'z') + "ж"}) {
                    const std::string text = before + b + after;
                    const std::size_t first_bad = before.size() + b.size() - 1;
                    ASSERT_NE(scalar_state(text.substr(0, first_bad)), utf8_validator::reject) << first_bad;
                    ASSERT_EQ(scalar_state(text.substr(0, first_bad + 1)), utf8_validator::reject) << first_bad;
                    // Cut at every point from the padding's end to just past the bad byte.
                    for (std::size_t cut = before.size(); cut <= first_bad + 1; ++cut) {
                        expect_fed_like_scalar(text, {cut});
                        if (cut > 0) expect_fed_like_scalar(text, {cut - 1, cut});
                    }
                    EXPECT_FALSE(is_valid_utf8(text));
                    EXPECT_EQ(detail::utf8_simd(utf8_validator::accept, bytes_of(text), text.size()),
                              utf8_validator::reject);
                }
    });
}

TEST(utf8_simd, a_cut_prefix_that_cannot_complete_fails_at_once) {
    const std::string long_text = mixed_script_text(500, 3);
    for (const std::string tail : {"\xF5", "\xE0\x80", "\xED\xA0", "\xF4\x90", "\xF0\x8F", "\xC0"}) {
        utf8_validator v;
        EXPECT_FALSE(v.feed(long_text + tail)) << "tail of " << tail.size() << " bytes";
        EXPECT_TRUE(v.failed());
    }
    for (const std::string tail : {"\xF4", "\xE0\xA0", "\xED\x9F", "\xF0\x9F\x98"}) {
        utf8_validator v;
        EXPECT_TRUE(v.feed(long_text + tail));
        EXPECT_FALSE(v.complete());
    }
}

TEST(utf8_simd, mixed_script_texts_valid_and_with_one_corrupted_byte) {
    for_each_kernel([&] {
        for (std::size_t n : {20u, 64u, 200u, 1000u, 5000u}) {
            const std::string text = mixed_script_text(n, static_cast<unsigned>(n));
            ASSERT_EQ(scalar_state(text), utf8_validator::accept);
            EXPECT_TRUE(is_valid_utf8(text));
            EXPECT_EQ(detail::utf8_simd(utf8_validator::accept, bytes_of(text), text.size()), utf8_validator::accept);
            std::mt19937 rng(static_cast<unsigned>(n) * 7);
            const std::size_t step = n <= 200 ? 1 : n / 97;
            for (std::size_t at = 0; at < text.size(); at += step)
                for (unsigned char to : {0x80, 0xBF, 0xC0, 0xC3, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF, 0x41}) {
                    std::string corrupt = text;
                    corrupt[at] = static_cast<char>(to);
                    const std::uint8_t expected = scalar_state(corrupt);
                    ASSERT_EQ(is_valid_utf8(corrupt), expected == utf8_validator::accept) << at;
                    ASSERT_EQ(detail::utf8_simd(utf8_validator::accept, bytes_of(corrupt), corrupt.size()), expected)
                        << at;
                    // Fed in random chunks, cut anywhere (mid-character too).
                    std::vector<std::size_t> cuts;
                    for (std::size_t c = rng() % 40; c < corrupt.size(); c += 1 + rng() % 300) cuts.push_back(c);
                    expect_fed_like_scalar(corrupt, cuts);
                }
        }
    });
}

TEST(utf8_simd, simd_path_equals_scalar_on_random_input) {
    std::mt19937 rng(13);
    const std::vector<std::string> pieces = {"a",        "Ж",        "東",           "😀",        std::string(40, 'x'),
                                             "\x80",     "\xC0",     "\xED\xA0\x80", "\xF4\x90", "\xF5",
                                             "\xE0\x9F", "\xF0\x8F", "\xC2",         "\xE2\x82", "\xF0\x9F\x98"};
    for_each_kernel([&] {
        for (int round = 0; round < 4000; ++round) {
            std::string s;
            const int n = static_cast<int>(rng() % 60);
            // Mostly valid pieces, so an error often lands late in a long valid run.
            for (int i = 0; i < n; ++i) s += pieces[rng() % (rng() % 8 ? 5 : pieces.size())];
            ASSERT_EQ(detail::utf8_simd(utf8_validator::accept, bytes_of(s), s.size()), scalar_state(s))
                << "round " << round;
            std::vector<std::size_t> cuts;
            for (std::size_t c = rng() % 20; c < s.size(); c += 1 + rng() % 50) cuts.push_back(c);
            expect_fed_like_scalar(s, cuts);
        }
    });
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
