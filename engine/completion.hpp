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

struct completion {
    using handler = void (*)(completion* self, int result, std::uint32_t flags);

    handler on_complete = nullptr;
    completion_kind kind = completion_kind::io;

    completion() = default;
    explicit completion(handler h, completion_kind k = completion_kind::io) : on_complete(h), kind(k) {}
};

}  // namespace cnetmod::detail
