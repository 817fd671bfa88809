// libFuzzer target: the HTTP/1.1 request parser — head, body framing and the
// chunked decoder — on arbitrary bytes.
#include <cnetmod/proto/http/request_parser.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace cnetmod::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    parser_limits limits;
    limits.max_body_bytes = 4096;
    const std::size_t end = find_head_end(input);
    if (end == std::string::npos) return 0;
    if (end > input.size()) std::abort();
    request req;
    if (parse_request_head(std::string(input.substr(0, end)), req, limits)) return 0;
    // Every view points into the request's own head.
    const std::string_view head_copy = req.target();
    if (!req.method().empty() && req.path().size() > head_copy.size() + 1 && head_copy != "*") std::abort();
    for (const auto& h : req.headers())
        if (h.name.empty()) std::abort();
    request moved = std::move(req);
    (void)moved.header("Host");
    body_framing framing;
    if (body_framing_of(moved, limits, framing)) return 0;
    if (framing.type == body_framing::kind::chunked) {
        chunked_decoder decoder;
        std::string body;
        std::string_view rest = input.substr(end);
        // Feed in uneven pieces: the result may not depend on the split.
        std::size_t piece = 1;
        while (!rest.empty() && !decoder.done() && !decoder.error()) {
            const auto chunk = rest.substr(0, piece);
            const std::size_t used = decoder.feed(chunk, body, limits.max_body_bytes);
            if (used > chunk.size()) std::abort();
            rest.remove_prefix(used);
            if (used < chunk.size() && !decoder.done() && !decoder.error()) std::abort();
            piece = piece * 3 % 17 + 1;
        }
        if (body.size() > limits.max_body_bytes) std::abort();
    }
    return 0;
}
