// What an SQE's user_data points to: a completion whose handler receives the
// CQE's result and flags. A plain function pointer, not a virtual call or a
// std::function, keeps the hot path free of indirection and allocation.
// A user_data of 0 marks an SQE whose CQE is ignored (linked timeouts,
// cancellations).
#pragma once

#include <cstdint>

namespace cnetmod::detail {

enum class completion_kind : std::uint8_t {
    io,             // an ordinary operation; ignored while a ring is torn down
    message_batch,  // a MSG_RING delivery; freed, not run, while a ring is torn down
};

// The hot path's user_data carries no completion object: the low three bits
// of an 8-byte-aligned object's address name what completed (a socket's
// receive, its send, ...) and the object's own dispatcher runs. A user_data
// whose low bits are 0 is a `completion*` (the slower paths: io_operation,
// the wake-up read, cross-core batches).
inline constexpr std::uint64_t tag_mask = 7;
// Tag 4 is an async_sleep's timeout (engine/timer.cpp); every other tag is
// one of the socket core's operations (engine/detail/socket_core.cpp).
inline constexpr unsigned sleep_tag = 4;
void sleep_completion(void* object, int result);
void socket_completion(void* object, unsigned tag, int result, std::uint32_t flags);
inline std::uint64_t tagged(const void* object, unsigned tag) noexcept {
    return reinterpret_cast<std::uint64_t>(object) | tag;
}

struct completion {
    using handler = void (*)(completion* self, int result, std::uint32_t flags);

    handler on_complete = nullptr;
    completion_kind kind = completion_kind::io;

    completion() = default;
    explicit completion(handler h, completion_kind k = completion_kind::io) : on_complete(h), kind(k) {}
};

}  // namespace cnetmod::detail
