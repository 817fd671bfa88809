// permessage-deflate through zlib: context takeover and small windows
// (see detail/deflate_stream.hpp).
#include <cnetmod/proto/ws/detail/deflate_stream.hpp>

#include <sys/mman.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace cnetmod::ws::detail {

struct zstream_box {
    z_stream z{};
    std::size_t bytes = 0;  // what zlib allocated for this stream
    bool deflater = true;
    std::int8_t bits = 15, level = 6, mem_level = 8;
    zstream_box* next = nullptr;  // the pool's link
};

namespace {

// Bytes held by this thread's zlib streams (in use or pooled) and kept windows.
thread_local std::size_t memory_in_use = 0;

void count(std::ptrdiff_t n) noexcept {
    memory_in_use =
        static_cast<std::size_t>(std::max<std::ptrdiff_t>(0, static_cast<std::ptrdiff_t>(memory_in_use) + n));
}

// zlib's allocations, counted per stream and per thread; the size goes in a
// 16-byte header (zlib needs no more than malloc's alignment). Its large
// buffers (a compressor's window, hash chains and pending output, an
// inflater's window: 32 KiB and up) are mapped pages of their own, so that
// a stream freed when its connection goes idle gives its memory back to
// the kernel at once: from malloc's heap it would stay resident.
constexpr std::size_t alloc_header = 16;
constexpr std::size_t mapped_from = 32 * 1024;

voidpf counted_alloc(voidpf opaque, uInt items, uInt size) {
    const std::size_t n = static_cast<std::size_t>(items) * size;
    std::byte* p;
    if (n >= mapped_from) {
        void* m = ::mmap(nullptr, n + alloc_header, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return Z_NULL;
        p = static_cast<std::byte*>(m);
    } else {
        p = static_cast<std::byte*>(std::malloc(n + alloc_header));
        if (!p) return Z_NULL;
    }
    std::memcpy(p, &n, sizeof n);
    static_cast<zstream_box*>(opaque)->bytes += n;
    count(static_cast<std::ptrdiff_t>(n));
    return p + alloc_header;
}

void counted_free(voidpf opaque, voidpf address) {
    if (!address) return;
    auto* p = static_cast<std::byte*>(address) - alloc_header;
    std::size_t n;
    std::memcpy(&n, p, sizeof n);
    static_cast<zstream_box*>(opaque)->bytes -= n;
    count(-static_cast<std::ptrdiff_t>(n));
    if (n >= mapped_from)
        ::munmap(p, n + alloc_header);
    else
        std::free(p);
}

// zlib's raw deflate takes windows of 9 to 15 bits (8 is refused); a
// window of 8 is kept by compressing in 256-byte pieces (see compress).
int zlib_bits(std::uint8_t bits) noexcept {
    return std::clamp<int>(bits, 9, 15);
}

zstream_box* make_box(bool deflater, std::uint8_t bits, int level, int mem_level) {
    auto* box = new zstream_box;
    box->deflater = deflater;
    box->bits = static_cast<std::int8_t>(zlib_bits(bits));
    box->level = static_cast<std::int8_t>(level);
    box->mem_level = static_cast<std::int8_t>(mem_level);
    box->z.zalloc = counted_alloc;
    box->z.zfree = counted_free;
    box->z.opaque = box;
    // Negative window bits: raw deflate, no zlib header or checksum (§7.2.1).
    const int rc = deflater ? deflateInit2(&box->z, level, Z_DEFLATED, -box->bits, mem_level, Z_DEFAULT_STRATEGY)
                            : inflateInit2(&box->z, -box->bits);
    if (rc != Z_OK) {
        delete box;
        throw std::bad_alloc();
    }
    return box;
}

void destroy_box(zstream_box* box) noexcept {
    if (box->deflater)
        deflateEnd(&box->z);
    else
        inflateEnd(&box->z);
    delete box;
}

// The per-thread pool of reset streams, an intrusive list (trivially
// destructible, so a context destroyed late in a thread's exit still finds
// it), emptied when the thread ends. Its streams count as memory in use.
constexpr std::size_t pooled_max = 16;
thread_local zstream_box* pool_head = nullptr;
thread_local std::size_t pool_size = 0;
thread_local bool pool_open = true;
struct pool_reaper {
    ~pool_reaper() {
        pool_open = false;
        while (pool_head) destroy_box(std::exchange(pool_head, pool_head->next));
        pool_size = 0;
    }
};
thread_local pool_reaper reaper;

// A pooled stream made with these settings, or null.
zstream_box* take_pooled(bool deflater, std::uint8_t bits, int level, int mem_level) {
    (void)&reaper;  // constructed with the thread's first use
    const int b = zlib_bits(bits);
    for (zstream_box** at = &pool_head; *at; at = &(*at)->next) {
        zstream_box* box = *at;
        if (box->deflater == deflater && box->bits == b &&
            (!deflater || (box->level == level && box->mem_level == mem_level))) {
            *at = box->next;
            box->next = nullptr;
            --pool_size;
            return box;
        }
    }
    return nullptr;
}

zstream_box* take_box(bool deflater, std::uint8_t bits, int level, int mem_level) {
    zstream_box* box = take_pooled(deflater, bits, level, mem_level);
    return box ? box : make_box(deflater, bits, level, mem_level);
}

// What zlib allocates for a raw compressor (zlib.h: deflateInit2's memory
// use, and its state of about 6 KiB).
std::size_t deflater_bytes(std::uint8_t bits, int mem_level) noexcept {
    return (std::size_t{1} << (zlib_bits(bits) + 2)) + (std::size_t{1} << (mem_level + 9)) + 6 * 1024;
}

// Resets `box` (forgetting its window) and pools it, or frees it when the
// pool is full or the thread is ending.
void give_back(zstream_box* box) noexcept {
    const int rc = box->deflater ? deflateReset(&box->z) : inflateReset(&box->z);
    if (rc != Z_OK || !pool_open || pool_size >= pooled_max) {
        destroy_box(box);
        return;
    }
    box->next = pool_head;
    pool_head = box;
    ++pool_size;
}

// Runs deflate over `in` with `flush`, appending to `out` (grown as needed).
void run_deflate(z_stream& z, std::span<const std::byte> in, int flush, std::string& out) {
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    for (;;) {
        const std::size_t used = out.size();
        const std::size_t room = std::max<std::size_t>(64, in.size() / 2 + 32);
        out.resize(used + room);
        z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
        z.avail_out = static_cast<uInt>(room);
        const int rc = deflate(&z, flush);
        out.resize(used + room - z.avail_out);
        if (rc == Z_STREAM_ERROR) throw std::bad_alloc();  // cannot happen with a valid stream
        // Done when all input is taken and the flush had room to finish.
        if (z.avail_in == 0 && z.avail_out != 0) return;
    }
}

// A sync or full flush ends in an empty stored block, 00 00 ff ff, which
// the sender removes (§7.2.1) and the receiver puts back (§7.2.2).
void strip_flush_marker(std::string& out, std::size_t base) noexcept {
    if (out.size() - base >= 4 && out.compare(out.size() - 4, 4, "\x00\x00\xff\xff", 4) == 0)
        out.resize(out.size() - 4);
}

constexpr std::size_t window_bytes(std::uint8_t bits) noexcept {
    return std::size_t{1} << bits;
}

// What our compressor keeps of its window while idle: up to 16 KiB (its own
// choice: any suffix of what the peer holds is a valid history).
constexpr std::size_t kept_send_max = 16 * 1024;

}  // namespace

std::size_t compression_memory_in_use() noexcept {
    return memory_in_use;
}

std::size_t compress_message_sync(std::span<const std::byte> payload, int level, std::string& out) {
    if (payload.empty()) return 0;
    zstream_box* box = take_box(true, 15, std::clamp(level, 1, 9), 8);
    const std::size_t base = out.size();
    try {
        run_deflate(box->z, payload, Z_SYNC_FLUSH, out);
    } catch (...) {
        give_back(box);
        out.resize(base);
        throw;
    }
    give_back(box);
    strip_flush_marker(out, base);
    return out.size() - base;
}

// ---- kept windows ----

void deflate_context::kept_window::keep(std::span<const std::byte> bytes, std::size_t cap) {
    if (bytes.size() > cap) bytes = bytes.subspan(bytes.size() - cap);
    if (bytes.size() > capacity) {
        clear();
        data = static_cast<std::byte*>(::operator new(bytes.size()));
        capacity = static_cast<std::uint32_t>(bytes.size());
    }
    if (!bytes.empty()) std::memcpy(data, bytes.data(), bytes.size());
    size = static_cast<std::uint32_t>(bytes.size());
}

void deflate_context::kept_window::append(std::span<const std::byte> bytes, std::size_t cap) {
    if (bytes.size() >= cap) return keep(bytes, cap);
    if (size + bytes.size() > capacity) {
        // Grows to the cap at once; when full, the older half goes, so that
        // appending costs O(bytes) amortised.
        if (capacity < cap) {
            auto* grown = static_cast<std::byte*>(::operator new(cap));
            if (size) std::memcpy(grown, data, size);
            ::operator delete(data);
            data = grown;
            capacity = static_cast<std::uint32_t>(cap);
        }
        if (size + bytes.size() > capacity) {
            const std::size_t drop = std::max<std::size_t>(size + bytes.size() - capacity, capacity / 2);
            const std::size_t left = size > drop ? size - drop : 0;
            std::memmove(data, data + (size - left), left);
            size = static_cast<std::uint32_t>(left);
        }
    }
    std::memcpy(data + size, bytes.data(), bytes.size());
    size += static_cast<std::uint32_t>(bytes.size());
}

void deflate_context::kept_window::clear() noexcept {
    ::operator delete(data);
    data = nullptr;
    size = capacity = 0;
}

// ---- the context ----

deflate_context::deflate_context(const deflate_agreement& agreed, bool server) noexcept {
    send_takeover_ = server ? !agreed.server_no_context_takeover : !agreed.client_no_context_takeover;
    receive_takeover_ = server ? !agreed.client_no_context_takeover : !agreed.server_no_context_takeover;
    send_bits_ = server ? agreed.server_max_window_bits : agreed.client_max_window_bits;
    receive_bits_ = server ? agreed.client_max_window_bits : agreed.server_max_window_bits;
    // The windows an idle connection keeps, counted from the start (at
    // their largest), so that a core's budget holds however many agree.
    reserved_ = static_cast<std::uint32_t>(
        (receive_takeover_ ? window_bytes(zlib_bits(receive_bits_)) : 0) +
        (send_takeover_ && send_bits_ >= 9 ? std::min(window_bytes(zlib_bits(send_bits_)), kept_send_max) : 0));
    count(static_cast<std::ptrdiff_t>(reserved_));
}

deflate_context::~deflate_context() {
    count(-static_cast<std::ptrdiff_t>(reserved_));
    if (deflater_) give_back(deflater_);
    if (inflater_) give_back(inflater_);
    send_window_.clear();
    receive_window_.clear();
}

std::size_t deflate_context::memory() const noexcept {
    return (deflater_ ? deflater_->bytes : 0) + (inflater_ ? inflater_->bytes : 0) + send_window_.capacity +
           receive_window_.capacity;
}

zstream_box* deflate_context::deflater(int level, int mem_level, std::size_t budget) {
    if (deflater_) return deflater_;
    zstream_box* box = take_pooled(true, send_bits_, level, mem_level);
    if (!box) {
        // A new compressor only within the core's budget: without one the
        // message goes plain, which leaves the peer's window as it is.
        if (budget && memory_in_use + deflater_bytes(send_bits_, mem_level) > budget) return nullptr;
        box = make_box(true, send_bits_, level, mem_level);
    }
    if (send_window_.size) {
        // Raw deflate takes a dictionary before its first block: the history
        // the peer's inflater holds from our earlier messages.
        deflateSetDictionary(&box->z, reinterpret_cast<const Bytef*>(send_window_.data), send_window_.size);
    }
    send_window_.clear();
    deflater_ = box;
    return box;
}

zstream_box& deflate_context::inflater() {
    if (inflater_) return *inflater_;
    zstream_box* box = take_box(false, receive_bits_, 0, 0);
    if (receive_window_.size && inflateSetDictionary(&box->z, reinterpret_cast<const Bytef*>(receive_window_.data),
                                                     receive_window_.size) != Z_OK) {
        give_back(box);
        throw std::bad_alloc();
    }
    receive_window_.clear();
    inflater_ = box;
    return *box;
}

std::size_t deflate_context::compress(std::span<const std::byte> payload, int level, int mem_level, std::string& out,
                                      std::size_t budget) {
    if (payload.empty()) return 0;
    send_used_ = true;
    zstream_box* attached = deflater(std::clamp(level, 1, 9), std::clamp(mem_level, 1, 9), budget);
    if (!attached) return 0;
    zstream_box& box = *attached;
    const std::size_t base = out.size();
    try {
        if (send_bits_ < 9) {
            // A 256-byte window, which zlib's deflate cannot keep: each
            // 256-byte piece is compressed after a full flush, which empties
            // the match finder, so no distance reaches past 255 (§7.1.2.1).
            for (std::size_t at = 0; at < payload.size(); at += window_bytes(8))
                run_deflate(box.z, payload.subspan(at, std::min(window_bytes(8), payload.size() - at)), Z_FULL_FLUSH,
                            out);
        } else {
            run_deflate(box.z, payload, Z_SYNC_FLUSH, out);
        }
    } catch (...) {
        // The stream is in an unknown state: it goes, and so does the history
        // (the peer's window may hold more than ours: a compressor may always
        // refer to less).
        give_back(std::exchange(deflater_, nullptr));
        send_window_.clear();
        out.resize(base);
        throw;
    }
    strip_flush_marker(out, base);
    if (!send_takeover_) deflateReset(&box.z);  // the next message starts from an empty window
    return out.size() - base;
}

void deflate_context::forget_history() noexcept {
    if (deflater_) deflateReset(&deflater_->z);
    send_window_.clear();
}

void deflate_context::note_sent_elsewhere(std::span<const std::byte> payload) {
    // A 256-byte window keeps no history (see compress).
    if (!send_takeover_ || send_bits_ < 9 || payload.empty()) return;
    send_used_ = true;
    if (deflater_) {
        // After a flush, raw deflate may take a dictionary again: it is
        // appended to the window (zlib's deflateSetDictionary; of a longer
        // one, the window's size at the end).
        deflateSetDictionary(&deflater_->z, reinterpret_cast<const Bytef*>(payload.data()),
                             static_cast<uInt>(payload.size()));
        return;
    }
    send_window_.append(payload, std::min(window_bytes(zlib_bits(send_bits_)), kept_send_max));
}

inflate_status deflate_context::inflate(std::span<const std::byte> compressed, std::size_t max_size, std::string& out,
                                        std::size_t budget) {
    receive_used_ = true;
    zstream_box& box = inflater();
    z_stream& z = box.z;
    static constexpr unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
    // Room for one byte past the limit, which tells too_big from exactly
    // max_size: the thread's inflate room, whose pages are touched only as
    // written (a bomb costs at most max_size bytes of work, in one pass).
    const std::size_t room_size = std::min<std::size_t>(max_size + 1, UINT32_MAX);
    std::byte* room = reserve_inflate_room(room_size);
    if (!room) return inflate_status::too_big;  // no memory for it: treated as over the limit
    z.next_out = reinterpret_cast<Bytef*>(room);
    z.avail_out = static_cast<uInt>(room_size);
    bool ended = false;  // the message held a final block (§7.2.3.4)
    // Runs `in` through the inflater: ok, or what went wrong.
    auto run = [&](const unsigned char* in, std::size_t n) {
        z.next_in = const_cast<Bytef*>(in);
        z.avail_in = static_cast<uInt>(n);
        const int rc = ::inflate(&z, Z_SYNC_FLUSH);
        if (room_size - z.avail_out > max_size) return inflate_status::too_big;
        if (rc == Z_STREAM_END) {
            ended = true;
            return inflate_status::ok;
        }
        if (rc == Z_MEM_ERROR) throw std::bad_alloc();
        if (rc == Z_OK && z.avail_in != 0) return inflate_status::too_big;  // the room ran out
        if (rc == Z_OK || (rc == Z_BUF_ERROR && z.avail_in == 0)) return inflate_status::ok;
        // Bad data (or room left and input that cannot be taken, which cannot be).
        return rc == Z_BUF_ERROR && z.avail_out == 0 ? inflate_status::too_big : inflate_status::bad_data;
    };
    inflate_status st = run(reinterpret_cast<const unsigned char*>(compressed.data()), compressed.size());
    if (st == inflate_status::ok && !ended) st = run(tail, sizeof tail);
    const std::size_t produced = room_size - z.avail_out;
    if (st != inflate_status::ok) {
        trim_inflate_room(produced);
        // The stream is broken and so is the connection: no window to keep.
        give_back(std::exchange(inflater_, nullptr));
        return st;
    }
    out.append(reinterpret_cast<const char*>(room), produced);
    trim_inflate_room(produced);
    if (ended) {
        // A final block ended the peer's DEFLATE stream; its next message
        // starts a new one that may still refer to this window, so the
        // window is kept across the reset.
        thread_local std::byte window[32 * 1024];
        uInt n = 0;
        inflateGetDictionary(&z, reinterpret_cast<Bytef*>(window), &n);
        inflateReset(&z);
        if (n) inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(window), n);
    }
    // Over the core's budget the inflater goes back at once, keeping only its window.
    if (budget && memory_in_use > budget) release_inflater();
    return st;
}

void deflate_context::release_deflater() noexcept {
    if (!deflater_) return;
    if (send_takeover_ && send_bits_ >= 9) {
        thread_local std::byte window[32 * 1024];
        uInt n = 0;
        if (deflateGetDictionary(&deflater_->z, reinterpret_cast<Bytef*>(window), &n) == Z_OK) {
            try {
                send_window_.keep(std::span<const std::byte>(window, n),
                                  std::min(window_bytes(zlib_bits(send_bits_)), kept_send_max));
            } catch (const std::bad_alloc&) {
                // Without the history the peer's window is not ours: that is
                // harmless, as a compressor may always refer to less.
                send_window_.clear();
            }
        }
    }
    give_back(std::exchange(deflater_, nullptr));
}

void deflate_context::release_inflater() noexcept {
    if (!inflater_) return;
    thread_local std::byte window[32 * 1024];
    uInt n = 0;
    if (inflateGetDictionary(&inflater_->z, reinterpret_cast<Bytef*>(window), &n) != Z_OK) return;
    try {
        receive_window_.keep(std::span<const std::byte>(window, n), window_bytes(zlib_bits(receive_bits_)));
    } catch (const std::bad_alloc&) {
        return;  // the peer may refer to that window: the stream stays instead
    }
    give_back(std::exchange(inflater_, nullptr));
}

std::size_t deflate_context::idle_tick() noexcept {
    const std::size_t before = memory();
    if (deflater_ && !send_used_) release_deflater();
    if (inflater_ && !receive_used_) release_inflater();
    send_used_ = receive_used_ = false;
    const std::size_t after = memory();
    return before > after ? before - after : 0;
}

}  // namespace cnetmod::ws::detail
