// The server side of the opening handshake (RFC 6455 §4.2.2), shared by
// the coroutine upgrade and the callback routes. Internal: not installed.
#pragma once

#include <cnetmod/proto/http/request_context.hpp>
#include <cnetmod/proto/ws/options.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <string>

namespace cnetmod::ws::detail {

// Refuses a request that is not a valid handshake: answers 400 (or 426
// with the version this server speaks) and throws http::request_rejected.
void require_handshake(http::request_context& rc);

struct handshake_answer {
    std::string subprotocol;      // selected, or empty
    bool deflate = false;         // permessage-deflate negotiated
    deflate_agreement agreement;  // as what
};
// Queues the 101 on the request's stream, with the subprotocol (only if the
// client offered it) and permessage-deflate (when `opts` enables it and the
// client offers a form it can honour). The caller then moves the stream
// out and calls handed_over().
handshake_answer answer_handshake(http::request_context& rc, const options& opts);
// The stream has been moved out of `rc` (or, with `moved` false, making the
// connection failed after the 101 was queued, and the connection can only be
// dropped): marks the request upgraded, so that the HTTP session ends
// without answering, and frees the request. Marking only now means the
// session never sees an upgraded request whose stream it still holds.
void handed_over(http::request_context& rc, bool moved = true) noexcept;

// Registers the WebSocket layer with HTTP's graceful shutdown (once).
void register_upgraded_with_http() noexcept;

}  // namespace cnetmod::ws::detail
