// http::request_context::upgrade_to_websocket: the server side of the
// opening handshake (RFC 6455 §4.2.2). Defined here, in the WebSocket layer,
// so that proto/http knows nothing of WebSocket beyond the declaration.
#include <cnetmod/proto/http/request_context.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/handshake.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>

namespace cnetmod::http {

task<ws::connection> request_context::upgrade_to_websocket() {
    const ws::options defaults;  // lives in this frame while the upgrade runs
    co_return co_await upgrade_to_websocket(defaults);
}

task<ws::connection> request_context::upgrade_to_websocket(const ws::options& opts) {
    if (!is_websocket_upgrade()) {
        if (is_websocket_version_mismatch()) {
            // §4.4: name the versions this server speaks.
            resp().set_status(status::upgrade_required);
            resp().set_header("Sec-WebSocket-Version", "13");
            resp().set_body("426 Upgrade Required: WebSocket version 13 only\n");
            throw request_rejected("cnetmod: WebSocket handshake of an unsupported version");
        }
        resp().set_status(status::bad_request);
        resp().set_body("400 Bad Request: not a WebSocket handshake\n");
        throw request_rejected("cnetmod: not a WebSocket handshake");
    }
    std::string selected;
    // §4.2.2: select a subprotocol only if the client offered it.
    if (!opts.subprotocol.empty() && list_contains_token(req().header("Sec-WebSocket-Protocol"), opts.subprotocol))
        selected = opts.subprotocol;
    std::string out =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    out += ws::accept_key(req().header("Sec-WebSocket-Key"));
    out += "\r\n";
    if (!selected.empty()) {
        out += "Sec-WebSocket-Protocol: ";
        out += selected;
        out += "\r\n";
    }
    // RFC 7692: permessage-deflate when this side enables it and the client
    // offers it in a form libdeflate can honour (several header lines are
    // one comma-separated list, RFC 9110 §5.3).
    bool deflate = false;
    if (opts.enable_compression) {
        std::string offers;
        for (const auto& f : req().headers()) {
            if (!iequals(f.name, "Sec-WebSocket-Extensions")) continue;
            if (!offers.empty()) offers += ", ";
            offers += f.value;
        }
        if (auto accepted = ws::negotiate_deflate_server(offers)) {
            out += "Sec-WebSocket-Extensions: ";
            out += accepted->response;
            out += "\r\n";
            deflate = true;
        }
    }
    out += "\r\n";
    stream_.queue(out);
    mark_upgraded();
    release_request();  // the request and response are not needed for the life of the socket
    ws::connection conn(std::move(stream_), ws::role::server, opts, std::move(selected), deflate);
    ws::detail::register_server_connection(conn, server_tag_);
    co_return conn;
}

}  // namespace cnetmod::http
