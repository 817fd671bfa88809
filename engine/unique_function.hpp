/// @file
/// A move-only, type-erased `void()` callable with inline storage for small
/// captures: what `post()` and `submit_to()` carry across threads and cores.
/// std::move_only_function is C++23 and absent from g++ 12's C++20 mode.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace cnetmod::detail {

class unique_function {
public:
    unique_function() noexcept = default;

    template <class F, class D = std::decay_t<F>, class = std::enable_if_t<!std::is_same_v<D, unique_function>>>
    unique_function(F&& f) {  // NOLINT: implicit by design, like std::function
        if constexpr (sizeof(D) <= inline_size && alignof(D) <= alignof(std::max_align_t) &&
                      std::is_nothrow_move_constructible_v<D>) {
            ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
            ops_ = &inline_ops<D>;
        } else {
            *reinterpret_cast<D**>(storage_) = new D(std::forward<F>(f));
            ops_ = &heap_ops<D>;
        }
    }

    unique_function(unique_function&& other) noexcept { take(other); }
    unique_function& operator=(unique_function&& other) noexcept {
        if (this != &other) {
            reset();
            take(other);
        }
        return *this;
    }
    unique_function(const unique_function&) = delete;
    unique_function& operator=(const unique_function&) = delete;
    ~unique_function() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }
    void operator()() { ops_->invoke(storage_); }

    void reset() noexcept {
        if (ops_) {
            ops_->destroy(storage_);
            ops_ = nullptr;
        }
    }

private:
    static constexpr std::size_t inline_size = 48;

    struct operations {
        void (*invoke)(void*);
        void (*move)(void* from, void* to) noexcept;
        void (*destroy)(void*) noexcept;
    };

    template <class D>
    static constexpr operations inline_ops{[](void* s) { (*static_cast<D*>(s))(); },
                                           [](void* from, void* to) noexcept {
                                               ::new (to) D(std::move(*static_cast<D*>(from)));
                                               static_cast<D*>(from)->~D();
                                           },
                                           [](void* s) noexcept { static_cast<D*>(s)->~D(); }};

    template <class D>
    static constexpr operations heap_ops{
        [](void* s) { (**static_cast<D**>(s))(); },
        [](void* from, void* to) noexcept { *static_cast<D**>(to) = *static_cast<D**>(from); },
        [](void* s) noexcept { delete *static_cast<D**>(s); }};

    void take(unique_function& other) noexcept {
        if (other.ops_) {
            other.ops_->move(other.storage_, storage_);
            ops_ = std::exchange(other.ops_, nullptr);
        }
    }

    alignas(std::max_align_t) unsigned char storage_[inline_size];
    const operations* ops_ = nullptr;
};

}  // namespace cnetmod::detail
