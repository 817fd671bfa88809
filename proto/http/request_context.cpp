#include <cnetmod/proto/http/request_context.hpp>

#include <algorithm>

namespace cnetmod::http {
namespace {

// base64 (RFC 4648) of exactly 16 bytes: 22 symbols and "==".
bool is_base64_of_16_bytes(std::string_view key) noexcept {
    if (key.size() != 24 || !key.ends_with("==")) return false;
    for (std::size_t i = 0; i < 22; ++i) {
        const char c = key[i];
        const bool ok =
            (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (!ok) return false;
    }
    // The last symbol carries 2 bits of data and 4 zero bits: only A, Q, g, w.
    const char last = key[21];
    return last == 'A' || last == 'Q' || last == 'g' || last == 'w';
}

}  // namespace

const request& request_context::empty_request() noexcept {
    static const request empty;
    return empty;
}

response& request_context::discarded_response() noexcept {
    thread_local response discarded;
    return discarded;
}

bool request_context::is_websocket_upgrade() const noexcept {
    const request& req_ = req();
    // RFC 6455 §4.2.1 / §11.3.1: the key and the version are single-valued;
    // a request carrying two of either is not a valid handshake.
    auto once = [&](std::string_view name) {
        return std::count_if(req_.headers().begin(), req_.headers().end(),
                             [&](const header_field& h) { return iequals(h.name, name); }) == 1;
    };
    return req_.method() == "GET" && list_contains_token(req_.header("Connection"), "upgrade") &&
           iequals(req_.header("Upgrade"), "websocket") && is_base64_of_16_bytes(req_.header("Sec-WebSocket-Key")) &&
           req_.header("Sec-WebSocket-Version") == "13" && once("Sec-WebSocket-Key") && once("Sec-WebSocket-Version");
}

bool request_context::is_websocket_version_mismatch() const noexcept {
    const request& req_ = req();
    const auto version = req_.header("Sec-WebSocket-Version");
    return req_.method() == "GET" && iequals(req_.header("Upgrade"), "websocket") && !version.empty() &&
           version != "13";
}

}  // namespace cnetmod::http
