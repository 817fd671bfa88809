/// @file
/// permessage-deflate (RFC 7692): the Sec-WebSocket-Extensions grammar, the
/// negotiation on both sides, and a per-thread libdeflate codec for messages
/// that go without context. Pure functions, no I/O.
///
/// Two codecs share the work. libdeflate compresses and inflates whole
/// buffers fast but keeps nothing between calls: it makes every message a
/// side sends without context takeover with a 32 KiB window, and the shared
/// forms of prepared and published messages. zlib (detail/deflate_stream.hpp)
/// keeps a window from one message to the next (context takeover, which
/// makes small messages shrink several times over) and honours windows
/// smaller than 32 KiB; a connection holds its zlib state only while it is
/// busy, and only the window's bytes while it is idle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cnetmod::ws {

// ---- Sec-WebSocket-Extensions (RFC 6455 §9.1) ----------------------------

/// One parameter of an extension: `name` or `name=value`; a quoted value is
/// stored unquoted and unescaped.
struct extension_param {
    std::string name;                  ///< the parameter's name
    std::optional<std::string> value;  ///< its value, if it has one
};

/// One element of the header: the extension's name and its parameters in order.
struct extension_offer {
    std::string name;                     ///< the extension's name
    std::vector<extension_param> params;  ///< its parameters, in order
};

/// Parses a Sec-WebSocket-Extensions value: comma-separated extensions, each
/// `token *( ";" param )`, param = token [ "=" ( token | quoted-string ) ], with
/// optional whitespace around the separators. Empty list elements are skipped
/// (RFC 9110 §5.6.1) and an empty header gives an empty list. Several header
/// lines are joined by the caller with ", ". Names compare case-sensitively, as
/// browsers and most servers send them in lower case. Returns std::nullopt when
/// the syntax is broken (including a quoted value that is not a token once
/// unescaped, which §9.1 forbids).
std::optional<std::vector<extension_offer>> parse_extensions(std::string_view header);

// ---- Negotiation (RFC 7692 §7.1) -----------------------------------------

/// The extension's name in Sec-WebSocket-Extensions.
inline constexpr std::string_view permessage_deflate_name = "permessage-deflate";

/// What both sides agreed to for permessage-deflate: whether each side's
/// compressor keeps its window across messages (context takeover, when its
/// *_no_context_takeover is false) and the largest window each may use
/// (§7.1.2). A side may send messages made by compress_message only when its
/// own *_no_context_takeover is true and its window is 15 bits (or the
/// message no longer than its window): each ends in a final DEFLATE block,
/// which a peer keeping one stream must not see.
struct deflate_agreement {
    bool server_no_context_takeover = false;   ///< the server's compressor resets its window after each message
    bool client_no_context_takeover = false;   ///< the client's compressor resets its window after each message
    std::uint8_t server_max_window_bits = 15;  ///< the server's largest window, log2 bytes (8..15)
    std::uint8_t client_max_window_bits = 15;  ///< the client's largest window, log2 bytes (8..15)
};

/// A server's acceptance of a permessage-deflate offer.
struct deflate_accept {
    std::string response;         ///< the Sec-WebSocket-Extensions value to send back
    deflate_agreement agreement;  ///< what was agreed
};

/// What this side wants of permessage-deflate (ws::options holds the same).
struct deflate_preferences {
    /// Keep windows across messages, both ways, where the peer does not
    /// forbid it; false asks for no context takeover both ways.
    bool context_takeover = true;
    /// The largest window, as log2 of its bytes (8..15), that this side
    /// compresses with and lets the peer compress with where the peer's
    /// offer lets it be limited.
    std::uint8_t window_bits = 15;
};

/// Server side: accepts the first permessage-deflate offer in
/// `extensions_header` and returns the response to send. An offer with an
/// unknown, duplicated or ill-valued parameter is declined and the next one
/// tried (RFC 7692 §5.1); every well-formed offer is accepted, with every
/// window size. The agreement:
/// - server_no_context_takeover / client_no_context_takeover: as offered,
///   and both added when `prefs` asks for no takeover (§7.1.1 lets a server
///   add them unasked);
/// - server_max_window_bits: the smaller of the offer's (15 when absent) and
///   prefs.window_bits, in the response when the offer named it or it is
///   below 15;
/// - client_max_window_bits: when the offer names it, the smaller of its
///   value (15 without one) and prefs.window_bits, in the response when
///   below 15; an offer that does not name it leaves the client's window at
///   15, so with prefs.window_bits below 15 the response adds
///   client_no_context_takeover (no 32 KiB window is kept for that client).
/// A window of 8 is never asked of the peer (9 instead): zlib's compressor
/// cannot keep one, and peers built on it fail to start; a peer that names
/// 8 for itself gets it, and this side compresses with 8 when asked to.
/// Returns std::nullopt when no offer is acceptable: answer without the extension.
std::optional<deflate_accept> negotiate_deflate_server(std::string_view extensions_header,
                                                       const deflate_preferences& prefs = {});

/// Client side: the offer to send for `prefs`. With context takeover (the
/// default) "permessage-deflate; client_max_window_bits", as browsers send
/// it; without, "permessage-deflate; client_no_context_takeover;
/// server_no_context_takeover"; a window below 15 adds
/// client_max_window_bits=N and server_max_window_bits=N (at least 9).
std::string deflate_client_offer(const deflate_preferences& prefs);
/// The offer without context takeover and with 32 KiB windows.
std::string_view deflate_client_offer() noexcept;

/// A client's reading of the server's answer (check_deflate_response).
struct deflate_client_result {
    bool negotiated = false;      ///< false: the server answered without the extension
    deflate_agreement agreement;  ///< what was agreed, when negotiated
};

/// Checks the server's Sec-WebSocket-Extensions answer to
/// deflate_client_offer(offered). An empty header means "not negotiated".
/// Anything the offer did not allow — another extension, more than one
/// element, an unknown or duplicated parameter, client_max_window_bits when
/// not offered or above the offered value, a server_max_window_bits above
/// the offered one or missing when offered, a bad window value, or a
/// missing server_no_context_takeover that was offered — returns an error
/// text; the client must then fail the connection (RFC 7692 §5.1,
/// RFC 6455 §4.1).
std::variant<deflate_client_result, std::string> check_deflate_response(std::string_view header,
                                                                        const deflate_preferences& offered);
/// The answer to deflate_client_offer() (no takeover, 32 KiB windows).
std::variant<deflate_client_result, std::string> check_deflate_response(std::string_view header);

// ---- The message codec (RFC 7692 §7.2) -----------------------------------
//
// Per-thread: one libdeflate compressor per level used and one decompressor,
// allocated on first use and freed at thread exit. Both functions throw
// std::bad_alloc only when memory runs out (for the codec or for `out`); bad
// input is a status, never an exception.

/// Compresses a whole message payload at `level` (clamped to 1..12) as a DEFLATE
/// stream of its own (see deflate_agreement for when a peer can take it) and appends
/// the frame payload to `out`, ready to send with RSV1 set. Returns the bytes
/// appended, or 0 (appending nothing) when the compressed form would not be
/// smaller than `payload`: send the message uncompressed then (RFC 7692 §6:
/// RSV1 marks each message compressed or not).
/// Per-thread libdeflate state; throws std::bad_alloc only when memory runs out.
std::size_t compress_message(std::span<const std::byte> payload, int level, std::string& out);

/// How decompress_message() ended.
enum class inflate_status {
    ok,        ///< the message was inflated and appended
    too_big,   ///< the message inflates to more than max_size bytes: close with 1009
    bad_data,  ///< not a valid DEFLATE stream: close with 1007
};

/// Inflates one compressed message — the payloads of all its frames
/// concatenated, without the 00 00 ff ff tail the sender removed — and appends
/// it to `out`. On an error `out` keeps its old contents. Never writes more than
/// `max_size` bytes: output of exactly max_size is accepted, one byte more is
/// too_big. One pass, never restarted: inflating stops where the output would
/// pass max_size, so a bomb costs at most max_size bytes of work. Memory
/// bound: `out` grows by the inflated size only; the output room is
/// uninitialised, reserved per thread, its pages touched only as written and
/// all but the first 2 MiB returned after a larger message; the input is copied into a per-thread
/// scratch buffer that keeps the size of the largest compressed message seen.
/// Throws std::bad_alloc only when memory runs out; bad input is a status.
inflate_status decompress_message(std::span<const std::byte> compressed, std::size_t max_size, std::string& out);

}  // namespace cnetmod::ws
