#include <cnetmod/proto/ws/mask.hpp>

#include <immintrin.h>

#include <cstring>

namespace cnetmod::ws {

std::string_view to_string(simd_level level) noexcept {
    switch (level) {
        case simd_level::scalar:
            return "scalar";
        case simd_level::sse2:
            return "sse2";
        case simd_level::avx2:
            return "avx2";
        case simd_level::avx512:
            return "avx512";
    }
    return "?";
}

simd_level detected_simd_level() noexcept {
    static const simd_level level = [] {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return simd_level::avx512;
        if (__builtin_cpu_supports("avx2")) return simd_level::avx2;
        if (__builtin_cpu_supports("sse2")) return simd_level::sse2;
        return simd_level::scalar;
    }();
    return level;
}

namespace detail {
namespace {

// The mask as a 32-bit word in memory order, rotated so that its first byte
// applies at `phase`.
std::uint32_t rotated_key(const std::uint8_t mask[4], std::size_t phase) noexcept {
    std::uint8_t k[4];
    for (std::size_t i = 0; i < 4; ++i) k[i] = mask[(i + phase) & 3];
    std::uint32_t key;
    std::memcpy(&key, k, 4);
    return key;
}

void mask_tail(std::byte* data, std::size_t n, std::uint32_t key) noexcept {
    std::uint8_t k[4];
    std::memcpy(k, &key, 4);
    for (std::size_t i = 0; i < n; ++i) data[i] ^= std::byte{k[i & 3]};
}

}  // namespace

void mask_scalar(std::byte* data, std::size_t n, const std::uint8_t mask[4], std::size_t phase) noexcept {
    const std::uint32_t key = rotated_key(mask, phase);
    const std::uint64_t key64 = (std::uint64_t{key} << 32) | key;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t v;
        std::memcpy(&v, data + i, 8);
        v ^= key64;
        std::memcpy(data + i, &v, 8);
    }
    mask_tail(data + i, n - i, key);
}

__attribute__((target("sse2"))) void mask_sse2(std::byte* data, std::size_t n, const std::uint8_t mask[4],
                                               std::size_t phase) noexcept {
    const std::uint32_t key = rotated_key(mask, phase);
    const __m128i k = _mm_set1_epi32(static_cast<int>(key));
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        auto* p = reinterpret_cast<__m128i*>(data + i);
        _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), k));
    }
    mask_tail(data + i, n - i, key);
}

__attribute__((target("avx2"))) void mask_avx2(std::byte* data, std::size_t n, const std::uint8_t mask[4],
                                               std::size_t phase) noexcept {
    const std::uint32_t key = rotated_key(mask, phase);
    const __m256i k = _mm256_set1_epi32(static_cast<int>(key));
    std::size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        auto* p = reinterpret_cast<__m256i*>(data + i);
        __m256i a = _mm256_loadu_si256(p), b = _mm256_loadu_si256(p + 1), c = _mm256_loadu_si256(p + 2),
                d = _mm256_loadu_si256(p + 3);
        _mm256_storeu_si256(p, _mm256_xor_si256(a, k));
        _mm256_storeu_si256(p + 1, _mm256_xor_si256(b, k));
        _mm256_storeu_si256(p + 2, _mm256_xor_si256(c, k));
        _mm256_storeu_si256(p + 3, _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= n; i += 32) {
        auto* p = reinterpret_cast<__m256i*>(data + i);
        _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), k));
    }
    mask_tail(data + i, n - i, key);
}

__attribute__((target("avx512f,avx512bw"))) void mask_avx512(std::byte* data, std::size_t n, const std::uint8_t mask[4],
                                                             std::size_t phase) noexcept {
    const std::uint32_t key = rotated_key(mask, phase);
    const __m512i k = _mm512_set1_epi32(static_cast<int>(key));
    std::size_t i = 0;
    for (; i + 256 <= n; i += 256) {
        auto* p = reinterpret_cast<__m512i*>(data + i);
        __m512i a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 1), c = _mm512_loadu_si512(p + 2),
                d = _mm512_loadu_si512(p + 3);
        _mm512_storeu_si512(p, _mm512_xor_si512(a, k));
        _mm512_storeu_si512(p + 1, _mm512_xor_si512(b, k));
        _mm512_storeu_si512(p + 2, _mm512_xor_si512(c, k));
        _mm512_storeu_si512(p + 3, _mm512_xor_si512(d, k));
    }
    // The tail (under 256 bytes) with a byte mask: no scalar loop.
    while (i < n) {
        const std::size_t left = n - i;
        const __mmask64 m = left >= 64 ? ~__mmask64{0} : ((__mmask64{1} << left) - 1);
        auto* p = data + i;
        const __m512i v = _mm512_maskz_loadu_epi8(m, p);
        _mm512_mask_storeu_epi8(p, m, _mm512_xor_si512(v, k));
        i += 64;
    }
}

mask_function mask_for(simd_level level) noexcept {
    const simd_level cpu = detected_simd_level();
    if (level > cpu) level = cpu;
    switch (level) {
        case simd_level::avx512:
            return &mask_avx512;
        case simd_level::avx2:
            return &mask_avx2;
        case simd_level::sse2:
            return &mask_sse2;
        case simd_level::scalar:
            break;
    }
    return &mask_scalar;
}

}  // namespace detail

void detail::apply_mask_wide(std::byte* data, std::size_t n, const std::uint8_t mask[4], std::size_t phase) noexcept {
    static const detail::mask_function best = detail::mask_for(detected_simd_level());
    best(data, n, mask, phase);
}

}  // namespace cnetmod::ws
