/// @file
/// The response a handler fills: status, header fields, body. The server
/// adds Content-Length (and Connection) when it sends it.
#pragma once

#include <cnetmod/proto/http/status.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cnetmod::http {

/// The response a handler fills: status (200 by default), header fields, body.
class response {
public:
    /// Sets the status.
    void set_status(status s) noexcept { status_ = s; }
    /// The status.
    status get_status() const noexcept { return status_; }

    /// Sets a field, replacing any of the same name.
    void set_header(std::string_view name, std::string_view value);
    /// Adds a field even if one of that name exists (Set-Cookie, say).
    void add_header(std::string_view name, std::string_view value);
    /// The first field named `name` (case-insensitive), or "" when absent.
    std::string_view header(std::string_view name) const noexcept;
    /// Every field set, name and value, in order.
    const std::vector<std::pair<std::string, std::string>>& headers() const noexcept { return headers_; }

    /// Sets the body.
    void set_body(std::string body) { body_ = std::move(body); }
    /// The body, to fill.
    std::string& body() noexcept { return body_; }
    /// The body.
    const std::string& body() const noexcept { return body_; }

    /// Appends the serialized response to `out`. Without a body (HEAD, 204,
    /// 304, 1xx) no body bytes are written.
    void serialize(std::string& out, bool keep_alive, bool omit_body) const;

private:
    status status_ = status::ok;
    std::vector<std::pair<std::string, std::string>> headers_;
    std::string body_;
};

}  // namespace cnetmod::http
