/// @file
/// Masking (RFC 6455 §5.3): payload byte i is XORed with mask[(i + phase) % 4].
/// apply_mask picks, once per process, the widest instruction set the CPU
/// has (AVX-512, AVX2, SSE2) and falls back to the scalar loop; every level
/// is exposed so a test can prove them equal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cnetmod::ws {

/// The instruction sets apply_mask can use, narrowest first.
enum class simd_level {
    scalar,  ///< plain C++, 8 bytes at a time
    sse2,    ///< 16 bytes at a time
    avx2,    ///< 32 bytes at a time
    avx512   ///< 64 bytes at a time
};

/// "scalar", "sse2", "avx2", "avx512".
std::string_view to_string(simd_level level) noexcept;
/// The widest level this CPU runs.
simd_level detected_simd_level() noexcept;

namespace detail {
// The SIMD path, chosen once per process.
void apply_mask_wide(std::byte* data, std::size_t n, const std::uint8_t mask[4], std::size_t phase) noexcept;
}  // namespace detail

/// XORs `n` bytes at `data` with the 4-byte `mask`, starting at mask byte `phase`
/// (the payload offset modulo 4, when a payload arrives in pieces). Short
/// payloads (chat messages, control frames) are done inline, 8 bytes at a
/// time; from 64 bytes on the widest SIMD level takes over.
inline void apply_mask(std::byte* data, std::size_t n, const std::uint8_t mask[4], std::size_t phase = 0) noexcept {
    if (n >= 64) {
        detail::apply_mask_wide(data, n, mask, phase);
        return;
    }
    std::uint8_t m[8];
    for (std::size_t i = 0; i < 8; ++i) m[i] = mask[(i + phase) & 3];
    std::uint64_t m64;
    __builtin_memcpy(&m64, m, 8);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t v;
        __builtin_memcpy(&v, data + i, 8);
        v ^= m64;
        __builtin_memcpy(data + i, &v, 8);
    }
    for (; i < n; ++i) data[i] ^= static_cast<std::byte>(m[i & 7]);
}

namespace detail {
void mask_scalar(std::byte* data, std::size_t n, const std::uint8_t mask[4], std::size_t phase) noexcept;
void mask_sse2(std::byte* data, std::size_t n, const std::uint8_t mask[4], std::size_t phase) noexcept;
void mask_avx2(std::byte* data, std::size_t n, const std::uint8_t mask[4], std::size_t phase) noexcept;
void mask_avx512(std::byte* data, std::size_t n, const std::uint8_t mask[4], std::size_t phase) noexcept;
// The implementation for a level (scalar where the CPU lacks it).
using mask_function = void (*)(std::byte*, std::size_t, const std::uint8_t*, std::size_t) noexcept;
mask_function mask_for(simd_level level) noexcept;
}  // namespace detail

}  // namespace cnetmod::ws
