#include <cnetmod/version.hpp>

namespace cnetmod {

std::string_view version() noexcept {
    return CNETMOD_VERSION;
}

}  // namespace cnetmod
