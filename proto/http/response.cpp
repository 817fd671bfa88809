#include <cnetmod/proto/http/request.hpp>
#include <cnetmod/proto/http/response.hpp>

#include <algorithm>

namespace cnetmod::http {

void response::set_header(std::string_view name, std::string_view value) {
    std::erase_if(headers_, [&](const auto& h) { return iequals(h.first, name); });
    add_header(name, value);
}

void response::add_header(std::string_view name, std::string_view value) {
    headers_.emplace_back(name, value);
}

std::string_view response::header(std::string_view name) const noexcept {
    for (const auto& h : headers_)
        if (iequals(h.first, name)) return h.second;
    return {};
}

void response::serialize(std::string& out, bool keep_alive, bool omit_body) const {
    const auto c = code(status_);
    const bool bodiless_status = c < 200 || c == 204 || c == 304;
    out += "HTTP/1.1 ";
    out += std::to_string(c);
    out += ' ';
    out += reason_phrase(status_);
    out += "\r\n";
    for (const auto& [name, value] : headers_) {
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    if (!bodiless_status && header("Content-Length").empty()) {
        out += "Content-Length: ";
        out += std::to_string(body_.size());
        out += "\r\n";
    }
    if (c != 101 && header("Connection").empty()) out += keep_alive ? "" : "Connection: close\r\n";
    out += "\r\n";
    if (!omit_body && !bodiless_status) out += body_;
}

}  // namespace cnetmod::http
