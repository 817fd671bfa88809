#include "wsbench/server_metrics.hpp"

#include <fmt/core.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace wsbench {

namespace {

bool name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool name_char(char c) {
    return name_start(c) || (c >= '0' && c <= '9');
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

[[noreturn]] void bad_line(std::string_view line, std::string_view why) {
    throw std::invalid_argument(fmt::format("not the Prometheus text format ({}): \"{}\"", why, line.substr(0, 80)));
}

// `name="value",...` up to the closing brace, the `core` label left out.
// `rest` starts after the opening brace and ends after the closing one.
std::string read_labels(std::string_view line, std::string_view& rest) {
    std::string kept;
    for (;;) {
        rest = trim(rest);
        if (!rest.empty() && rest.front() == '}') {
            rest.remove_prefix(1);
            return kept;
        }
        std::size_t n = 0;
        while (n < rest.size() && name_char(rest[n])) ++n;
        if (n == 0) bad_line(line, "a label name");
        const std::string_view label = rest.substr(0, n);
        rest = trim(rest.substr(n));
        if (rest.size() < 2 || rest[0] != '=' || rest[1] != '"') bad_line(line, "label=\"value\"");
        rest.remove_prefix(2);
        std::size_t end = 0;
        while (end < rest.size() && rest[end] != '"') end += rest[end] == '\\' ? 2 : 1;
        if (end >= rest.size()) bad_line(line, "an unterminated label value");
        const std::string_view value = rest.substr(0, end);  // still escaped, as the text had it
        rest = trim(rest.substr(end + 1));
        if (label != "core") {
            if (!kept.empty()) kept += ',';
            kept.append(label).append("=\"").append(value).append("\"");
        }
        if (!rest.empty() && rest.front() == ',') rest.remove_prefix(1);
    }
}

// Go's and Python's clients write these three spellings; strtod reads them too, but also hex and "infinity".
std::optional<double> read_value(std::string_view word) {
    if (word == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (word == "+Inf" || word == "Inf") return std::numeric_limits<double>::infinity();
    if (word == "-Inf") return -std::numeric_limits<double>::infinity();
    const std::string text(word);
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size()) return std::nullopt;
    return v;
}

// The family a sample belongs to: its own name when a # TYPE line names
// it, else without the suffix a counter (OpenMetrics), histogram or summary gives its samples.
std::string_view type_of(const exposition& e, std::string_view name) {
    if (auto it = e.types.find(std::string(name)); it != e.types.end()) return it->second;
    for (std::string_view suffix : {"_total", "_bucket", "_count", "_sum"}) {
        if (!name.ends_with(suffix)) continue;
        if (auto it = e.types.find(std::string(name.substr(0, name.size() - suffix.size()))); it != e.types.end())
            return it->second;
    }
    return name.ends_with("_total") ? "counter" : "untyped";
}

bool counts_up(std::string_view type) {
    return type == "counter" || type == "histogram" || type == "summary";
}

}  // namespace

exposition parse_exposition(std::string_view text) {
    exposition e;
    while (!text.empty()) {
        const std::size_t eol = text.find('\n');
        const std::string_view line = trim(text.substr(0, eol));
        text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
        if (line.empty()) continue;
        if (line.front() == '#') {
            // "# TYPE name type"; every other comment (HELP, free text) is skipped.
            std::string_view rest = trim(line.substr(1));
            if (!rest.starts_with("TYPE ")) continue;
            rest = trim(rest.substr(5));
            const std::size_t space = rest.find_first_of(" \t");
            if (space == std::string_view::npos) continue;
            e.types[std::string(rest.substr(0, space))] = std::string(trim(rest.substr(space)));
            continue;
        }
        if (!name_start(line.front())) bad_line(line, "a metric name");
        std::size_t n = 1;
        while (n < line.size() && name_char(line[n])) ++n;
        std::string key(line.substr(0, n));
        std::string_view rest = line.substr(n);
        if (!rest.empty() && rest.front() == '{') {
            rest.remove_prefix(1);
            const std::string labels = read_labels(line, rest);
            if (!labels.empty()) key += '{' + labels + '}';
        }
        rest = trim(rest);
        const std::string_view word = rest.substr(0, rest.find_first_of(" \t"));  // a timestamp may follow
        const auto value = read_value(word);
        if (!value) bad_line(line, "a sample value");
        e.series[key] += *value;
    }
    return e;
}

std::optional<double> metrics_delta::family(std::string_view name) const {
    std::optional<double> sum;
    for (auto it = counters.lower_bound(std::string(name)); it != counters.end(); ++it) {
        const std::string_view key = it->first;
        if (!key.starts_with(name)) break;
        if (key.size() != name.size() && key[name.size()] != '{') continue;
        sum = sum.value_or(0) + it->second;
    }
    return sum;
}

metrics_delta difference(const exposition& before, const exposition& after) {
    metrics_delta d;
    for (const auto& [key, value] : after.series) {
        const std::string_view name = std::string_view(key).substr(0, key.find('{'));
        if (!counts_up(type_of(after, name))) {
            d.gauges[key] = value;
            continue;
        }
        // A series first seen after the run started from 0 (cnetmod lists close codes once they occur).
        const auto old = before.series.find(key);
        const double start = old == before.series.end() ? 0 : old->second;
        d.counters[key] = value >= start ? value - start : value;
    }
    return d;
}

http_url parse_http_url(std::string_view url) {
    if (url.starts_with("https://")) throw std::invalid_argument("https:// is not supported; use http://");
    if (!url.starts_with("http://")) throw std::invalid_argument("expected http://host[:port][/path]");
    std::string_view rest = url.substr(7);
    const std::size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    http_url u;
    u.path = slash == std::string_view::npos ? "/metrics" : std::string(rest.substr(slash));
    if (authority.starts_with('[')) {  // an IPv6 literal
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) throw std::invalid_argument("an unclosed [ in the host");
        u.host = authority.substr(1, close - 1);
        authority.remove_prefix(close + 1);
        if (!authority.empty() && authority.front() != ':') throw std::invalid_argument("text after the ]");
    } else {
        u.host = authority.substr(0, authority.find(':'));
        authority.remove_prefix(u.host.size());
    }
    if (u.host.empty()) throw std::invalid_argument("no host");
    u.port = authority.empty() ? "80" : std::string(authority.substr(1));
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (u.port.empty() || u.port.size() > 5 || !std::all_of(u.port.begin(), u.port.end(), digit) ||
        std::stoul(u.port) == 0 || std::stoul(u.port) > 65535)
        throw std::invalid_argument(fmt::format("a bad port \"{}\"", u.port));
    return u;
}

namespace {

struct socket_fd {
    int fd = -1;
    explicit socket_fd(int f) : fd(f) {}
    socket_fd(const socket_fd&) = delete;
    socket_fd& operator=(const socket_fd&) = delete;
    ~socket_fd() {
        if (fd >= 0) ::close(fd);
    }
};

using clock = std::chrono::steady_clock;

// Waits for `events` on `fd` until `until`; throws when the deadline passes.
void wait_for(int fd, short events, clock::time_point until, const char* doing) {
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now()).count();
        if (left <= 0) throw std::runtime_error(fmt::format("timed out {}", doing));
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, static_cast<int>(left));
        if (r > 0) return;
        if (r < 0 && errno != EINTR) throw std::runtime_error(fmt::format("poll: {}", std::strerror(errno)));
    }
}

// A non-blocking connection to the first address that answers, each try bounded by the deadline.
int connect_to(const http_url& url, clock::time_point until) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int r = ::getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found); r != 0)
        throw std::runtime_error(fmt::format("cannot resolve {}: {}", url.host, ::gai_strerror(r)));
    std::string error = "no address";
    for (addrinfo* a = found; a; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        int err = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
        if (err == EINPROGRESS) {
            try {
                wait_for(fd, POLLOUT, until, "connecting");
            } catch (...) {
                ::close(fd);
                ::freeaddrinfo(found);
                throw;
            }
            socklen_t len = sizeof err;
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
        if (err == 0) {
            ::freeaddrinfo(found);
            return fd;
        }
        error = std::strerror(err);
        ::close(fd);
    }
    ::freeaddrinfo(found);
    throw std::runtime_error(fmt::format("cannot connect to {}:{}: {}", url.host, url.port, error));
}

// The value of header `name` (case-insensitive) in `head`, or empty.
std::string header(std::string_view head, std::string_view name) {
    while (!head.empty()) {
        const std::size_t eol = head.find("\r\n");
        const std::string_view line = head.substr(0, eol);
        head = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);
        const std::size_t colon = line.find(':');
        if (colon != name.size()) continue;
        if (std::equal(name.begin(), name.end(), line.begin(),
                       [](char a, char b) { return (a | 0x20) == (b | 0x20); }))  // header names are ASCII
            return std::string(trim(line.substr(colon + 1)));
    }
    return {};
}

// A chunked body decoded (RFC 9112 §7.1), or nullopt while it is not whole.
std::optional<std::string> dechunk(std::string_view in) {
    std::string body;
    for (;;) {
        const std::size_t eol = in.find("\r\n");
        if (eol == std::string_view::npos) return std::nullopt;
        const std::string size_text(in.substr(0, in.find_first_of(";\r")));  // chunk extensions are ignored
        char* end = nullptr;
        const unsigned long size = std::strtoul(size_text.c_str(), &end, 16);
        if (size_text.empty() || *end != '\0') throw std::runtime_error("a bad chunk size in the answer");
        in.remove_prefix(eol + 2);
        if (size == 0) return body;  // trailers, if any, are not needed
        if (in.size() < size + 2) return std::nullopt;
        body.append(in.substr(0, size));
        in.remove_prefix(size + 2);
    }
}

// The body once `answer` holds all of it (or `eof` ends it), else nullopt.
std::optional<std::string> body_of(std::string_view answer, bool eof) {
    const std::size_t end = answer.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        if (eof) throw std::runtime_error("the connection ended inside the answer's header");
        return std::nullopt;
    }
    const std::string_view head = answer.substr(0, end);
    const std::string_view status = head.substr(0, head.find("\r\n"));
    if (!status.starts_with("HTTP/1.") || status.substr(status.find(' ') + 1, 3) != "200")
        throw std::runtime_error(fmt::format("the server answered \"{}\"", status));
    const std::string_view rest = answer.substr(end + 4);
    if (header(head, "Transfer-Encoding").find("chunked") != std::string::npos) {
        auto body = dechunk(rest);
        if (!body && eof) throw std::runtime_error("the connection ended inside a chunked answer");
        return body;
    }
    if (const std::string length = header(head, "Content-Length"); !length.empty()) {
        char* end = nullptr;
        const std::size_t n = std::strtoull(length.c_str(), &end, 10);
        if (*end != '\0') throw std::runtime_error(fmt::format("a bad Content-Length \"{}\"", length));
        if (rest.size() >= n) return std::string(rest.substr(0, n));
        if (eof) throw std::runtime_error("the connection ended before the Content-Length was read");
        return std::nullopt;
    }
    if (eof) return std::string(rest);
    return std::nullopt;
}

}  // namespace

std::string http_get(const http_url& url, std::chrono::milliseconds timeout) {
    const auto until = clock::now() + timeout;
    socket_fd s(connect_to(url, until));
    const std::string host = url.host.find(':') != std::string::npos ? '[' + url.host + ']' : url.host;
    const std::string request = fmt::format(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nAccept: text/plain\r\nUser-Agent: wsbench\r\n"
        "Connection: close\r\n\r\n",
        url.path, host, url.port);
    for (std::size_t sent = 0; sent < request.size();) {
        const ssize_t n = ::send(s.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            wait_for(s.fd, POLLOUT, until, "sending the request");
        } else {
            throw std::runtime_error(fmt::format("sending the request: {}", std::strerror(errno)));
        }
    }
    constexpr std::size_t max_answer = std::size_t{256} << 20;
    std::string answer;
    char buffer[65536];
    for (;;) {
        const ssize_t n = ::recv(s.fd, buffer, sizeof buffer, 0);
        if (n > 0) {
            answer.append(buffer, static_cast<std::size_t>(n));
            if (answer.size() > max_answer) throw std::runtime_error("an answer of more than 256 MiB");
            if (auto body = body_of(answer, false)) return *body;
        } else if (n == 0) {
            return *body_of(answer, true);
        } else if (errno == EAGAIN || errno == EINTR) {
            wait_for(s.fd, POLLIN, until, "waiting for the answer");
        } else {
            throw std::runtime_error(fmt::format("reading the answer: {}", std::strerror(errno)));
        }
    }
}

}  // namespace wsbench
