// io_context's public face: each call forwards to the reactor that holds the
// ring (engine/detail/reactor.cpp).
#include <cnetmod/engine/context_local.hpp>
#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/io_context.hpp>

#include <utility>

namespace cnetmod {

io_context::io_context(io_context_options options) : reactor_(std::make_unique<detail::reactor>(*this, options)) {}

io_context::~io_context() {
    // Detached coroutines destroyed here still reach the reactor through
    // reactor_of(*this), so it stays whole until they are gone.
    reactor_->tear_down();
    locals_.reset();  // the layers' per-core objects, after the ring and everything that named them
}

void io_context::run() {
    reactor_->run();
}
void io_context::stop() noexcept {
    reactor_->stop();
}
bool io_context::stop_requested() const noexcept {
    return reactor_->stop_requested();
}
void io_context::post(detail::unique_function fn) {
    reactor_->post(std::move(fn));
}

const io_context_features& io_context::features() const noexcept {
    return reactor_->features();
}
const io_context_options& io_context::options() const noexcept {
    return reactor_->options();
}
std::size_t io_context::core() const noexcept {
    return reactor_->core();
}
runtime* io_context::owner_runtime() const noexcept {
    return reactor_->owner_runtime();
}
std::optional<registered_buffer> io_context::acquire_registered_buffer() noexcept {
    return reactor_->acquire_registered_buffer();
}

std::uint64_t io_context::enter_calls() const noexcept {
    return reactor_->enter_calls();
}
std::uint64_t io_context::completions() const noexcept {
    return reactor_->completions();
}
std::uint64_t io_context::sqes_prepared() const noexcept {
    return reactor_->sqes_prepared();
}
engine_metrics io_context::metrics() const noexcept {
    return reactor_->metrics();
}

}  // namespace cnetmod
