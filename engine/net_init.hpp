// net_init: process-wide set-up for networking, held for the life of main().
// It ignores SIGPIPE, so that writing to a socket the peer has closed is an
// EPIPE error on that connection rather than the death of the process.
#pragma once

namespace cnetmod {

class net_init {
public:
    net_init();
    ~net_init();
    net_init(const net_init&) = delete;
    net_init& operator=(const net_init&) = delete;
};

}  // namespace cnetmod
