/// @file
/// Pure parsing of HTTP/1.1 requests (RFC 9112): the request head, found and
/// parsed whole once its terminating blank line has arrived, and a chunked
/// body decoded incrementally. No I/O; the server feeds them from its
/// receive buffers.
#pragma once

#include <cnetmod/proto/http/request.hpp>
#include <cnetmod/proto/http/status.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace cnetmod::http {

/// Bounds on what a request may hold; past one the request is refused with the status named.
struct parser_limits {
    std::size_t max_head_bytes = 8 * 1024;     ///< request line and header fields (431 beyond)
    std::size_t max_header_fields = 100;       ///< header fields (431 beyond)
    std::size_t max_body_bytes = 1024 * 1024;  ///< body, after chunked decoding (413 beyond)
    /// A chunk's extensions (";name=value" after its size) are read and
    /// ignored, but bounded per chunk (400 beyond); a chunked body's trailer
    /// fields are bounded like a head: max_head_bytes in all and
    /// max_header_fields lines (431 beyond).
    std::size_t max_chunk_extension_bytes = 4 * 1024;
};

/// Why a request was refused, and with which status.
struct parse_error {
    status code;              ///< the status to answer with
    std::string_view reason;  ///< what was wrong, for the response body and logs
};

/// The offset just past the blank line that ends a request head in
/// `buffered`, or npos. `from` lets a caller resume where it last looked.
std::size_t find_head_end(std::string_view buffered, std::size_t from = 0) noexcept;

/// Parses a complete head (request line, fields, final CRLF CRLF), taking
/// ownership of its bytes. Fails with 400 for malformed syntax, 431 for too
/// many fields, 505 for an HTTP version other than 1.0 or 1.1, 501 for a
/// transfer coding other than chunked.
std::optional<parse_error> parse_request_head(std::string head, request& out, const parser_limits& limits);

/// How the body of a parsed request is delimited.
struct body_framing {
    /// The ways a body is delimited.
    enum class kind {
        none,                ///< no body
        length,              ///< Content-Length bytes
        chunked              ///< Transfer-Encoding: chunked
    } type = kind::none;     ///< how this request's body is delimited
    std::size_t length = 0;  ///< the body's bytes, for kind::length
};
/// Reads Content-Length / Transfer-Encoding (RFC 9112 §6.3): conflicting or
/// invalid lengths are 400, a body over the limit 413.
std::optional<parse_error> body_framing_of(const request& r, const parser_limits& limits, body_framing& out);

/// Decodes a chunked body (RFC 9112 §7.1) as bytes arrive.
class chunked_decoder {
public:
    /// A decoder bounded by `limits` (chunk extensions, trailer fields).
    explicit chunked_decoder(const parser_limits& limits = {}) noexcept
        : max_extension_(limits.max_chunk_extension_bytes),
          max_trailer_bytes_(limits.max_head_bytes),
          max_trailer_lines_(limits.max_header_fields) {}
    /// Consumes what it can of `in`, appending chunk data to `body`; returns
    /// the bytes consumed. Check done() and error() after each call.
    /// The body is bounded by `max_body` bytes (413 beyond).
    std::size_t feed(std::string_view in, std::string& body, std::size_t max_body);
    /// Whether the last chunk and the trailer have been read.
    bool done() const noexcept { return state_ == state::done; }
    /// Why decoding failed, or nullopt.
    const std::optional<parse_error>& error() const noexcept { return error_; }

private:
    enum class state { size, size_extension, size_lf, data, data_cr, data_lf, trailer, trailer_lf, done };
    state state_ = state::size;
    std::size_t remaining_ = 0;
    std::size_t size_digits_ = 0;
    std::size_t trailer_line_ = 0;   // bytes of the trailer line being read
    std::size_t extension_ = 0;      // bytes of the chunk extension being read
    std::size_t trailer_bytes_ = 0;  // bytes of trailer fields so far
    std::size_t trailer_lines_ = 0;
    std::size_t max_extension_, max_trailer_bytes_, max_trailer_lines_;
    std::optional<parse_error> error_;
};

}  // namespace cnetmod::http
