#include <cnetmod/engine/log.hpp>

#include <atomic>
#include <cstdio>
#include <memory>

namespace cnetmod {
namespace {

struct sink {
    log_level min_level = log_level::info;
    log_handler handler;  // empty: stderr
};

// Replaced whole, read with one atomic load: a message never sees half a change.
std::atomic<std::shared_ptr<const sink>>& current() {
    static std::atomic<std::shared_ptr<const sink>> s{std::make_shared<const sink>()};
    return s;
}

}  // namespace

std::string_view to_string(log_level level) noexcept {
    switch (level) {
        case log_level::debug:
            return "debug";
        case log_level::info:
            return "info";
        case log_level::warning:
            return "warning";
        case log_level::error:
            return "error";
    }
    return "unknown";
}

void set_log_handler(log_level min_level, log_handler handler) {
    current().store(std::make_shared<const sink>(sink{min_level, std::move(handler)}));
}

void log(log_level level, std::string_view message) noexcept {
    const std::shared_ptr<const sink> s = current().load();
    if (level < s->min_level) return;
    if (!s->handler) {
        std::fprintf(stderr, "cnetmod: %.*s\n", static_cast<int>(message.size()), message.data());
        return;
    }
    try {
        s->handler(level, message);
    } catch (...) {
        // a handler must not throw; what it could not take is lost
    }
}

}  // namespace cnetmod
