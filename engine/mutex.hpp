/// @file
/// A core-local coroutine mutex, FIFO-fair: unlock hands the lock straight to
/// the longest waiter, so no newcomer can overtake it. Not for use across
/// threads; cores share nothing and talk by runtime::submit_to instead.
///
///   auto guard = co_await m.scoped_lock();   // released when guard dies
#pragma once

#include <cnetmod/engine/waiter_queue.hpp>

#include <utility>

namespace cnetmod {

/// A core-local coroutine mutex, FIFO-fair: unlock() hands the lock straight to the longest waiter. Not for use
/// across threads.
class mutex {
public:
    /// Holds the lock from scoped_lock() and releases it when destroyed or by unlock().
    class guard {
    public:
        /// A guard that holds nothing.
        guard() noexcept = default;
        /// Takes over a lock already held on `m` (by try_lock()).
        explicit guard(mutex& m) noexcept : m_(&m) {}
        /// Takes over `other`'s lock, if any.
        guard(guard&& other) noexcept : m_(std::exchange(other.m_, nullptr)) {}
        /// Releases the lock held, if any, and takes over `other`'s.
        guard& operator=(guard&& other) noexcept {
            if (this != &other) {
                unlock();
                m_ = std::exchange(other.m_, nullptr);
            }
            return *this;
        }
        /// Releases the lock, if held.
        ~guard() { unlock(); }
        /// Whether this guard holds the lock.
        bool owns_lock() const noexcept { return m_ != nullptr; }
        /// Releases the lock now, if held; later calls do nothing.
        void unlock() noexcept {
            if (m_) std::exchange(m_, nullptr)->unlock();
        }

    private:
        mutex* m_ = nullptr;
    };

    mutex() = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;

    /// Takes the lock if it is free, without waiting; the caller must unlock() it.
    bool try_lock() noexcept {
        if (locked_) return false;
        locked_ = true;
        return true;
    }

    /// Awaits the lock and returns a guard that releases it.
    auto scoped_lock() noexcept {
        struct awaiter {
            explicit awaiter(mutex& owner) noexcept : m(owner) {}
            mutex& m;
            detail::queued_waiter node;
            bool await_ready() noexcept { return m.try_lock(); }
            void await_suspend(std::coroutine_handle<> h) noexcept {
                node.handle = h;
                node.ctx = io_context::current();
                m.waiters_.push(node);
            }
            guard await_resume() noexcept { return guard(m); }
            ~awaiter() { m.waiters_.unlink(node); }
        };
        return awaiter(*this);
    }

    /// Releases the lock: the longest waiter, if any, gets it and resumes from its context's ready queue, not inside
    /// unlock().
    void unlock() noexcept {
        // Ownership passes directly to the first waiter: the lock stays held.
        if (auto* next = waiters_.pop())
            detail::waiter_queue::wake(*next);
        else
            locked_ = false;
    }

    /// Whether anyone holds the lock.
    bool is_locked() const noexcept { return locked_; }

private:
    bool locked_ = false;
    detail::waiter_queue waiters_;
};

}  // namespace cnetmod
