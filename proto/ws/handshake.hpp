/// @file
/// The opening handshake's keys (RFC 6455 §4): the client's random
/// Sec-WebSocket-Key and the server's Sec-WebSocket-Accept, SHA-1 and base64
/// from OpenSSL.
#pragma once

#include <string>
#include <string_view>

namespace cnetmod::ws {

/// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) (§4.2.2).
std::string accept_key(std::string_view client_key);
/// A fresh client key: base64 of 16 random bytes (§4.1).
std::string generate_client_key();

}  // namespace cnetmod::ws
