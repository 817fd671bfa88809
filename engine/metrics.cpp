// The per-thread pointers that counting goes through. Kept apart from the
// reactor so that code which counts (the WebSocket machine) links without a
// loop, as the fuzz targets do.
#include <cnetmod/engine/metrics.hpp>

namespace cnetmod::detail {

namespace {
// This thread's spare layer counters, for counts made when no loop runs here.
thread_local core_counter spare_layers[layer_counter_count];
}  // namespace

thread_local constinit core_counter* current_layers = nullptr;

core_counter* spare_layer_counters() noexcept {
    return spare_layers;
}

}  // namespace cnetmod::detail
