/// @file
/// UTF-8 validation (RFC 3629), incremental: a text message is checked as its
/// bytes arrive, across frame and buffer boundaries, and fails at the first
/// byte that cannot be part of valid UTF-8 — not only at the end (RFC 6455
/// §8.1: fail fast). Whole characters go to simdjson's SIMD validator (its
/// best kernel for this CPU, chosen at run time); the at most 3 bytes of a
/// character cut by a chunk's end go through the scalar state machine, whose
/// state is all a validator keeps between chunks (one byte). The scalar
/// machine sits beside the SIMD path as the reference and tests prove them equal.
#pragma once

#include <cnetmod/proto/ws/mask.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cnetmod::ws {

/// An incremental UTF-8 validator (RFC 3629): fed a message in pieces, it fails at the first byte that cannot be part
/// of valid UTF-8. Its state is one byte.
class utf8_validator {
public:
    /// Feeds the next bytes; false once the input can no longer be valid UTF-8.
    bool feed(std::span<const std::byte> bytes) noexcept;
    /// The same with `text`'s bytes.
    bool feed(std::string_view text) noexcept { return feed(std::as_bytes(std::span(text.data(), text.size()))); }
    /// True when everything fed so far is valid and ends on a character boundary.
    bool complete() const noexcept { return state_ == accept; }
    /// Whether the input can no longer be valid UTF-8.
    bool failed() const noexcept { return state_ == reject; }
    /// Starts over, for a new message.
    void reset() noexcept { state_ = accept; }

    /// The state machine's states, exposed for the scalar reference path: accept (at a character boundary, all
    /// valid) and reject (invalid).
    ///@{
    static constexpr std::uint8_t accept = 0, reject = 12;
    ///@}

private:
    std::uint8_t state_ = accept;
};

/// Whether `bytes` are all valid UTF-8 (whole-buffer validation).
bool is_valid_utf8(std::span<const std::byte> bytes) noexcept;
/// The same for `text`'s bytes.
inline bool is_valid_utf8(std::string_view text) noexcept {
    return is_valid_utf8(std::as_bytes(std::span(text.data(), text.size())));
}

namespace detail {
// Runs the state machine over bytes from `state`; returns the new state.
std::uint8_t utf8_scalar(std::uint8_t state, const std::uint8_t* p, std::size_t n) noexcept;
// A leading part of p[0, n) that is all ASCII (bytes below 0x80), at a SIMD
// level: whole blocks, or all n bytes when the rest is ASCII too.
std::size_t ascii_prefix(const std::uint8_t* p, std::size_t n, simd_level level) noexcept;
// The state machine with ASCII runs skipped at one SIMD level, from `state`
// (the validator before issue 13; it tests ascii_prefix at every level).
std::uint8_t utf8_at_level(std::uint8_t state, const std::uint8_t* p, std::size_t n, simd_level level) noexcept;
// What utf8_validator::feed runs, from `state`: the state machine finishes a
// character the previous chunk cut, ASCII runs are skipped, simdjson
// validates the whole characters, and the state machine takes a character
// this chunk cuts. Returns the same state as utf8_scalar (reject for any
// invalid input).
std::uint8_t utf8_simd(std::uint8_t state, const std::uint8_t* p, std::size_t n) noexcept;
// Fewer bytes than this (after the ASCII run) go to the state machine, not
// simdjson: a simdjson call on under 64 bytes costs about 20 ns whatever the
// length, and the state machine is as fast up to about 20 bytes of
// multi-byte text (BM_utf8_short; bench/RESULTS.md, issue 13).
inline constexpr std::size_t utf8_simd_threshold = 20;
}  // namespace detail

}  // namespace cnetmod::ws
