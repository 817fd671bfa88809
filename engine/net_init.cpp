#include <cnetmod/engine/net_init.hpp>

#include <csignal>

namespace cnetmod {

net_init::net_init() {
    std::signal(SIGPIPE, SIG_IGN);
}
net_init::~net_init() = default;

}  // namespace cnetmod
