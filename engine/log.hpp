/// @file
/// The library's diagnostics — an exception that escaped a handler or a
/// spawned task, a core stopped by one, the Redis broker's state — go
/// through one hook, which the embedder may route to its own logging. The
/// default writes each line to stderr as "cnetmod: <message>".
///
///   cnetmod::set_log_handler(cnetmod::log_level::warning,
///       [](cnetmod::log_level level, std::string_view message) { my_logger.log(level, message); });
///
/// The handler may run on any core's thread, several at once, and must not
/// throw; messages are rare (never one per message or per byte). Setting it
/// is thread-safe, but a handler being replaced may still be running on
/// another thread for a moment.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace cnetmod {

/// How serious a diagnostic is; a handler gets the messages at its level and above.
enum class log_level : std::uint8_t {
    debug,    ///< details for whoever debugs the library
    info,     ///< a state change worth knowing: the broker connected again
    warning,  ///< something failed and was handled: a handler threw (500 or 1011 sent), the broker lost Redis
    error,    ///< something stopped: a core ended by an exception
};

/// "debug", "info", "warning", "error".
std::string_view to_string(log_level level) noexcept;

/// What set_log_handler() takes: called with each message's level and text.
using log_handler = std::function<void(log_level, std::string_view message)>;

/// Messages at `min_level` and above go to `handler` (the message has no
/// "cnetmod: " prefix and no newline); an empty handler restores the
/// default, stderr. The default level is info.
void set_log_handler(log_level min_level, log_handler handler);

/// Sends one message through the hook (for the library's own layers).
void log(log_level level, std::string_view message) noexcept;

}  // namespace cnetmod
