#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <libdeflate.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <new>

namespace cnetmod::ws {
namespace {

// ---- Header grammar ------------------------------------------------------

// RFC 9110 §5.6.2: tchar.
constexpr bool is_tchar(char c) noexcept {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

constexpr bool is_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// A cursor over one header value; every read skips optional whitespace first.
class header_reader {
public:
    explicit header_reader(std::string_view text) noexcept : text_(text) {}

    bool at_end() noexcept {
        skip_ows();
        return pos_ == text_.size();
    }

    bool consume(char c) noexcept {
        skip_ows();
        if (pos_ == text_.size() || text_[pos_] != c) return false;
        ++pos_;
        return true;
    }

    std::optional<std::string> token() {
        skip_ows();
        const auto start = pos_;
        while (pos_ < text_.size() && is_tchar(text_[pos_])) ++pos_;
        if (pos_ == start) return std::nullopt;
        return std::string(text_.substr(start, pos_ - start));
    }

    // token | quoted-string; RFC 6455 §9.1: a quoted value must be a token once unescaped.
    std::optional<std::string> value() {
        skip_ows();
        if (pos_ == text_.size() || text_[pos_] != '"') return token();
        auto unquoted = quoted_string();
        if (!unquoted || !is_token(*unquoted)) return std::nullopt;
        return unquoted;
    }

private:
    void skip_ows() noexcept {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
    }

    // RFC 9110 §5.6.4: DQUOTE *( qdtext / quoted-pair ) DQUOTE, starting at the opening quote.
    std::optional<std::string> quoted_string() {
        std::string out;
        for (++pos_; pos_ < text_.size(); ++pos_) {
            char c = text_[pos_];
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (c == '\\') {
                if (++pos_ == text_.size()) break;
                c = text_[pos_];
            }
            out.push_back(c);
        }
        return std::nullopt;  // no closing quote
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

std::optional<extension_param> read_param(header_reader& in) {
    auto name = in.token();
    if (!name) return std::nullopt;
    extension_param param{std::move(*name), std::nullopt};
    if (in.consume('=')) {
        param.value = in.value();
        if (!param.value) return std::nullopt;
    }
    return param;
}

std::optional<extension_offer> read_extension(header_reader& in) {
    auto name = in.token();
    if (!name) return std::nullopt;
    extension_offer offer{std::move(*name), {}};
    while (in.consume(';')) {
        auto param = read_param(in);
        if (!param) return std::nullopt;
        offer.params.push_back(std::move(*param));
    }
    return offer;
}

// ---- permessage-deflate parameters (RFC 7692 §7.1) -----------------------

constexpr std::string_view server_no_context_takeover = "server_no_context_takeover";
constexpr std::string_view client_no_context_takeover = "client_no_context_takeover";
constexpr std::string_view server_max_window_bits = "server_max_window_bits";
constexpr std::string_view client_max_window_bits = "client_max_window_bits";

// The parameters of one permessage-deflate element, each checked on its own.
struct deflate_params {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    std::optional<std::uint8_t> server_max_window_bits;
    bool client_max_window_bits_present = false;  // §7.1.2.2: in an offer it may come without a value
    std::optional<std::uint8_t> client_max_window_bits;
};

// RFC 7692 §7.1.2.1: a decimal integer from 8 to 15 without leading zeros.
std::optional<std::uint8_t> parse_window_bits(std::string_view v) noexcept {
    if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') return static_cast<std::uint8_t>(v[0] - '0');
    if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return static_cast<std::uint8_t>(10 + v[1] - '0');
    return std::nullopt;
}

std::string_view set_flag(bool& flag, const std::optional<std::string>& value) noexcept {
    if (flag) return "is repeated";
    if (value) return "must not have a value";
    flag = true;
    return {};
}

std::string_view set_window(std::optional<std::uint8_t>& bits, std::string_view value) noexcept {
    bits = parse_window_bits(value);
    return bits ? std::string_view{} : "has a value outside 8..15";
}

// Applies one parameter to `p`; returns what is wrong with it, or an empty view.
std::string_view apply_param(const extension_param& param, deflate_params& p) noexcept {
    if (param.name == server_no_context_takeover) return set_flag(p.server_no_context_takeover, param.value);
    if (param.name == client_no_context_takeover) return set_flag(p.client_no_context_takeover, param.value);
    if (param.name == server_max_window_bits) {
        if (p.server_max_window_bits) return "is repeated";
        if (!param.value) return "needs a value from 8 to 15";
        return set_window(p.server_max_window_bits, *param.value);
    }
    if (param.name == client_max_window_bits) {
        if (p.client_max_window_bits_present) return "is repeated";
        p.client_max_window_bits_present = true;
        return param.value ? set_window(p.client_max_window_bits, *param.value) : std::string_view{};
    }
    return "is not a permessage-deflate parameter";
}

// RFC 7692 §5.1: unknown, repeated or ill-valued parameters make the element
// unacceptable. On failure `why` names the parameter and the fault.
std::optional<deflate_params> read_deflate_params(const extension_offer& offer, std::string& why) {
    deflate_params p;
    for (const auto& param : offer.params) {
        auto problem = apply_param(param, p);
        if (!problem.empty()) {
            why = "parameter '" + param.name + "' " + std::string(problem);
            return std::nullopt;
        }
    }
    return p;
}

// A window we ask the peer to keep to: never 8, which zlib's compressor
// cannot keep (Python's websockets fails to start with it); a peer that
// names 8 for itself gets 8, and we compress with 8 when asked to.
std::uint8_t asked_of_peer(std::uint8_t bits) noexcept {
    return std::max<std::uint8_t>(bits, 9);
}

deflate_accept accept_offer(const deflate_params& offer, const deflate_preferences& prefs) {
    const std::uint8_t ours = std::clamp<std::uint8_t>(prefs.window_bits, 8, 15);
    deflate_agreement a;
    a.server_no_context_takeover = offer.server_no_context_takeover || !prefs.context_takeover;
    a.client_no_context_takeover = offer.client_no_context_takeover || !prefs.context_takeover;
    // §7.1.2.1: the server's window is its own choice, at most what was offered.
    a.server_max_window_bits = std::min(offer.server_max_window_bits.value_or(15), ours);
    // §7.1.2.2: the client's window can be limited only when it offered the
    // parameter; otherwise it compresses with up to 32 KiB, and a server that
    // wants smaller windows keeps none of that client's across messages.
    if (offer.client_max_window_bits_present)
        a.client_max_window_bits = std::min(offer.client_max_window_bits.value_or(15), asked_of_peer(ours));
    else if (ours < 15)
        a.client_no_context_takeover = true;
    deflate_accept accepted;
    accepted.agreement = a;
    std::string& r = accepted.response;
    r = permessage_deflate_name;
    if (a.server_no_context_takeover) r += "; server_no_context_takeover";
    if (a.client_no_context_takeover) r += "; client_no_context_takeover";
    // §7.1.2.1: a server that accepts server_max_window_bits must echo it;
    // it may name a smaller window of its own unasked.
    if (offer.server_max_window_bits || a.server_max_window_bits < 15)
        r += "; server_max_window_bits=" + std::to_string(a.server_max_window_bits);
    if (offer.client_max_window_bits_present && a.client_max_window_bits < 15)
        r += "; client_max_window_bits=" + std::to_string(a.client_max_window_bits);
    return accepted;
}

std::string response_error(std::string_view fault) {
    return "permessage-deflate: the server's Sec-WebSocket-Extensions response " + std::string(fault) +
           "; failing the connection (RFC 7692 §5.1) — turn compression off for this server";
}

// ---- libdeflate, per thread ----------------------------------------------

struct compressor_deleter {
    void operator()(libdeflate_compressor* c) const noexcept { libdeflate_free_compressor(c); }
};
struct decompressor_deleter {
    void operator()(libdeflate_decompressor* d) const noexcept { libdeflate_free_decompressor(d); }
};

constexpr int min_level = 1, max_level = 12;

// libdeflate 1.14 gives up (returns 0) when its output comes within a few
// bytes of the buffer's end (9 seen, from its 8-byte end padding), so it gets
// this much room beyond the size that is worth sending.
constexpr std::size_t compressor_slack = 16;

// One compressor per level in use: the high levels' match finders are large,
// so a thread that only uses level 1 never pays for level 12.
libdeflate_compressor& compressor_for(int level) {
    thread_local std::array<std::unique_ptr<libdeflate_compressor, compressor_deleter>, max_level + 1> compressors;
    auto& c = compressors[static_cast<std::size_t>(level)];
    if (!c) c.reset(libdeflate_alloc_compressor(level));
    if (!c) throw std::bad_alloc();
    return *c;
}

libdeflate_decompressor& decompressor() {
    thread_local std::unique_ptr<libdeflate_decompressor, decompressor_deleter> d{libdeflate_alloc_decompressor()};
    if (!d) throw std::bad_alloc();
    return *d;
}

// RFC 7692 §7.2.2: the sender removed the 00 00 ff ff that ends an empty
// non-final stored block; put it back. libdeflate wants a stream that ends in
// a final block, so an empty final stored block follows (01 00 00 ff ff). A
// message that already ends in a final block (§7.2.3.4) stops the inflater
// before these bytes, which it then ignores.
constexpr std::array<std::byte, 9> inflate_tail{std::byte{0x00}, std::byte{0x00}, std::byte{0xff},
                                                std::byte{0xff}, std::byte{0x01}, std::byte{0x00},
                                                std::byte{0x00}, std::byte{0xff}, std::byte{0xff}};

// The message and its tail as one contiguous buffer, in a per-thread scratch
// that grows to the largest compressed message seen and is then reused.
std::span<const std::byte> with_inflate_tail(std::span<const std::byte> compressed) {
    thread_local std::vector<std::byte> scratch;
    scratch.clear();
    scratch.insert(scratch.end(), compressed.begin(), compressed.end());
    scratch.insert(scratch.end(), inflate_tail.begin(), inflate_tail.end());
    return scratch;
}

// Where messages inflate, one per thread: address space reserved for the
// largest limit asked so far, whose pages the kernel provides as they are
// first written (in huge pages where it can: a page fault per 4 KiB costs
// as much as inflating them). The first 2 MiB stay once touched, so
// ordinary messages cost no page fault and no system call; after a larger
// message the rest goes back to the kernel, so a bomb leaves nothing behind.
class inflate_room {
public:
    ~inflate_room() {
        if (map_) ::munmap(map_, mapped_);
    }
    // Room for `size` bytes, or null when no memory can be had.
    std::byte* reserve(std::size_t size) noexcept {
        if (size <= reserved_) return data_;
        if (map_) ::munmap(map_, mapped_);
        map_ = data_ = nullptr;
        mapped_ = reserved_ = 0;
        constexpr std::size_t huge = 2 * 1024 * 1024;
        const std::size_t bytes = (size + huge - 1) / huge * huge;
        // One huge page more than needed, so that the room can start on a huge-page boundary.
        void* p =
            ::mmap(nullptr, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return nullptr;
        map_ = static_cast<std::byte*>(p);
        mapped_ = bytes + huge;
        const auto at = (reinterpret_cast<std::uintptr_t>(p) + huge - 1) / huge * huge;
        data_ = reinterpret_cast<std::byte*>(at);
        reserved_ = bytes;
        ::madvise(data_, reserved_, MADV_HUGEPAGE);  // a hint: fine to fail
        return data_;
    }
    // `touched` bytes were written: what lies past the kept part is returned.
    void trim(std::size_t touched) noexcept {
        constexpr std::size_t kept = 2 * 1024 * 1024;
        if (touched <= kept) return;
        ::madvise(data_ + kept, std::min(touched, reserved_) - kept, MADV_DONTNEED);
    }

private:
    std::byte* map_ = nullptr;  // the mapping, and its aligned part
    std::size_t mapped_ = 0;
    std::byte* data_ = nullptr;
    std::size_t reserved_ = 0;
};

thread_local inflate_room thread_room;

}  // namespace

namespace detail {
std::byte* reserve_inflate_room(std::size_t size) noexcept {
    return thread_room.reserve(size);
}
void trim_inflate_room(std::size_t touched) noexcept {
    thread_room.trim(touched);
}
}  // namespace detail

std::optional<std::vector<extension_offer>> parse_extensions(std::string_view header) {
    header_reader in(header);
    std::vector<extension_offer> offers;
    while (!in.at_end()) {
        if (in.consume(',')) continue;  // RFC 9110 §5.6.1: empty list elements are skipped
        auto offer = read_extension(in);
        if (!offer) return std::nullopt;
        offers.push_back(std::move(*offer));
        if (!in.at_end() && !in.consume(',')) return std::nullopt;
    }
    return offers;
}

std::optional<deflate_accept> negotiate_deflate_server(std::string_view extensions_header,
                                                       const deflate_preferences& prefs) {
    const auto offers = parse_extensions(extensions_header);
    if (!offers) return std::nullopt;  // a header we cannot read offers nothing we can accept
    std::string ignored;
    for (const auto& offer : *offers) {
        if (offer.name != permessage_deflate_name) continue;
        const auto params = read_deflate_params(offer, ignored);
        if (!params) continue;  // §5.1: decline this offer, try the next
        return accept_offer(*params, prefs);
    }
    return std::nullopt;
}

std::string deflate_client_offer(const deflate_preferences& prefs) {
    const std::uint8_t bits = std::clamp<std::uint8_t>(prefs.window_bits, 8, 15);
    std::string offer(prefs.context_takeover
                          ? "permessage-deflate; client_max_window_bits"
                          : "permessage-deflate; client_no_context_takeover; server_no_context_takeover");
    if (bits < 15) {
        if (!prefs.context_takeover) offer += "; client_max_window_bits";
        offer += "=" + std::to_string(bits) + "; server_max_window_bits=" + std::to_string(asked_of_peer(bits));
    }
    return offer;
}

std::string_view deflate_client_offer() noexcept {
    return "permessage-deflate; client_no_context_takeover; server_no_context_takeover";
}

std::variant<deflate_client_result, std::string> check_deflate_response(std::string_view header) {
    return check_deflate_response(header, deflate_preferences{false, 15});
}

std::variant<deflate_client_result, std::string> check_deflate_response(std::string_view header,
                                                                        const deflate_preferences& offered) {
    const auto elements = parse_extensions(header);
    if (!elements) return response_error("is malformed");
    if (elements->empty()) return deflate_client_result{};
    if (elements->size() > 1) return response_error("names more than one extension; only one was offered");
    const auto& element = elements->front();
    // RFC 6455 §4.1: the server may only accept extensions the client offered.
    if (element.name != permessage_deflate_name) return response_error("accepts '" + element.name + "', never offered");
    std::string why;
    const auto params = read_deflate_params(element, why);
    if (!params) return response_error("has " + why);
    // What deflate_client_offer(offered) named: client_max_window_bits
    // (with takeover or a small window; its value the window, 15 when it
    // has none) and server_max_window_bits (a small window).
    const std::uint8_t bits = std::clamp<std::uint8_t>(offered.window_bits, 8, 15);
    const bool offered_client_window = offered.context_takeover || bits < 15;
    const bool offered_server_window = bits < 15;
    // §7.1.2.2: a server must not send client_max_window_bits unless the
    // client offered it, nor a larger window than the client named.
    if (params->client_max_window_bits_present) {
        if (!offered_client_window) return response_error("has client_max_window_bits, never offered");
        if (!params->client_max_window_bits) return response_error("has client_max_window_bits without a value");
        if (*params->client_max_window_bits > bits)
            return response_error("has client_max_window_bits above the offered " + std::to_string(bits));
    }
    // §7.1.2.1: an offered server_max_window_bits is accepted by naming it,
    // with the same or a smaller value.
    if (offered_server_window) {
        if (!params->server_max_window_bits) return response_error("lacks server_max_window_bits, which was offered");
        if (*params->server_max_window_bits > asked_of_peer(bits))
            return response_error("has server_max_window_bits above the offered " +
                                  std::to_string(asked_of_peer(bits)));
    }
    // §7.1.1.1: an offered server_no_context_takeover is accepted by naming it.
    if (!offered.context_takeover && !params->server_no_context_takeover)
        return response_error("lacks server_no_context_takeover, which we need");
    deflate_agreement a;
    a.server_no_context_takeover = params->server_no_context_takeover;
    // §7.1.1.2: the client keeps no context when it offered so, or the server asks.
    a.client_no_context_takeover = params->client_no_context_takeover || !offered.context_takeover;
    a.server_max_window_bits = params->server_max_window_bits.value_or(15);
    a.client_max_window_bits = params->client_max_window_bits.value_or(bits);
    return deflate_client_result{true, a};
}

std::size_t compress_message(std::span<const std::byte> payload, int level, std::string& out) {
    // Worth sending only when the stream and the 0x00 below are shorter than the payload.
    if (payload.size() < 3) return 0;
    const std::size_t limit = payload.size() - 2;
    const std::size_t base = out.size();
    out.resize(base + limit + compressor_slack);
    auto& compressor = compressor_for(std::clamp(level, min_level, max_level));
    const std::size_t n =
        libdeflate_deflate_compress(&compressor, payload.data(), payload.size(), &out[base], limit + compressor_slack);
    if (n == 0 || n > limit) {
        out.resize(base);
        return 0;
    }
    // libdeflate ends the stream with a BFINAL=1 block, so there is no
    // 00 00 ff ff to strip (§7.2.1). RFC 7692 §7.2.3.4: add one 0x00 byte — the
    // header bits of an empty non-final stored block — so the receiver's
    // appended 00 00 ff ff completes a well-formed block.
    out[base + n] = '\0';
    out.resize(base + n + 1);
    return n + 1;
}

inflate_status decompress_message(std::span<const std::byte> compressed, std::size_t max_size, std::string& out) {
    const auto input = with_inflate_tail(compressed);
    auto& inflater = decompressor();
    // libdeflate inflates whole buffers only and cannot resume, so it gets
    // room for the whole limit at once: one pass, which stops where the
    // output would pass max_size (a bomb costs at most max_size bytes of
    // work, never a restart per doubling). The room is uninitialised and
    // its pages are touched only as the output reaches them.
    inflate_room& room = thread_room;
    std::byte* at = room.reserve(max_size);
    if (!at) return inflate_status::too_big;  // no memory for it: treated as over the limit
    std::size_t produced = 0;
    const auto result =
        libdeflate_deflate_decompress_ex(&inflater, input.data(), input.size(), at, max_size, nullptr, &produced);
    if (result != LIBDEFLATE_SUCCESS) {
        room.trim(max_size);  // how far it wrote is not told: all of it
        return result == LIBDEFLATE_INSUFFICIENT_SPACE ? inflate_status::too_big : inflate_status::bad_data;
    }
    out.append(reinterpret_cast<const char*>(at), produced);
    room.trim(produced);
    return inflate_status::ok;
}

}  // namespace cnetmod::ws
