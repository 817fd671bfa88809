/// @file
/// Everything of the WebSocket layer, with the HTTP server it upgrades from.
#pragma once

#include <cnetmod/proto/http/server.hpp>
#include <cnetmod/proto/ws/client.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/handshake.hpp>
#include <cnetmod/proto/ws/machine.hpp>
#include <cnetmod/proto/ws/mask.hpp>
#include <cnetmod/proto/ws/metrics.hpp>
#include <cnetmod/proto/ws/options.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>
#include <cnetmod/proto/ws/prepared_message.hpp>
#include <cnetmod/proto/ws/pubsub.hpp>
#include <cnetmod/proto/ws/socket.hpp>
#include <cnetmod/proto/ws/upgrade.hpp>
#include <cnetmod/proto/ws/utf8.hpp>
