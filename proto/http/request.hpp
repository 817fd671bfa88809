/// @file
/// An HTTP/1.1 request as parsed: method, target, version, header fields and
/// body. The method, target and header views point into the request's own
/// copy of the request head, so a request is self-contained and movable.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// HTTP/1.1 (RFC 9110, RFC 9112): the request parser, the response, the server and its routes, and the
/// upgrade to the protocols above it.
namespace cnetmod::http {

/// One header field of a request, as views into the request's head.
struct header_field {
    std::string_view name;   ///< the field name, as sent
    std::string_view value;  ///< the value, without leading and trailing whitespace
};

/// Strips optional whitespace (spaces and tabs) at both ends (RFC 9110 §5.6.3).
std::string_view trim_ows(std::string_view s) noexcept;
/// ASCII case-insensitive comparison, as header names and tokens require (RFC 9110 §5.1).
bool iequals(std::string_view a, std::string_view b) noexcept;
/// The value of `key` in a query string ("name=J%C3%B6rg&x=1"), percent-decoded
/// with '+' as a space (the form encoding browsers use); nullopt when the key
/// is absent or its value is not valid percent-encoding.
std::optional<std::string> query_param(std::string_view query, std::string_view key);
/// True when the comma-separated list `list` holds `token`, case-insensitively
/// (`Connection: keep-alive, Upgrade` holds "upgrade").
bool list_contains_token(std::string_view list, std::string_view token) noexcept;

/// An HTTP/1.1 request as parsed (parse_request_head): method, target, version, header fields and body. The views
/// point into the request's own copy of its head, so it is self-contained; move-only.
class request {
public:
    /// An empty request.
    request() = default;
    /// Takes over `other`'s head and body; the views follow.
    request(request&& other) noexcept;
    /// Takes over `other`'s head and body; the views follow.
    request& operator=(request&& other) noexcept;
    request(const request&) = delete;
    request& operator=(const request&) = delete;

    /// The method as sent: "GET".
    std::string_view method() const noexcept { return method_; }
    /// The request target as sent: "/chat?name=ann".
    std::string_view target() const noexcept { return target_; }
    /// The target's path ("/chat") and query ("name=ann", without the '?').
    std::string_view path() const noexcept { return path_; }
    /// The target's query, without the '?' ("name=ann"); empty when there is none.
    std::string_view query() const noexcept { return query_; }
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    int version_minor() const noexcept { return version_minor_; }
    /// Every header field, in the order sent.
    const std::vector<header_field>& headers() const noexcept { return headers_; }
    /// The first field named `name` (case-insensitive), or "" when absent.
    std::string_view header(std::string_view name) const noexcept;
    /// Whether a field named `name` (case-insensitive) is present.
    bool has_header(std::string_view name) const noexcept;
    /// The body, decoded when it was sent chunked.
    const std::string& body() const noexcept { return body_; }
    /// The body, to take or change.
    std::string& body() noexcept { return body_; }
    /// Whether the connection stays open after the response (RFC 9112 §9.3).
    bool keep_alive() const noexcept;

    /// Frees the request's storage, head and body (after a WebSocket upgrade, say); every view is empty afterwards.
    void release_storage() noexcept;

private:
    friend struct request_head_parser;
    void rebase(const char* old_base) noexcept;

    std::string head_;  // the raw request line and header fields
    std::string_view method_, target_, path_, query_;
    int version_minor_ = 1;
    std::vector<header_field> headers_;
    std::string body_;
};

}  // namespace cnetmod::http
