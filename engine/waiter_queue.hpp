/// @file
/// The FIFO of suspended coroutines behind mutex and semaphore. A waiter is a
/// node in its awaiter (no allocation); a waiter whose frame is destroyed
/// while queued unlinks itself. Woken waiters resume through the running
/// context's ready queue, never inside the caller that woke them.
#pragma once

#include <cnetmod/engine/io_context.hpp>

#include <coroutine>

namespace cnetmod::detail {

struct queued_waiter {
    queued_waiter* prev = nullptr;
    queued_waiter* next = nullptr;
    std::coroutine_handle<> handle;
    io_context* ctx = nullptr;  // where to resume it
    bool linked = false;
};

class waiter_queue {
public:
    bool empty() const noexcept { return head_ == nullptr; }

    void push(queued_waiter& w) noexcept {
        w.prev = tail_;
        w.next = nullptr;
        if (tail_)
            tail_->next = &w;
        else
            head_ = &w;
        tail_ = &w;
        w.linked = true;
    }

    queued_waiter* pop() noexcept {
        queued_waiter* w = head_;
        if (w) unlink(*w);
        return w;
    }

    void unlink(queued_waiter& w) noexcept {
        if (!w.linked) return;
        (w.prev ? w.prev->next : head_) = w.next;
        (w.next ? w.next->prev : tail_) = w.prev;
        w.prev = w.next = nullptr;
        w.linked = false;
    }

    // Resumes `w` in its context's next ready step, or at once without a loop.
    static void wake(queued_waiter& w);

private:
    queued_waiter* head_ = nullptr;
    queued_waiter* tail_ = nullptr;
};

}  // namespace cnetmod::detail
