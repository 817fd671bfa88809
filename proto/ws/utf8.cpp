#include <cnetmod/proto/ws/utf8.hpp>

#include <immintrin.h>
#include <simdjson.h>

#include <array>

namespace cnetmod::ws {
namespace detail {
namespace {

// A DFA over byte classes, written from the table of RFC 3629 §4:
//   00-7F | C2-DF 80-BF | E0 A0-BF 80-BF | E1-EC 80-BF 80-BF | ED 80-9F 80-BF
//   | EE-EF 80-BF 80-BF | F0 90-BF 80-BF 80-BF | F1-F3 80-BF x3 | F4 80-8F 80-BF 80-BF
// Classes: 0 ASCII, 1 80-8F, 2 90-9F, 3 A0-BF, 4 C2-DF, 5 E0, 6 E1-EC/EE-EF,
// 7 ED, 8 F0, 9 F1-F3, 10 F4, 11 invalid (C0, C1, F5-FF).
// States (multiples of 12 index the transition row): 0 accept, 12 reject,
// 24 one continuation left, 36 two left, 48 E0 (A0-BF next), 60 ED (80-9F
// next), 72 three left, 84 F0 (90-BF next), 96 F4 (80-8F next).
constexpr std::array<std::uint8_t, 256> byte_class = [] {
    std::array<std::uint8_t, 256> c{};
    for (int b = 0; b < 256; ++b) {
        std::uint8_t k = 11;
        if (b < 0x80)
            k = 0;
        else if (b < 0x90)
            k = 1;
        else if (b < 0xA0)
            k = 2;
        else if (b < 0xC0)
            k = 3;
        else if (b < 0xC2)
            k = 11;
        else if (b < 0xE0)
            k = 4;
        else if (b == 0xE0)
            k = 5;
        else if (b == 0xED)
            k = 7;
        else if (b < 0xF0)
            k = 6;
        else if (b == 0xF0)
            k = 8;
        else if (b < 0xF4)
            k = 9;
        else if (b == 0xF4)
            k = 10;
        c[static_cast<std::size_t>(b)] = k;
    }
    return c;
}();

constexpr std::array<std::uint8_t, 108> transitions = [] {
    std::array<std::uint8_t, 108> t{};
    for (auto& v : t) v = 12;  // everything not listed rejects
    auto set = [&](int state, int cls, int next) {
        t[static_cast<std::size_t>(state + cls)] = static_cast<std::uint8_t>(next);
    };
    // accept
    set(0, 0, 0);
    set(0, 4, 24);
    set(0, 5, 48);
    set(0, 6, 36);
    set(0, 7, 60);
    set(0, 8, 84);
    set(0, 9, 72);
    set(0, 10, 96);
    // one continuation left
    for (int c : {1, 2, 3}) set(24, c, 0);
    // two left
    for (int c : {1, 2, 3}) set(36, c, 24);
    // E0: A0-BF
    set(48, 3, 24);
    // ED: 80-9F (no surrogates)
    set(60, 1, 24);
    set(60, 2, 24);
    // three left
    for (int c : {1, 2, 3}) set(72, c, 36);
    // F0: 90-BF
    set(84, 2, 36);
    set(84, 3, 36);
    // F4: 80-8F (at most U+10FFFF)
    set(96, 1, 36);
    return t;
}();

__attribute__((target("sse2"))) std::size_t ascii_sse2(const std::uint8_t* p, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 16));
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 32));
        const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 48));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d))) != 0) break;
    }
    for (; i + 16 <= n; i += 16)
        if (_mm_movemask_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))) != 0) break;
    // Fewer than 16 left after ASCII blocks: the last 16 bytes (overlapping
    // bytes known to be ASCII) settle it, so short messages are skipped too.
    if (i < n && i + 16 > n && n >= 16 &&
        _mm_movemask_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + n - 16))) == 0)
        return n;
    return i;
}

__attribute__((target("avx2"))) std::size_t ascii_avx2(const std::uint8_t* p, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32));
        const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64));
        const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96));
        if (_mm256_movemask_epi8(_mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d))) != 0) break;
    }
    for (; i + 32 <= n; i += 32)
        if (_mm256_movemask_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i))) != 0) break;
    // Fewer than 32 left after ASCII blocks: the last 32 bytes settle it (the
    // first and last 16 of a message of 16 to 31 bytes).
    if (i < n && i + 32 > n) {
        if (n >= 32) {
            if (_mm256_movemask_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + n - 32))) == 0) return n;
        } else if (n >= 16) {
            const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + n - 16));
            if (_mm_movemask_epi8(_mm_or_si128(a, b)) == 0) return n;
        }
    }
    return i;
}

__attribute__((target("avx512f,avx512bw"))) std::size_t ascii_avx512(const std::uint8_t* p, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 256 <= n; i += 256) {
        const __m512i a = _mm512_loadu_si512(p + i);
        const __m512i b = _mm512_loadu_si512(p + i + 64);
        const __m512i c = _mm512_loadu_si512(p + i + 128);
        const __m512i d = _mm512_loadu_si512(p + i + 192);
        const __m512i all = _mm512_or_si512(_mm512_or_si512(a, b), _mm512_or_si512(c, d));
        if (_mm512_movepi8_mask(all) != 0) break;
    }
    for (; i + 64 <= n; i += 64)
        if (_mm512_movepi8_mask(_mm512_loadu_si512(p + i)) != 0) break;
    // Fewer than 64 left after ASCII blocks: a masked load reads just those
    // (masked-off bytes are not touched, so no read past the end).
    if (i < n && i + 64 > n) {
        const __mmask64 rest = (__mmask64{1} << (n - i)) - 1;
        if (_mm512_movepi8_mask(_mm512_maskz_loadu_epi8(rest, p + i)) == 0) return n;
    }
    return i;
}

}  // namespace

std::uint8_t utf8_scalar(std::uint8_t state, const std::uint8_t* p, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        state = transitions[state + byte_class[p[i]]];
        if (state == utf8_validator::reject) return state;
    }
    return state;
}

std::size_t ascii_prefix(const std::uint8_t* p, std::size_t n, simd_level level) noexcept {
    if (level > detected_simd_level()) level = detected_simd_level();
    switch (level) {
        case simd_level::avx512:
            return ascii_avx512(p, n);
        case simd_level::avx2:
            return ascii_avx2(p, n);
        case simd_level::sse2:
            return ascii_sse2(p, n);
        case simd_level::scalar:
            break;
    }
    return 0;
}

std::uint8_t utf8_at_level(std::uint8_t state, const std::uint8_t* p, std::size_t n, simd_level level) noexcept {
    std::size_t i = 0;
    while (i < n) {
        if (state == utf8_validator::accept && level != simd_level::scalar) {
            // Between characters, a SIMD scan skips whole blocks of ASCII.
            i += ascii_prefix(p + i, n - i, level);
            if (i == n) break;
        }
        // The scalar machine takes over until the next character boundary
        // after at least one block's worth of bytes (or the end).
        const std::size_t stop = std::min(n, i + 64);
        state = utf8_scalar(state, p + i, stop - i);
        if (state == utf8_validator::reject) return state;
        i = stop;
    }
    return state;
}

namespace {

// Where the last character of p[from, n) starts if the chunk's end cuts it:
// at a lead byte among the last three bytes that announces more bytes than
// follow it (a 4-byte character cut after its lead leaves three), else n.
// A lead byte cannot follow inside a character, so everything before it is
// whole characters if it is valid.
std::size_t last_character_cut(const std::uint8_t* p, std::size_t from, std::size_t n) noexcept {
    for (std::size_t j = n; j > from && n - j < 3;) {
        --j;
        if (p[j] < 0x80) return n;  // ASCII ends a character
        if (p[j] >= 0xC0) {         // a lead byte (or C0/C1/F5-FF, which either path rejects)
            const std::size_t length = p[j] >= 0xF0 ? 4 : p[j] >= 0xE0 ? 3 : 2;
            return n - j < length ? j : n;
        }
    }
    return n;
}

}  // namespace

std::uint8_t utf8_simd(std::uint8_t state, const std::uint8_t* p, std::size_t n) noexcept {
    // The rest of a character the previous chunk cut: at most three bytes.
    std::size_t i = 0;
    for (; i < n && state != utf8_validator::accept; ++i) {
        state = transitions[state + byte_class[p[i]]];
        if (state == utf8_validator::reject) return state;
    }
    // ASCII runs are skipped faster than simdjson's ASCII check does it.
    static const simd_level level = detected_simd_level();
    i += ascii_prefix(p + i, n - i, level);
    if (n - i < utf8_simd_threshold) return utf8_scalar(state, p + i, n - i);
    // simdjson validates whole characters only (it rejects a truncated one),
    // so a character the chunk's end cuts is left to the state machine, which
    // rejects a prefix that can never complete (F5, E0 80, ED A0) right here.
    const std::size_t cut = last_character_cut(p, i, n);
    if (cut > i && !simdjson::validate_utf8(reinterpret_cast<const char*>(p + i), cut - i))
        return utf8_validator::reject;
    return utf8_scalar(utf8_validator::accept, p + cut, n - cut);
}

}  // namespace detail

// One byte per connection: the state machine's state at the chunk's end.
static_assert(sizeof(utf8_validator) == 1);

bool utf8_validator::feed(std::span<const std::byte> bytes) noexcept {
    if (state_ == reject) return false;
    state_ = detail::utf8_simd(state_, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    return state_ != reject;
}

bool is_valid_utf8(std::span<const std::byte> bytes) noexcept {
    utf8_validator v;
    return v.feed(bytes) && v.complete();
}

}  // namespace cnetmod::ws
