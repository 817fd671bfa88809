// A core-local counting semaphore, FIFO-fair: a release hands its unit
// straight to the longest waiter.
//
//   auto guard = co_await s.scoped_acquire();   // released when guard dies
#pragma once

#include <cnetmod/engine/waiter_queue.hpp>

#include <cstddef>
#include <utility>

namespace cnetmod {

class semaphore {
public:
    class guard {
    public:
        guard() noexcept = default;
        explicit guard(semaphore& s) noexcept : s_(&s) {}
        guard(guard&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
        guard& operator=(guard&& other) noexcept {
            if (this != &other) {
                release();
                s_ = std::exchange(other.s_, nullptr);
            }
            return *this;
        }
        ~guard() { release(); }
        bool owns() const noexcept { return s_ != nullptr; }
        void release() noexcept {
            if (s_) std::exchange(s_, nullptr)->release();
        }

    private:
        semaphore* s_ = nullptr;
    };

    explicit semaphore(std::size_t initial) noexcept : available_(initial) {}
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;

    bool try_acquire() noexcept {
        // Waiters queued first keep their turn.
        if (available_ == 0 || !waiters_.empty()) return false;
        --available_;
        return true;
    }

    auto scoped_acquire() noexcept {
        struct awaiter {
            explicit awaiter(semaphore& owner) noexcept : s(owner) {}
            semaphore& s;
            detail::queued_waiter node;
            bool await_ready() noexcept { return s.try_acquire(); }
            void await_suspend(std::coroutine_handle<> h) noexcept {
                node.handle = h;
                node.ctx = io_context::current();
                s.waiters_.push(node);
            }
            guard await_resume() noexcept { return guard(s); }
            ~awaiter() { s.waiters_.unlink(node); }
        };
        return awaiter(*this);
    }

    void release() noexcept {
        if (auto* next = waiters_.pop())
            detail::waiter_queue::wake(*next);
        else
            ++available_;
    }

    std::size_t available() const noexcept { return available_; }

private:
    std::size_t available_;
    detail::waiter_queue waiters_;
};

}  // namespace cnetmod
