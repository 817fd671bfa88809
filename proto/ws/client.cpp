#include <cnetmod/engine/tcp_stream.hpp>
#include <cnetmod/proto/http/request.hpp>
#include <cnetmod/proto/http/request_parser.hpp>
#include <cnetmod/proto/ws/client.hpp>
#include <cnetmod/proto/ws/handshake.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <system_error>

#include <charconv>
#include <memory>
#include <stdexcept>
#include <variant>
#include <vector>

namespace cnetmod::ws {

url parse_url(std::string_view text) {
    url u;
    const auto scheme_end = text.find("://");
    if (scheme_end == std::string_view::npos)
        throw std::invalid_argument("cnetmod: '" + std::string(text) + "' is not a URL (expected ws://host:port/path)");
    u.scheme = std::string(text.substr(0, scheme_end));
    if (u.scheme != "ws" && u.scheme != "wss")
        throw std::invalid_argument("cnetmod: unsupported scheme '" + u.scheme + "' (ws:// or wss://)");
    u.port = u.scheme == "wss" ? 443 : 80;
    std::string_view rest = text.substr(scheme_end + 3);
    const auto slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
        u.target = std::string(rest.substr(slash));
        if (u.target.front() == '?') u.target.insert(0, "/");
    }
    if (authority.empty()) throw std::invalid_argument("cnetmod: URL '" + std::string(text) + "' has no host");
    std::string_view port_text;
    if (authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) throw std::invalid_argument("cnetmod: unterminated IPv6 address in URL");
        u.host = std::string(authority.substr(1, close - 1));
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') throw std::invalid_argument("cnetmod: malformed URL authority");
            port_text = authority.substr(close + 2);
        }
    } else {
        const auto colon = authority.rfind(':');
        u.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    }
    if (u.host.empty()) throw std::invalid_argument("cnetmod: URL '" + std::string(text) + "' has no host");
    if (!port_text.empty() || (authority.back() == ':')) {
        unsigned value = 0;
        auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
        if (ec != std::errc{} || p != port_text.data() + port_text.size() || value == 0 || value > 65535)
            throw std::invalid_argument("cnetmod: invalid port in URL '" + std::string(text) + "'");
        u.port = static_cast<std::uint16_t>(value);
    }
    return u;
}

namespace {

// The status line and fields of the server's handshake answer.
struct handshake_response {
    std::string status_line;
    int status = 0;
    std::vector<std::pair<std::string, std::string>> fields;
    std::string_view field(std::string_view name) const {
        for (const auto& [n, v] : fields)
            if (http::iequals(n, name)) return v;
        return {};
    }
};

handshake_response parse_response_head(std::string_view head) {
    handshake_response r;
    auto line_end = head.find("\r\n");
    r.status_line = std::string(head.substr(0, line_end));
    if (r.status_line.size() >= 12 && r.status_line.starts_with("HTTP/1."))
        std::from_chars(r.status_line.data() + 9, r.status_line.data() + 12, r.status);
    head.remove_prefix(line_end == std::string_view::npos ? head.size() : line_end + 2);
    while (!head.empty()) {
        line_end = head.find("\r\n");
        std::string_view line = head.substr(0, line_end);
        head.remove_prefix(line_end == std::string_view::npos ? head.size() : line_end + 2);
        if (line.empty()) break;
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        const std::string_view value = http::trim_ows(line.substr(colon + 1));
        r.fields.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    }
    return r;
}

// The client TLS configuration for `o`, made once per thread and reused:
// loading a trust store costs far more than a handshake.
const tls_context& client_tls_context(const tls_client_options& o) {
    struct entry {
        bool verify;
        std::string ca_file;
        tls_context context;
    };
    thread_local std::vector<entry> made;
    for (const auto& e : made)
        if (e.verify == o.verify && e.ca_file == o.ca_file) return e.context;
    made.push_back(entry{o.verify, o.ca_file, tls_context::client(o)});
    return made.back().context;
}

[[noreturn]] void refuse(std::string_view url, const std::string& why) {
    throw std::system_error(std::make_error_code(std::errc::connection_refused),
                            "cnetmod: WebSocket handshake with " + std::string(url) + " failed: " + why);
}

}  // namespace

namespace {

// The handshake, for the coroutines below: the URL and the options live in
// their frames. (They take the options through a pointer: g++ 12 copies an
// aggregate coroutine parameter with std::string members bytewise, leaving
// the copy's string pointing into the caller's object.)
task<client_handshake> handshake_impl(io_context& ctx, const std::string& url_copy, const options& opts) {
    const url u = parse_url(url_copy);
    const deadline d = timeout(opts.handshake_timeout);
    tcp_stream stream = co_await tcp_connect(ctx, u.host, u.port, d);
    // wss://: TLS over the stream, with SNI and the host name checked
    // against the certificate; the request below goes out once it is up.
    if (u.scheme == "wss") stream.start_tls(client_tls_context(opts.tls), u.host);

    const std::string key = generate_client_key();
    std::string request = "GET " + u.target + " HTTP/1.1\r\nHost: ";
    const bool v6 = u.host.find(':') != std::string::npos;
    request += v6 ? "[" + u.host + "]" : u.host;
    if (u.port != (u.scheme == "wss" ? 443 : 80)) request += ":" + std::to_string(u.port);
    request += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
               "\r\nSec-WebSocket-Version: 13\r\n";
    if (!opts.subprotocol.empty()) request += "Sec-WebSocket-Protocol: " + opts.subprotocol + "\r\n";
    const deflate_preferences prefs = preferences_of(opts);
    if (opts.enable_compression) request += "Sec-WebSocket-Extensions: " + deflate_client_offer(prefs) + "\r\n";
    request += "\r\n";
    stream.queue(request);

    // The answer's head; bytes after it are already WebSocket frames.
    std::string head;
    for (;;) {
        std::span<const std::byte> view;
        try {
            view = co_await stream.recv_view(d);
        } catch (const std::system_error& e) {
            if (e.code() == std::errc::timed_out) refuse(url_copy, "no answer within the handshake timeout");
            if (stream.tls_failed()) refuse(url_copy, "TLS: " + stream.tls_error());
            throw;
        }
        if (view.empty()) refuse(url_copy, head.empty() ? "the server closed the connection" : "answer cut short");
        const std::size_t before = head.size();
        head.append(reinterpret_cast<const char*>(view.data()), view.size());
        const std::size_t end = http::find_head_end(head, before);
        if (end != std::string::npos) {
            stream.consume(end - before);
            head.resize(end);
            break;
        }
        stream.consume(view.size());
        if (head.size() > 16 * 1024) refuse(url_copy, "answer head too large");
    }
    const auto r = parse_response_head(head);
    if (r.status != 101) refuse(url_copy, "server answered \"" + r.status_line + "\"");
    if (!http::iequals(r.field("Upgrade"), "websocket")) refuse(url_copy, "missing \"Upgrade: websocket\"");
    if (!http::list_contains_token(r.field("Connection"), "upgrade"))
        refuse(url_copy, "missing \"Connection: Upgrade\"");
    if (r.field("Sec-WebSocket-Accept") != accept_key(key)) refuse(url_copy, "wrong Sec-WebSocket-Accept");
    std::string protocol(r.field("Sec-WebSocket-Protocol"));
    if (!protocol.empty() && !http::list_contains_token(opts.subprotocol, protocol))
        refuse(url_copy, "server chose subprotocol \"" + protocol + "\", which was not offered");
    std::string extensions;
    for (const auto& [name, value] : r.fields) {
        if (!http::iequals(name, "Sec-WebSocket-Extensions")) continue;
        if (!extensions.empty()) extensions += ", ";
        extensions += value;
    }
    bool deflate = false;
    deflate_agreement agreement;
    if (!extensions.empty()) {
        if (!opts.enable_compression) refuse(url_copy, "server chose an extension that was not offered");
        auto checked = check_deflate_response(extensions, prefs);
        if (auto* why = std::get_if<std::string>(&checked)) refuse(url_copy, *why);
        const auto& result = std::get<deflate_client_result>(checked);
        deflate = result.negotiated;
        agreement = result.agreement;
    }
    // Whatever was agreed, this side can compress within it (zlib keeps a
    // window or a small one, libdeflate does the rest).
    co_return client_handshake{std::move(stream), std::move(protocol), deflate, deflate, agreement};
}

task<client_handshake> handshake_owning(io_context& ctx, std::string url_copy, std::unique_ptr<options> opts_ptr) {
    co_return co_await handshake_impl(ctx, url_copy, *opts_ptr);
}

task<connection> connect_impl(io_context& ctx, std::string url_copy, std::unique_ptr<options> opts_ptr) {
    client_handshake h = co_await handshake_impl(ctx, url_copy, *opts_ptr);
    if (!h.deflate) co_return connection(std::move(h.stream), role::client, *opts_ptr, std::move(h.subprotocol));
    co_return connection(std::move(h.stream), role::client, *opts_ptr, std::move(h.subprotocol), h.agreement,
                         h.deflate_send);
}

}  // namespace

task<client_handshake> handshake(io_context& ctx, std::string_view url, const options& opts) {
    return handshake_owning(ctx, std::string(url), std::make_unique<options>(opts));
}

task<connection> connect(io_context& ctx, std::string_view url, const options& opts) {
    return connect_impl(ctx, std::string(url), std::make_unique<options>(opts));
}

task<connection> connect(io_context& ctx, std::string_view url) {
    return connect_impl(ctx, std::string(url), std::make_unique<options>());
}

}  // namespace cnetmod::ws
