// HTTP's share of the engine's per-core layer counters (engine/metrics.hpp):
// indices 0 up to layer_counters_end; the layers above start there. A header
// of its own, not installed, so that the WebSocket layer's counting (the
// transport-free machine among it) knows where its indices start without
// including the HTTP server.
#pragma once

#include <cstddef>

namespace cnetmod::http::detail {

inline constexpr std::size_t layer_counters_end = 8;

}  // namespace cnetmod::http::detail
