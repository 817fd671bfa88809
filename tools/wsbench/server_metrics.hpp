// wsbench --metrics-url: a server's counters in the Prometheus text
// exposition format (version 0.0.4, what cnetmod's ws::metrics_route
// serves), fetched before and after a run, and their difference.
//
// The fetch is a plain blocking HTTP/1.1 GET with a deadline: it runs
// twice per run, outside the measured window, so it need not share the load
// threads' io_uring loops. The parser is a pure function over the text, so
// the test feeds it strings.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsbench {

// An exposition read into one value per series, summed over the `core`
// label: `name`, or `name{label="value",...}` with the other labels as the
// text had them.
struct exposition {
    std::map<std::string, double> series;
    std::map<std::string, std::string> types;  // family -> "counter", "gauge", ... from the # TYPE lines
};

// Reads the text format: `# ...` lines and blank lines are skipped, a
// sample is `name{labels} value [timestamp]` (labels optional, values
// quoted with \\, \" and \n escapes). A line that is none of these throws
// std::invalid_argument naming the line.
exposition parse_exposition(std::string_view text);

// The run's change: counters (and histogram and summary parts) as after
// minus before (a counter that went down was reset: its after value), gauges
// as they were after the run.
struct metrics_delta {
    std::map<std::string, double> counters;
    std::map<std::string, double> gauges;

    // The sum of the counter deltas of `family` over all its label sets; nullopt when the server has none.
    std::optional<double> family(std::string_view name) const;
};
metrics_delta difference(const exposition& before, const exposition& after);

// http://host[:port][/path]; the port defaults to 80, the path to /metrics.
struct http_url {
    std::string host;  // without the brackets of an IPv6 literal
    std::string port;
    std::string path;
};
// Throws std::invalid_argument saying what is wrong.
http_url parse_http_url(std::string_view url);

// GET `url`; the body of a 200 answer (Content-Length, chunked, or up to
// the end of the connection). Throws std::runtime_error naming what failed:
// the address, the connection, the deadline, or the status line of any other answer.
std::string http_get(const http_url& url, std::chrono::milliseconds timeout);

}  // namespace wsbench
