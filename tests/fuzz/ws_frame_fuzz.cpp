// libFuzzer target: the WebSocket frame reader's pure parts on arbitrary
// bytes — header parsing frame after frame, unmasking at every SIMD level
// against the scalar path, and UTF-8 validation against the scalar state
// machine: the ASCII-skipping path at every level, and the SIMD path (with
// each simdjson kernel this CPU runs) whole and fed in pieces cut at
// points drawn from the payload.
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/mask.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

using namespace cnetmod::ws;

namespace {

// The SIMD path and the validator against the scalar machine on `p[0, n)`:
// the same state whole, and fed in pieces each feed agrees with the scalar
// machine over everything fed so far.
void check_utf8_simd(const std::uint8_t* p, std::size_t n, std::uint32_t seed) {
    const auto expected = detail::utf8_scalar(utf8_validator::accept, p, n);
    if (detail::utf8_simd(utf8_validator::accept, p, n) != expected) std::abort();
    if (is_valid_utf8(std::span(reinterpret_cast<const std::byte*>(p), n)) != (expected == utf8_validator::accept))
        std::abort();
    std::minstd_rand rng(seed);
    utf8_validator v;
    std::uint8_t simd = utf8_validator::accept, prefix = utf8_validator::accept;
    for (std::size_t from = 0; from < n;) {
        // Short pieces (the validator's state machine path) and long ones.
        const std::size_t len = std::min<std::size_t>(n - from, rng() % 2 ? 1 + rng() % 8 : 1 + rng() % 600);
        if (prefix != utf8_validator::reject) prefix = detail::utf8_scalar(prefix, p + from, len);
        const bool fed = v.feed(std::span(reinterpret_cast<const std::byte*>(p + from), len));
        if (fed != (prefix != utf8_validator::reject)) std::abort();
        if (v.complete() != (prefix == utf8_validator::accept)) std::abort();
        if (simd != utf8_validator::reject) simd = detail::utf8_simd(simd, p + from, len);
        if (simd != prefix) std::abort();
        from += len;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data), size);
    utf8_validator streaming;
    std::uint8_t streaming_state = utf8_validator::accept;
    while (!rest.empty()) {
        const auto r = parse_frame_header(rest);
        if (r.state != header_parse_result::status::complete) {
            if (r.state == header_parse_result::status::incomplete && r.size <= rest.size()) std::abort();
            break;
        }
        const frame_header& h = r.header;
        // Re-encoding a parsed header gives the same bytes.
        std::byte again[max_header_size];
        const std::size_t n =
            encode_frame_header(again, h.op, h.payload_length, h.fin, h.rsv1, h.masked ? h.mask : nullptr);
        if (n != r.size || (!h.rsv2 && !h.rsv3 && std::memcmp(again, rest.data(), n) != 0)) std::abort();
        rest = rest.subspan(r.size);
        const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(h.payload_length, rest.size()));
        std::vector<std::byte> reference(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(len));
        detail::mask_scalar(reference.data(), reference.size(), h.mask, 1);
        for (auto level : {simd_level::sse2, simd_level::avx2, simd_level::avx512}) {
            std::vector<std::byte> v(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(len));
            detail::mask_for(level)(v.data(), v.size(), h.mask, 1);
            if (v != reference) std::abort();
        }
        const auto* p = reinterpret_cast<const std::uint8_t*>(reference.data());
        const auto expected = detail::utf8_scalar(utf8_validator::accept, p, reference.size());
        for (auto level : {simd_level::sse2, simd_level::avx2, simd_level::avx512}) {
            const auto got = detail::utf8_at_level(utf8_validator::accept, p, reference.size(), level);
            if ((got == utf8_validator::reject) != (expected == utf8_validator::reject)) std::abort();
            if (expected != utf8_validator::reject && got != expected) std::abort();
        }
        const simdjson::implementation* active = simdjson::get_active_implementation();
        for (const simdjson::implementation* kernel : simdjson::get_available_implementations()) {
            if (!kernel->supported_by_runtime_system()) continue;
            simdjson::get_active_implementation() = kernel;
            check_utf8_simd(p, reference.size(), static_cast<std::uint32_t>(h.payload_length) ^ h.mask[0]);
        }
        simdjson::get_active_implementation() = active;
        // Frame after frame, as fragments of one text message.
        if (streaming_state != utf8_validator::reject)
            streaming_state = detail::utf8_scalar(streaming_state, p, reference.size());
        if (streaming.feed(reference) != (streaming_state != utf8_validator::reject)) std::abort();
        if (streaming.complete() != (streaming_state == utf8_validator::accept)) std::abort();
        rest = rest.subspan(len);
    }
    return 0;
}
