// libFuzzer target: the WebSocket frame reader's pure parts on arbitrary
// bytes — header parsing frame after frame, unmasking at every SIMD level
// against the scalar path, and UTF-8 validation at every level against the
// scalar state machine.
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/mask.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace cnetmod::ws;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data), size);
    utf8_validator streaming;
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
        streaming.feed(reference);
        rest = rest.subspan(len);
    }
    return 0;
}
