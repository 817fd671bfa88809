// permessage-deflate through zlib, for what libdeflate cannot do: a window
// kept from one message to the next (context takeover, RFC 7692 §7.1.1) and
// windows smaller than 32 KiB (§7.1.2). A connection that negotiated either
// owns one deflate_context; its zlib streams come from a per-thread pool
// while it is busy and go back while it is idle, when only the bytes of the
// window are kept. Every allocation is counted per thread, for the core's
// compression memory budget. Internal: not installed.
#pragma once

#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace cnetmod::ws::detail {

struct zstream_box;  // a z_stream and the settings it was made with

// Bytes of compression state this thread's deflate contexts hold: zlib
// streams in use and pooled, and for each context the windows it keeps
// while idle, counted at their largest from its start. What the core's
// compression_memory_budget limits.
std::size_t compression_memory_in_use() noexcept;

// Where messages inflate, per thread (permessage_deflate.cpp): room for
// `size` bytes whose pages are touched only as written (null when no
// memory can be had); after a message, trim with the bytes written, so that
// all but the first 2 MiB go back to the kernel.
std::byte* reserve_inflate_room(std::size_t size) noexcept;
void trim_inflate_room(std::size_t touched) noexcept;

// A message compressed from an empty window (it refers to nothing sent
// before it) with a 32 KiB window, ending in a sync flush rather than a
// final block, its 00 00 ff ff removed (§7.2.1): a peer that keeps one
// inflater across messages decodes it as a continuation of its stream, so
// one such form serves every takeover peer whose window is 15 bits, or
// whose window is not smaller than the message. Appended to `out`; returns
// the bytes appended (0 when `payload` is empty).
std::size_t compress_message_sync(std::span<const std::byte> payload, int level, std::string& out);

class deflate_context {
public:
    // `agreed` as the handshake ended, seen from `server` or the client.
    deflate_context(const deflate_agreement& agreed, bool server) noexcept;
    ~deflate_context();
    deflate_context(const deflate_context&) = delete;
    deflate_context& operator=(const deflate_context&) = delete;

    // This side keeps its window across messages / the peer keeps its.
    bool send_takeover() const noexcept { return send_takeover_; }
    bool receive_takeover() const noexcept { return receive_takeover_; }
    std::uint8_t send_window_bits() const noexcept { return send_bits_; }
    // Messages we send go through zlib (takeover, or a window below 15 that
    // libdeflate cannot promise); otherwise libdeflate makes them.
    bool sends_with_zlib() const noexcept { return send_takeover_ || send_bits_ < 15; }
    // Compressed messages we receive go through zlib (the peer keeps its
    // window); otherwise each inflates alone (libdeflate).
    bool receives_with_zlib() const noexcept { return receive_takeover_; }

    // Compresses a whole message, appending the frame payload (RSV1 to be
    // set) to `out`; returns the bytes appended. With takeover the window
    // takes the message, so the result must be sent even when it is not
    // smaller. `level` 1..9, `mem_level` zlib's 1..9. Returns 0 (the
    // message goes plain) when it is empty, or when this side has no
    // compressor attached and a new one would take the thread's compression
    // memory past `budget` (0: no limit).
    std::size_t compress(std::span<const std::byte> payload, int level, int mem_level, std::string& out,
                         std::size_t budget = 0);
    // Our window is emptied (a message compressed with it goes plain after
    // all, so the peer's window lacks it): later messages refer to nothing
    // before this point, which any peer's window allows.
    void forget_history() noexcept;
    // A message the peer inflated without our compressor (a shared form from
    // compress_message_sync): our window takes its bytes too, so that both
    // windows hold the same history.
    void note_sent_elsewhere(std::span<const std::byte> payload);
    // Whether compress_message_sync's form of an n-byte message fits this
    // peer's window.
    bool sync_form_fits(std::size_t n) const noexcept {
        return send_bits_ == 15 || n <= (std::size_t{1} << send_bits_);
    }

    // Inflates one message (its frames' payloads, without the 00 00 ff ff
    // tail) into `out`, at most max_size bytes (else too_big), keeping the
    // window for the next message. Over `budget` (0: no limit) the inflater
    // goes back to the pool at once, keeping only the window.
    inflate_status inflate(std::span<const std::byte> compressed, std::size_t max_size, std::string& out,
                           std::size_t budget = 0);

    // Called once per sweep: a direction whose zlib stream was not used since
    // the last call gives the stream back to the pool, keeping only the
    // bytes of its window. Returns the bytes freed.
    std::size_t idle_tick() noexcept;
    // Bytes this context holds now (zlib state while attached, kept windows).
    std::size_t memory() const noexcept;

private:
    // A window kept while the stream is in the pool: the last bytes the
    // peer's inflater (or ours) holds.
    struct kept_window {
        std::byte* data = nullptr;
        std::uint32_t size = 0, capacity = 0;
        void keep(std::span<const std::byte> bytes, std::size_t cap);  // replaces
        void append(std::span<const std::byte> bytes, std::size_t cap);
        void clear() noexcept;
        std::span<const std::byte> bytes() const noexcept { return {data, size}; }
    };

    zstream_box* deflater(int level, int mem_level, std::size_t budget);
    zstream_box& inflater();
    void release_deflater() noexcept;
    void release_inflater() noexcept;

    zstream_box* deflater_ = nullptr;
    zstream_box* inflater_ = nullptr;
    kept_window send_window_, receive_window_;
    std::uint32_t reserved_ = 0;  // counted for the windows an idle connection keeps
    std::uint8_t send_bits_ = 15, receive_bits_ = 15;
    bool send_takeover_ = false, receive_takeover_ = false;
    bool send_used_ = false, receive_used_ = false;  // since the last idle_tick
};

}  // namespace cnetmod::ws::detail
