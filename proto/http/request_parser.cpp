#include <cnetmod/proto/http/request_parser.hpp>

#include <algorithm>
#include <cstring>

namespace cnetmod::http {
namespace {

// RFC 9110 §5.6.2: tchar.
constexpr bool is_tchar(unsigned char c) noexcept {
    if (c >= '0' && c <= '9') return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
    return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

constexpr bool is_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (!is_tchar(c)) return false;
    return true;
}

// Field values: visible characters, spaces, tabs and obs-text; no CR, LF or NUL.
constexpr bool is_field_value(std::string_view s) noexcept {
    for (unsigned char c : s)
        if (c < 0x20 ? c != '\t' : c == 0x7f) return false;
    return true;
}

// origin-form "/path?query", absolute-form "http://host/path", or "*".
constexpr bool is_request_target(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (c <= 0x20 || c == 0x7f) return false;
    return s.front() == '/' || s == "*" || s.starts_with("http://") || s.starts_with("https://");
}

}  // namespace

std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::optional<std::string> query_param(std::string_view query, std::string_view key) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) != key) continue;
        const std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        std::string out;
        out.reserve(raw.size());
        for (std::size_t i = 0; i < raw.size(); ++i) {
            if (raw[i] == '+') {
                out += ' ';
            } else if (raw[i] == '%') {
                if (i + 2 >= raw.size()) return std::nullopt;
                const int hi = hex(raw[i + 1]), lo = hex(raw[i + 2]);
                if (hi < 0 || lo < 0) return std::nullopt;
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
            } else {
                out += raw[i];
            }
        }
        return out;
    }
    return std::nullopt;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if (x >= 'A' && x <= 'Z') x |= 0x20;
        if (y >= 'A' && y <= 'Z') y |= 0x20;
        if (x != y) return false;
    }
    return true;
}

bool list_contains_token(std::string_view list, std::string_view token) noexcept {
    while (!list.empty()) {
        const auto comma = list.find(',');
        if (iequals(trim_ows(list.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

// ---- request ----

request::request(request&& other) noexcept {
    *this = std::move(other);
}

request& request::operator=(request&& other) noexcept {
    if (this == &other) return *this;
    const char* old_base = other.head_.data();
    head_ = std::move(other.head_);
    method_ = other.method_;
    target_ = other.target_;
    path_ = other.path_;
    query_ = other.query_;
    version_minor_ = other.version_minor_;
    headers_ = std::move(other.headers_);
    body_ = std::move(other.body_);
    rebase(old_base);  // a short head moves by copy: re-point the views
    return *this;
}

void request::rebase(const char* old_base) noexcept {
    const char* base = head_.data();
    if (base == old_base) return;
    auto move_view = [&](std::string_view& v) {
        if (!v.empty()) v = std::string_view(base + (v.data() - old_base), v.size());
    };
    move_view(method_);
    move_view(target_);
    move_view(path_);
    move_view(query_);
    for (auto& h : headers_) {
        move_view(h.name);
        move_view(h.value);
    }
}

std::string_view request::header(std::string_view name) const noexcept {
    for (const auto& h : headers_)
        if (iequals(h.name, name)) return h.value;
    return {};
}

bool request::has_header(std::string_view name) const noexcept {
    return std::any_of(headers_.begin(), headers_.end(), [&](const header_field& h) { return iequals(h.name, name); });
}

bool request::keep_alive() const noexcept {
    const auto connection = header("Connection");
    if (version_minor_ == 0) return list_contains_token(connection, "keep-alive");
    return !list_contains_token(connection, "close");
}

void request::release_storage() noexcept {
    method_ = target_ = path_ = query_ = {};
    std::vector<header_field>().swap(headers_);
    std::string().swap(head_);
    std::string().swap(body_);
}

// ---- head ----

std::size_t find_head_end(std::string_view buffered, std::size_t from) noexcept {
    from = from >= 3 ? from - 3 : 0;
    const auto pos = buffered.find("\r\n\r\n", from);
    return pos == std::string_view::npos ? pos : pos + 4;
}

struct request_head_parser {
    static std::optional<parse_error> parse(std::string head, request& out, const parser_limits& limits) {
        out.head_ = std::move(head);
        std::string_view rest = out.head_;
        // Request line: method SP request-target SP HTTP-version CRLF (RFC 9112 §3).
        const auto line_end = rest.find("\r\n");
        if (line_end == std::string_view::npos) return parse_error{status::bad_request, "no request line"};
        std::string_view line = rest.substr(0, line_end);
        rest.remove_prefix(line_end + 2);
        const auto sp1 = line.find(' ');
        const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
        if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
            return parse_error{status::bad_request, "malformed request line"};
        out.method_ = line.substr(0, sp1);
        out.target_ = line.substr(sp1 + 1, sp2 - sp1 - 1);
        const std::string_view version = line.substr(sp2 + 1);
        if (!is_token(out.method_)) return parse_error{status::bad_request, "invalid method"};
        if (!is_request_target(out.target_)) return parse_error{status::bad_request, "invalid request target"};
        if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' || version[5] < '0' ||
            version[5] > '9' || version[7] < '0' || version[7] > '9')
            return parse_error{status::bad_request, "malformed HTTP version"};
        if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
            return parse_error{status::http_version_not_supported, "only HTTP/1.0 and HTTP/1.1"};
        out.version_minor_ = version[7] - '0';
        std::string_view target = out.target_;
        if (target.starts_with("http://") || target.starts_with("https://")) {
            // absolute-form: the path starts at the first '/' after the authority.
            const auto authority = target.find("//") + 2;
            const auto slash = target.find('/', authority);
            target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
        }
        const auto q = target.find('?');
        out.path_ = target.substr(0, q);
        out.query_ = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);

        // Header fields until the empty line (RFC 9112 §5).
        out.headers_.clear();
        for (;;) {
            const auto end = rest.find("\r\n");
            if (end == std::string_view::npos) return parse_error{status::bad_request, "unterminated header field"};
            if (end == 0) break;
            std::string_view field = rest.substr(0, end);
            rest.remove_prefix(end + 2);
            if (field.front() == ' ' || field.front() == '\t')
                return parse_error{status::bad_request, "obsolete line folding"};  // RFC 9112 §5.2
            const auto colon = field.find(':');
            if (colon == std::string_view::npos) return parse_error{status::bad_request, "header field without ':'"};
            const std::string_view name = field.substr(0, colon);
            if (!is_token(name)) return parse_error{status::bad_request, "invalid header field name"};
            const std::string_view value = trim_ows(field.substr(colon + 1));
            if (!is_field_value(value)) return parse_error{status::bad_request, "invalid header field value"};
            if (out.headers_.size() == limits.max_header_fields)
                return parse_error{status::request_header_fields_too_large, "too many header fields"};
            out.headers_.push_back({name, value});
        }
        // RFC 9112 §3.2: a client must send Host in HTTP/1.1, exactly once.
        if (out.version_minor_ == 1) {
            const auto hosts = std::count_if(out.headers_.begin(), out.headers_.end(),
                                             [](const header_field& h) { return iequals(h.name, "Host"); });
            if (hosts != 1) return parse_error{status::bad_request, "HTTP/1.1 request needs exactly one Host"};
        }
        return std::nullopt;
    }
};

std::optional<parse_error> parse_request_head(std::string head, request& out, const parser_limits& limits) {
    if (head.size() > limits.max_head_bytes)
        return parse_error{status::request_header_fields_too_large, "request head too large"};
    return request_head_parser::parse(std::move(head), out, limits);
}

std::optional<parse_error> body_framing_of(const request& r, const parser_limits& limits, body_framing& out) {
    out = {};
    bool has_length = false;
    std::size_t length = 0;
    bool has_te = false;
    std::size_t chunked = 0;      // how many times chunked is named
    bool chunked_last = false;    // the last coding named is chunked
    bool unknown_coding = false;  // a coding other than chunked (none is implemented)
    for (const auto& h : r.headers()) {
        if (iequals(h.name, "Transfer-Encoding")) {
            // RFC 9112 §6.1: the codings of every Transfer-Encoding line form
            // one list, in order; empty elements are allowed (RFC 9110 §5.6.1).
            if (h.value.empty()) return parse_error{status::bad_request, "empty Transfer-Encoding"};
            has_te = true;
            std::string_view list = h.value;
            while (true) {
                const auto comma = list.find(',');
                const std::string_view coding = trim_ows(list.substr(0, comma));
                if (!coding.empty()) {
                    chunked_last = iequals(coding, "chunked");
                    if (chunked_last)
                        ++chunked;
                    else
                        unknown_coding = true;
                }
                if (comma == std::string_view::npos) break;
                list.remove_prefix(comma + 1);
            }
            continue;
        }
        if (!iequals(h.name, "Content-Length")) continue;
        std::size_t v = 0;
        if (h.value.empty()) return parse_error{status::bad_request, "empty Content-Length"};
        for (char c : h.value) {
            if (c < '0' || c > '9' || v > (SIZE_MAX - 9) / 10)
                return parse_error{status::bad_request, "invalid Content-Length"};
            v = v * 10 + static_cast<std::size_t>(c - '0');
        }
        if (has_length && v != length) return parse_error{status::bad_request, "conflicting Content-Length"};
        has_length = true;
        length = v;
    }
    if (has_te) {
        // RFC 9112 §6.1: HTTP/1.0 has no Transfer-Encoding, so its framing is
        // faulty; with Content-Length too the request is a smuggling attempt
        // (§6.3 item 3). Either way the connection closes after the error.
        if (r.version_minor() == 0) return parse_error{status::bad_request, "Transfer-Encoding in an HTTP/1.0 request"};
        if (has_length) return parse_error{status::bad_request, "both Transfer-Encoding and Content-Length"};
        if (unknown_coding) return parse_error{status::not_implemented, "unsupported transfer coding"};
        // §6.3 item 4: chunked exactly once, as the final coding, or the
        // length cannot be known.
        if (chunked != 1 || !chunked_last)
            return parse_error{status::bad_request, "chunked must be named once, as the final transfer coding"};
        out.type = body_framing::kind::chunked;
        return std::nullopt;
    }
    if (has_length) {
        if (length > limits.max_body_bytes) return parse_error{status::payload_too_large, "body too large"};
        out.type = length ? body_framing::kind::length : body_framing::kind::none;
        out.length = length;
    }
    return std::nullopt;
}

// ---- chunked ----

std::size_t chunked_decoder::feed(std::string_view in, std::string& body, std::size_t max_body) {
    std::size_t i = 0;
    auto fail = [&](status s, std::string_view why) {
        error_ = parse_error{s, why};
        return i;
    };
    while (i < in.size() && state_ != state::done && !error_) {
        const char c = in[i];
        switch (state_) {
            case state::size: {
                int digit = (c >= '0' && c <= '9')   ? c - '0'
                            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                     : -1;
                if (digit >= 0) {
                    if (++size_digits_ > 15) return fail(status::payload_too_large, "chunk size too large");
                    remaining_ = remaining_ * 16 + static_cast<std::size_t>(digit);
                    ++i;
                } else if (size_digits_ == 0) {
                    return fail(status::bad_request, "invalid chunk size");
                } else if (c == ';') {
                    state_ = state::size_extension;
                    extension_ = 0;
                    ++i;
                } else if (c == '\r') {
                    state_ = state::size_lf;
                    ++i;
                } else {
                    return fail(status::bad_request, "invalid chunk size");
                }
                break;
            }
            case state::size_extension:
                // Extensions are ignored, but a peer may not make us read them forever.
                if (c == '\r')
                    state_ = state::size_lf;
                else if (++extension_ > max_extension_)
                    return fail(status::bad_request, "chunk extension too long");
                ++i;
                break;
            case state::size_lf:
                if (c != '\n') return fail(status::bad_request, "chunk size line without LF");
                ++i;
                if (remaining_ == 0) {
                    state_ = state::trailer;
                    trailer_line_ = 0;
                } else {
                    if (body.size() + remaining_ > max_body) return fail(status::payload_too_large, "body too large");
                    state_ = state::data;
                }
                break;
            case state::data: {
                const std::size_t take = std::min(remaining_, in.size() - i);
                body.append(in.substr(i, take));
                i += take;
                remaining_ -= take;
                if (remaining_ == 0) state_ = state::data_cr;
                break;
            }
            case state::data_cr:
                if (c != '\r') return fail(status::bad_request, "chunk data without CRLF");
                state_ = state::data_lf;
                ++i;
                break;
            case state::data_lf:
                if (c != '\n') return fail(status::bad_request, "chunk data without CRLF");
                state_ = state::size;
                size_digits_ = 0;
                ++i;
                break;
            case state::trailer:
                // Trailer fields are read and ignored, up to the empty line.
                // bounded like a head: in bytes and in lines.
                if (c == '\r') {
                    state_ = state::trailer_lf;
                } else {
                    ++trailer_line_;
                    if (++trailer_bytes_ > max_trailer_bytes_)
                        return fail(status::request_header_fields_too_large, "trailer too large");
                }
                ++i;
                break;
            case state::trailer_lf:
                if (c != '\n') return fail(status::bad_request, "trailer without LF");
                ++i;
                if (trailer_line_ == 0) {
                    state_ = state::done;
                } else {
                    if (++trailer_lines_ > max_trailer_lines_)
                        return fail(status::request_header_fields_too_large, "too many trailer fields");
                    trailer_line_ = 0;
                    state_ = state::trailer;
                }
                break;
            case state::done:
                break;
        }
    }
    return i;
}

}  // namespace cnetmod::http
