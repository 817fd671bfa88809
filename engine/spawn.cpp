#include <cnetmod/engine/spawn.hpp>

#include <cstdio>
#include <exception>
#include <typeinfo>

namespace cnetmod::detail {

void report_escaped_exception(std::exception_ptr e, const std::source_location& where) noexcept {
    const char* what = "unknown exception";
    const char* type = "non-standard exception";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        what = ex.what();
        type = typeid(ex).name();
        std::fprintf(stderr, "cnetmod: exception escaped a task spawned at %s:%u (%s): %s [%s]\n", where.file_name(),
                     static_cast<unsigned>(where.line()), where.function_name(), what, type);
        return;
    } catch (...) {
    }
    std::fprintf(stderr, "cnetmod: exception escaped a task spawned at %s:%u (%s): %s\n", where.file_name(),
                 static_cast<unsigned>(where.line()), where.function_name(), type);
}

}  // namespace cnetmod::detail
