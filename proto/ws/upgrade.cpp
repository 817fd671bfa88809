// The WebSocket layer's side of the boundary with HTTP: the server side of
// the opening handshake (RFC 6455 §4.2.2) as upgrade_protocol<websocket_protocol>,
// and its entry in HTTP's registry of upgraded connections, which a
// server's graceful shutdown walks (1001 to each, RFC 6455 §7.4.1).
#include <cnetmod/proto/ws/detail/deflate_stream.hpp>
#include <cnetmod/proto/ws/detail/metrics.hpp>
#include <cnetmod/proto/ws/detail/server_handshake.hpp>
#include <cnetmod/proto/ws/handshake.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>
#include <cnetmod/proto/ws/upgrade.hpp>

#include <optional>

namespace cnetmod::http {
namespace {

// A server's graceful shutdown reaches the connections it upgraded through
// this entry, registered with HTTP by the first upgrade.
upgraded_connections websocket_connections{
    .close =
        [](const void* server, std::chrono::milliseconds grace) {
            ws::detail::close_server_connections(server, ws::close_code::going_away, "server shutting down", grace);
        },
    .count = [](const void* server) noexcept { return ws::detail::count_server_connections(server); },
};

void register_with_http() noexcept {
    static const bool registered = (register_upgraded_connections(websocket_connections), true);
    (void)registered;
}

}  // namespace

using websocket_upgrade = upgrade_protocol<websocket_protocol>;

task<ws::connection> websocket_upgrade::upgrade(request_context& rc) {
    const ws::options defaults;  // lives in this frame while the upgrade runs
    co_return co_await upgrade(rc, defaults);
}

task<ws::connection> websocket_upgrade::upgrade(request_context& rc, const ws::options& opts) {
    ws::detail::require_handshake(rc);
    auto answer = ws::detail::answer_handshake(rc, opts);
    register_with_http();
    std::optional<ws::connection> made;
    try {
        if (answer.deflate)
            made.emplace(std::move(rc.stream()), ws::role::server, opts, std::move(answer.subprotocol),
                         answer.agreement);
        else
            made.emplace(std::move(rc.stream()), ws::role::server, opts, std::move(answer.subprotocol));
    } catch (...) {
        ws::detail::handed_over(rc, false);
        throw;
    }
    ws::detail::handed_over(rc);
    ws::connection conn = std::move(*made);
    ws::detail::register_server_connection(conn, rc.server_tag());
    co_return conn;
}

}  // namespace cnetmod::http

namespace cnetmod::ws::detail {

void register_upgraded_with_http() noexcept {
    http::register_with_http();
}

void require_handshake(http::request_context& rc) {
    using namespace http;
    if (rc.is_websocket_upgrade()) return;
    if (rc.is_websocket_version_mismatch()) {
        count(handshake_bad_version);
        // §4.4: name the versions this server speaks.
        rc.resp().set_status(status::upgrade_required);
        rc.resp().set_header("Sec-WebSocket-Version", "13");
        rc.resp().set_body("426 Upgrade Required: WebSocket version 13 only\n");
        throw request_rejected("cnetmod: WebSocket handshake of an unsupported version");
    }
    count(handshake_not_websocket);
    rc.resp().set_status(status::bad_request);
    rc.resp().set_body("400 Bad Request: not a WebSocket handshake\n");
    throw request_rejected("cnetmod: not a WebSocket handshake");
}

handshake_answer answer_handshake(http::request_context& rc, const options& opts) {
    using namespace http;
    handshake_answer answer;
    // §4.2.2: select a subprotocol only if the client offered it.
    if (!opts.subprotocol.empty() && list_contains_token(rc.req().header("Sec-WebSocket-Protocol"), opts.subprotocol))
        answer.subprotocol = opts.subprotocol;
    std::string out =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    out += accept_key(rc.req().header("Sec-WebSocket-Key"));
    out += "\r\n";
    if (!answer.subprotocol.empty()) {
        out += "Sec-WebSocket-Protocol: ";
        out += answer.subprotocol;
        out += "\r\n";
    }
    // RFC 7692: permessage-deflate when this side enables it and the client
    // offers it (several header lines are one comma-separated list, RFC 9110
    // §5.3).
    if (opts.enable_compression) {
        std::string offers;
        for (const auto& f : rc.req().headers()) {
            if (!iequals(f.name, "Sec-WebSocket-Extensions")) continue;
            if (!offers.empty()) offers += ", ";
            offers += f.value;
        }
        // Over the core's compression memory budget, new connections keep no windows.
        deflate_preferences prefs = preferences_of(opts);
        if (detail::compression_memory_in_use() >= opts.compression_memory_budget) prefs.context_takeover = false;
        if (auto accepted = negotiate_deflate_server(offers, prefs)) {
            out += "Sec-WebSocket-Extensions: ";
            out += accepted->response;
            out += "\r\n";
            answer.deflate = true;
            answer.agreement = accepted->agreement;
        }
    }
    out += "\r\n";
    rc.stream().queue(out);
    return answer;
}

void handed_over(http::request_context& rc, bool moved) noexcept {
    count(moved ? handshakes_ok : handshake_failed);
    rc.mark_upgraded();
    if (moved) rc.release_request();  // the request and response are not needed for the life of the socket
}

}  // namespace cnetmod::ws::detail
