/// @file
/// net_init: process-wide set-up for networking, held for the life of main().
/// It ignores SIGPIPE, so that writing to a socket the peer has closed is an
/// EPIPE error on that connection rather than the death of the process.
#pragma once

namespace cnetmod {

/// Process-wide networking set-up: its constructor ignores SIGPIPE (a write to a closed socket fails with EPIPE
/// instead of killing the process). Make one at the start of main().
class net_init {
public:
    /// Ignores SIGPIPE for the whole process.
    net_init();
    /// Leaves SIGPIPE ignored.
    ~net_init();
    net_init(const net_init&) = delete;
    net_init& operator=(const net_init&) = delete;
};

}  // namespace cnetmod
