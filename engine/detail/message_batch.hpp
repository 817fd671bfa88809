// A batch of functions carried from one core's ring to another's by one
// IORING_OP_MSG_RING: the target's CQE names the batch, whose functions then
// run in order on the target core.
#pragma once

#include <cnetmod/engine/detail/completion.hpp>
#include <cnetmod/engine/unique_function.hpp>

#include <vector>

namespace cnetmod {
class io_context;
}

namespace cnetmod::detail {

struct message_batch : completion {
    // Receives the source's CQE when the MSG_RING fails (the target's CQ was
    // full): the batch is queued again, ahead of anything newer.
    struct send_failure : completion {
        message_batch* batch = nullptr;
    };

    message_batch(io_context& from, io_context& to);

    io_context* source;
    io_context* target;
    send_failure failure;
    std::vector<unique_function> functions;

    static void on_delivered(completion* c, int result, std::uint32_t flags);
    static void on_send_failed(completion* c, int result, std::uint32_t flags);
};

}  // namespace cnetmod::detail
