/// @file
/// HTTP status codes and their reason phrases (RFC 9110 §15).
#pragma once

#include <cstdint>
#include <string_view>

namespace cnetmod::http {

/// The status codes the library and its handlers use, each with its number (RFC 9110 §15).
enum class status : std::uint16_t {
    switching_protocols = 101,              ///< 101 Switching Protocols
    ok = 200,                               ///< 200 OK
    created = 201,                          ///< 201 Created
    accepted = 202,                         ///< 202 Accepted
    no_content = 204,                       ///< 204 No Content
    moved_permanently = 301,                ///< 301 Moved Permanently
    found = 302,                            ///< 302 Found
    see_other = 303,                        ///< 303 See Other
    not_modified = 304,                     ///< 304 Not Modified
    temporary_redirect = 307,               ///< 307 Temporary Redirect
    permanent_redirect = 308,               ///< 308 Permanent Redirect
    bad_request = 400,                      ///< 400 Bad Request
    unauthorized = 401,                     ///< 401 Unauthorized
    forbidden = 403,                        ///< 403 Forbidden
    not_found = 404,                        ///< 404 Not Found
    method_not_allowed = 405,               ///< 405 Method Not Allowed
    not_acceptable = 406,                   ///< 406 Not Acceptable
    request_timeout = 408,                  ///< 408 Request Timeout
    conflict = 409,                         ///< 409 Conflict
    gone = 410,                             ///< 410 Gone
    length_required = 411,                  ///< 411 Length Required
    payload_too_large = 413,                ///< 413 Content Too Large
    uri_too_long = 414,                     ///< 414 URI Too Long
    unsupported_media_type = 415,           ///< 415 Unsupported Media Type
    expectation_failed = 417,               ///< 417 Expectation Failed
    upgrade_required = 426,                 ///< 426 Upgrade Required
    too_many_requests = 429,                ///< 429 Too Many Requests
    request_header_fields_too_large = 431,  ///< 431 Request Header Fields Too Large
    internal_server_error = 500,            ///< 500 Internal Server Error
    not_implemented = 501,                  ///< 501 Not Implemented
    bad_gateway = 502,                      ///< 502 Bad Gateway
    service_unavailable = 503,              ///< 503 Service Unavailable
    gateway_timeout = 504,                  ///< 504 Gateway Timeout
    http_version_not_supported = 505,       ///< 505 HTTP Version Not Supported
};

/// The number of a status: 404 for status::not_found.
constexpr std::uint16_t code(status s) noexcept {
    return static_cast<std::uint16_t>(s);
}

/// The reason phrase of a status, "Not Found" for status::not_found.
std::string_view reason_phrase(status s) noexcept;

}  // namespace cnetmod::http
