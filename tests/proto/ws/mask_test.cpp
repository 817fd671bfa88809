#include <cnetmod/proto/ws/mask.hpp>

#include <gtest/gtest.h>

#include <random>
#include <vector>

using namespace cnetmod::ws;

TEST(mask, every_simd_level_equals_scalar_for_every_length_and_alignment) {
    std::mt19937 rng(42);
    std::vector<std::byte> source(4096 + 128), expected(source.size()), actual(source.size());
    for (auto& b : source) b = static_cast<std::byte>(rng());
    const std::uint8_t key[4] = {0xA1, 0xB2, 0xC3, 0xD4};
    std::vector<simd_level> levels;
    for (auto l : {simd_level::sse2, simd_level::avx2, simd_level::avx512})
        if (l <= detected_simd_level()) levels.push_back(l);
    for (std::size_t len = 0; len <= 4096; ++len) {
        for (std::size_t align = 0; align < 64; ++align) {
            const std::size_t phase = (len + align) & 3;
            std::copy(source.begin(), source.end(), expected.begin());
            detail::mask_scalar(expected.data() + align, len, key, phase);
            for (auto level : levels) {
                std::copy(source.begin(), source.end(), actual.begin());
                detail::mask_for(level)(actual.data() + align, len, key, phase);
                ASSERT_EQ(expected, actual) << "level " << to_string(level) << " len " << len << " align " << align;
            }
        }
    }
}

TEST(mask, scalar_path_matches_the_rfc_definition_and_undoes_itself) {
    std::vector<std::byte> data(1000);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7);
    const auto original = data;
    const std::uint8_t key[4] = {1, 2, 3, 4};
    for (std::size_t phase = 0; phase < 4; ++phase) {
        detail::mask_scalar(data.data(), data.size(), key, phase);
        for (std::size_t i = 0; i < data.size(); ++i)
            ASSERT_EQ(data[i], original[i] ^ static_cast<std::byte>(key[(i + phase) % 4]));  // RFC 6455 §5.3
        apply_mask(data.data(), data.size(), key, phase);
        ASSERT_EQ(data, original);
    }
}

TEST(mask, a_payload_masked_in_pieces_equals_one_pass) {
    std::vector<std::byte> whole(777), pieces;
    for (std::size_t i = 0; i < whole.size(); ++i) whole[i] = static_cast<std::byte>(i);
    pieces = whole;
    const std::uint8_t key[4] = {9, 8, 7, 6};
    apply_mask(whole.data(), whole.size(), key, 0);
    std::size_t offset = 0;
    for (std::size_t piece : {1u, 2u, 3u, 5u, 13u, 100u, 653u}) {
        apply_mask(pieces.data() + offset, piece, key, offset & 3);
        offset += piece;
    }
    EXPECT_EQ(whole, pieces);
}

TEST(mask, apply_mask_short_inline_path_equals_scalar_for_every_phase) {
    std::mt19937 rng(7);
    std::vector<std::byte> source(256), expected(source.size()), actual(source.size());
    for (auto& b : source) b = static_cast<std::byte>(rng());
    const std::uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    for (std::size_t len = 0; len <= 130; ++len)
        for (std::size_t align = 0; align < 16; ++align)
            for (std::size_t phase = 0; phase < 4; ++phase) {
                std::copy(source.begin(), source.end(), expected.begin());
                std::copy(source.begin(), source.end(), actual.begin());
                detail::mask_scalar(expected.data() + align, len, key, phase);
                apply_mask(actual.data() + align, len, key, phase);
                ASSERT_EQ(expected, actual) << "len " << len << " align " << align << " phase " << phase;
            }
}
