/// @file
/// A core-local counting semaphore, FIFO-fair: a release hands its unit
/// straight to the longest waiter.
///
///   auto guard = co_await s.scoped_acquire();   // released when guard dies
#pragma once

#include <cnetmod/engine/waiter_queue.hpp>

#include <cstddef>
#include <utility>

namespace cnetmod {

/// A core-local counting semaphore, FIFO-fair: release() hands its unit straight to the longest waiter. Not for use
/// across threads.
class semaphore {
public:
    /// Holds one unit from scoped_acquire() and releases it when destroyed or by release().
    class guard {
    public:
        /// A guard that holds nothing.
        guard() noexcept = default;
        /// Takes over a unit already acquired from `s` (by try_acquire()).
        explicit guard(semaphore& s) noexcept : s_(&s) {}
        /// Takes over `other`'s unit, if any.
        guard(guard&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
        /// Releases the unit held, if any, and takes over `other`'s.
        guard& operator=(guard&& other) noexcept {
            if (this != &other) {
                release();
                s_ = std::exchange(other.s_, nullptr);
            }
            return *this;
        }
        /// Releases the unit, if held.
        ~guard() { release(); }
        /// Whether this guard holds a unit.
        bool owns() const noexcept { return s_ != nullptr; }
        /// Releases the unit now, if held; later calls do nothing.
        void release() noexcept {
            if (s_) std::exchange(s_, nullptr)->release();
        }

    private:
        semaphore* s_ = nullptr;
    };

    /// A semaphore with `initial` units available.
    explicit semaphore(std::size_t initial) noexcept : available_(initial) {}
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;

    /// Takes a unit if one is available and nobody waits, without waiting; the caller must release() it.
    bool try_acquire() noexcept {
        // Waiters queued first keep their turn.
        if (available_ == 0 || !waiters_.empty()) return false;
        --available_;
        return true;
    }

    /// Awaits a unit and returns a guard that releases it.
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

    /// Returns a unit: the longest waiter, if any, gets it and resumes from its context's ready queue, not inside
    /// release().
    void release() noexcept {
        if (auto* next = waiters_.pop())
            detail::waiter_queue::wake(*next);
        else
            ++available_;
    }

    /// Units free now.
    std::size_t available() const noexcept { return available_; }

private:
    std::size_t available_;
    detail::waiter_queue waiters_;
};

}  // namespace cnetmod
