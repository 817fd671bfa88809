/// @file
/// A point in time by which an operation must finish. Every awaitable I/O
/// operation of the engine accepts one; when it passes, the operation fails
/// with std::errc::timed_out.
#pragma once

#include <linux/time_types.h>

#include <chrono>

namespace cnetmod {

/// A point in time by which an operation must finish; the default, none(), never passes.
struct deadline {
    using clock = std::chrono::steady_clock;  ///< CLOCK_MONOTONIC on Linux, as io_uring's timeouts

    /// The time; clock::time_point::max() when no deadline is set.
    clock::time_point at = clock::time_point::max();

    /// Whether this is a real deadline rather than none().
    constexpr bool is_set() const noexcept { return at != clock::time_point::max(); }
    /// No deadline: the operation may take as long as it takes.
    static constexpr deadline none() noexcept { return {}; }
};

/// A deadline `d` from now.
template <class Rep, class Period>
deadline timeout(std::chrono::duration<Rep, Period> d) {
    return deadline{deadline::clock::now() + std::chrono::duration_cast<deadline::clock::duration>(d)};
}

namespace detail {
inline __kernel_timespec to_kernel_timespec(std::chrono::nanoseconds d) noexcept {
    if (d.count() < 0) d = std::chrono::nanoseconds{0};
    __kernel_timespec ts{};
    ts.tv_sec = static_cast<long long>(d.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long long>(d.count() % 1'000'000'000);
    return ts;
}
// The absolute CLOCK_MONOTONIC time of a deadline, for IORING_TIMEOUT_ABS.
inline __kernel_timespec to_kernel_timespec(deadline d) noexcept {
    return to_kernel_timespec(std::chrono::duration_cast<std::chrono::nanoseconds>(d.at.time_since_epoch()));
}
}  // namespace detail

}  // namespace cnetmod
