/// @file
/// Per-io_context objects, keyed by type: a layer above the engine keeps one
/// object per core (the WebSocket layer's list of connections, say) without
/// the engine naming that layer. The object is made on first use and
/// destroyed with its context, after the ring is gone.
///
///   struct my_core_state { ... };
///   my_core_state& s = context_local<my_core_state>(ctx);          // made on first use
///   my_core_state* p = find_context_local<my_core_state>(ctx);     // nullptr if never made
///
/// Not for use across threads: only the context's own thread touches its objects.
#pragma once

#include <cnetmod/engine/io_context.hpp>

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace cnetmod {

namespace detail {

// A small number per type that asks for context-local storage, the same for
// every context of the process (so a lookup is an index, not a search).
std::size_t next_context_local_index() noexcept;
template <class T>
std::size_t context_local_index() noexcept {
    static const std::size_t index = next_context_local_index();
    return index;
}

// The objects of one context, destroyed in the reverse order of their making.
class context_locals {
public:
    context_locals() = default;
    context_locals(const context_locals&) = delete;
    context_locals& operator=(const context_locals&) = delete;
    ~context_locals() {
        for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
            slot& s = slots_[*it];
            s.destroy(s.object);
        }
    }

    void* find(std::size_t index) const noexcept { return index < slots_.size() ? slots_[index].object : nullptr; }
    void put(std::size_t index, void* object, void (*destroy)(void*)) {
        if (index >= slots_.size()) slots_.resize(index + 1);
        made_.reserve(made_.size() + 1);
        slots_[index] = slot{object, destroy};
        made_.push_back(index);
    }

    static std::unique_ptr<context_locals>& of(io_context& ctx) noexcept { return ctx.locals_; }

private:
    struct slot {
        void* object = nullptr;
        void (*destroy)(void*) = nullptr;
    };
    std::vector<slot> slots_;
    std::vector<std::size_t> made_;
};

}  // namespace detail

/// The T of `ctx`, or nullptr if none was made yet.
template <class T>
T* find_context_local(io_context& ctx) noexcept {
    const auto& locals = detail::context_locals::of(ctx);
    return locals ? static_cast<T*>(locals->find(detail::context_local_index<T>())) : nullptr;
}

/// The T of `ctx`, value-initialized on first use; destroyed with `ctx`.
template <class T>
T& context_local(io_context& ctx) {
    if (T* existing = find_context_local<T>(ctx)) return *existing;
    auto& locals = detail::context_locals::of(ctx);
    if (!locals) locals = std::make_unique<detail::context_locals>();
    auto made = std::make_unique<T>();
    T& result = *made;
    locals->put(detail::context_local_index<T>(), made.get(), [](void* p) { delete static_cast<T*>(p); });
    made.release();
    return result;
}

}  // namespace cnetmod
