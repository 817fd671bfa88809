// tcp_stream: the handle over a socket core (engine/detail/socket_core.hpp)
// and the awaiters that wait on it.
#include <cnetmod/engine/detail/io_operation.hpp>
#include <cnetmod/engine/detail/socket_core.hpp>
#include <cnetmod/engine/detail/tls_socket.hpp>
#include <cnetmod/engine/tcp_stream.hpp>

#include <liburing.h>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace cnetmod::detail {
namespace {

// Suspends a writer until unsent bytes fall to `threshold`, an error, a
// close, or the deadline.
struct drain_wait {
    // A constructor, not aggregate initialisation: g++ 12 miscompiles an
    // aggregate temporary awaited in place (its members are not copied).
    drain_wait(socket_core& core, std::size_t limit, deadline at) : s(core), d(at) { node.threshold = limit; }
    socket_core& s;
    deadline d;
    drain_waiter node{};
    wait_timer* timer = nullptr;
    bool waiting = false;
    bool timed_out = false;

    bool await_ready() const noexcept { return s.unsent_bytes() <= node.threshold || s.send_error() || !s.is_open(); }
    void await_suspend(std::coroutine_handle<> h) {
        node.handle = h;
        s.add_writer(node);
        waiting = true;
        if (node.threshold > 0) s.home().backpressure_counter().add();  // over a high-water mark, not a final drain
        if (d.is_set()) timer = s.home().arm_wait_timer(d, &drain_wait::on_timeout, this);
    }
    static void on_timeout(void* p) {
        auto* self = static_cast<drain_wait*>(p);
        self->timer = nullptr;
        if (self->node.woken) return;  // already scheduled: it resumes once, with its threshold met
        self->timed_out = true;
        self->stop_waiting();
        self->node.handle.resume();
    }
    void stop_waiting() noexcept {
        if (std::exchange(waiting, false)) s.remove_writer(node);
    }
    void await_resume() {
        waiting = false;  // a wake-up took it off the list
        if (timer) s.home().disarm_wait_timer(std::exchange(timer, nullptr));
        if (timed_out) throw std::system_error(std::make_error_code(std::errc::timed_out), "cnetmod: tcp_stream send");
        if (s.send_error()) throw std::system_error(s.send_error(), std::system_category(), "cnetmod: tcp_stream send");
        if (!s.is_open() && s.unsent_bytes() > node.threshold)
            throw std::system_error(std::make_error_code(std::errc::not_connected), "cnetmod: tcp_stream closed");
    }
    ~drain_wait() {
        if (timer) s.home().disarm_wait_timer(timer);
        stop_waiting();
    }
};

}  // namespace
}  // namespace cnetmod::detail

namespace cnetmod {

read_waiter::~read_waiter() {
    if (core) core->cancel_read_wait(*this);
}

// The state, or a not_connected error for a default-constructed or moved-from stream.
static detail::socket_core& checked(detail::socket_core* s) {
    if (!s) throw std::system_error(std::make_error_code(std::errc::not_connected), "cnetmod: empty tcp_stream");
    return *s;
}

tcp_stream::tcp_stream(io_context& ctx, int fd, stream_options options)
    : state_(new detail::socket_core(ctx, fd, options)) {}

tcp_stream::tcp_stream(tcp_stream&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

tcp_stream& tcp_stream::operator=(tcp_stream&& other) noexcept {
    if (this != &other) {
        if (state_) state_->release();
        state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
}

tcp_stream::~tcp_stream() {
    if (state_) state_->release();
}

bool tcp_stream::is_open() const noexcept {
    return state_ && state_->is_open();
}
int tcp_stream::native_handle() const noexcept {
    return state_ ? state_->fd() : -1;
}
bool tcp_stream::is_registered() const noexcept {
    return state_ && state_->is_registered();
}
io_context& tcp_stream::context() const noexcept {
    return state_->ctx();
}

ip_endpoint tcp_stream::local_endpoint() const {
    return ip_endpoint::local_of(native_handle());
}
ip_endpoint tcp_stream::remote_endpoint() const {
    return ip_endpoint::peer_of(native_handle());
}

bool tcp_stream::receive_awaiter::await_ready() const noexcept {
    return !s_ || !s_->front().empty() || s_->at_end();
}

void tcp_stream::receive_awaiter::await_suspend(std::coroutine_handle<> h) {
    waiter_.handle = h;
    s_->start_read_wait(waiter_, d_);
}

// The view, empty at the end, or std::system_error (ETIMEDOUT past the
// deadline, or the socket's error).
std::span<const std::byte> tcp_stream::receive_awaiter::await_resume() {
    detail::socket_core& s = checked(s_);
    switch (s.finish_read_wait()) {
        case read_status::data:
            return s.front();
        case read_status::timed_out:
            throw std::system_error(std::make_error_code(std::errc::timed_out), "cnetmod: tcp_stream receive");
        case read_status::failed:
            s.throw_if_receive_failed();
            break;
        case read_status::ended:
            break;
    }
    return {};
}

void tcp_stream::wait_readable(read_waiter& w, deadline d) {
    checked(state_).start_read_wait(w, d);
}

bool tcp_stream::at_end() const noexcept {
    return !state_ || state_->at_end();
}

tcp_stream::read_status tcp_stream::finish_wait_readable() noexcept {
    return state_ ? state_->finish_read_wait() : read_status::ended;
}

void tcp_stream::consume(std::size_t n) noexcept {
    state_->consume(n);
}

std::span<std::byte> tcp_stream::writable_view() noexcept {
    if (!state_) return {};
    // The provided buffers (and fallback buffers) belong to this stream's reader alone.
    auto view = state_->front();
    return {const_cast<std::byte*>(view.data()), view.size()};
}

std::span<std::byte> tcp_stream::queue_space(std::size_t n) {
    return checked(state_).queue_space(n);
}

task<void> tcp_stream::drain_to(std::size_t bytes, deadline d) {
    if (!state_) co_return;
    co_await detail::drain_wait{*state_, bytes, d};
}

task<std::size_t> tcp_stream::recv(std::span<std::byte> out, deadline d) {
    auto view = co_await recv_view(d);
    std::size_t copied = 0;
    // Take everything already buffered that fits, across chunks.
    while (!view.empty() && copied < out.size()) {
        const std::size_t n = std::min(view.size(), out.size() - copied);
        std::memcpy(out.data() + copied, view.data(), n);
        copied += n;
        state_->consume(n);
        view = state_->front();
    }
    co_return copied;
}

std::size_t tcp_stream::buffered() const noexcept {
    return state_ ? state_->buffered() : 0;
}

void tcp_stream::queue(std::span<const std::byte> bytes) {
    auto space = checked(state_).queue_space(bytes.size());
    if (!bytes.empty()) std::memcpy(space.data(), bytes.data(), bytes.size());
}

void tcp_stream::queue(shared_buffer buffer) {
    checked(state_).queue(std::move(buffer));
}

task<void> tcp_stream::send(std::span<const std::byte> bytes, deadline d) {
    queue(bytes);
    detail::socket_core& s = *state_;
    if (s.unsent_bytes() > s.send_high_water()) co_await detail::drain_wait{s, s.send_high_water() / 2, d};
}

task<void> tcp_stream::drain(deadline d) {
    if (!state_) co_return;
    co_await detail::drain_wait{*state_, 0, d};
}

std::size_t tcp_stream::queued_bytes() const noexcept {
    return state_ ? state_->unsent_bytes() : 0;
}
std::uint64_t tcp_stream::send_calls() const noexcept {
    return state_ ? state_->send_calls() : 0;
}
std::size_t tcp_stream::send_capacity() const noexcept {
    return state_ ? state_->send_capacity() : 0;
}
std::uint64_t tcp_stream::zero_copy_sends() const noexcept {
    return state_ ? state_->zero_copy_sends() : 0;
}

void tcp_stream::queue_received(std::size_t n) {
    checked(state_).queue_received(n);
}

void tcp_stream::queue(registered_buffer buffer) {
    checked(state_).queue(std::move(buffer));
}

task<void> tcp_stream::close(deadline d) {
    if (!state_ || !state_->is_open()) co_return;
    detail::socket_core& s = *state_;
    try {
        if (s.is_tls()) static_cast<detail::tls_socket&>(s).close_notify();
        co_await drain(d);
        co_await s.shutdown_send();
        // Read until the peer closes its side too, so the close is not turned
        // into a reset by unread data.
        for (;;) {
            auto view = co_await recv_view(d);
            if (view.empty()) break;
            s.consume(view.size());
        }
    } catch (const std::system_error&) {
        // Deadline or a reset: close regardless.
    }
    s.close_now(false);
}

void tcp_stream::start_tls(const tls_context& context, std::string_view server_name, deadline handshake_deadline) {
    checked(state_);
    detail::tls_socket::start(state_, context, server_name, handshake_deadline);
}

// The TLS layer of this stream, or nullptr for a plain one.
static const tls_session* session_of(const detail::socket_core* s) noexcept {
    return s && s->is_tls() ? &static_cast<const detail::tls_socket*>(s)->session() : nullptr;
}
bool tcp_stream::is_tls() const noexcept {
    return session_of(state_) != nullptr;
}
bool tcp_stream::tls_failed() const noexcept {
    const tls_session* t = session_of(state_);
    return t && t->failed();
}
std::string tcp_stream::tls_error() const {
    const tls_session* t = session_of(state_);
    return t ? t->error_text() : std::string();
}
std::string_view tcp_stream::tls_version() const noexcept {
    const tls_session* t = session_of(state_);
    return t ? t->version() : std::string_view();
}
std::string_view tcp_stream::alpn() const noexcept {
    const tls_session* t = session_of(state_);
    return t ? t->alpn() : std::string_view();
}

void tcp_stream::abort() noexcept {
    if (state_) state_->close_now(true);
}

std::size_t tcp_stream::discard_queued() noexcept {
    return state_ ? state_->discard_queued() : 0;
}

task<tcp_stream> tcp_connect(io_context& ctx, ip_endpoint endpoint, deadline d, std::stop_token stop,
                             stream_options options) {
    int fd = ::socket(endpoint.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "cnetmod: socket");
    const sockaddr* addr = endpoint.data();
    const socklen_t len = endpoint.size();
    const int rc = co_await submit(
        ctx, [fd, addr, len](io_uring_sqe* sqe) { io_uring_prep_connect(sqe, fd, addr, len); }, d, stop);
    if (rc < 0) {
        ::close(fd);
        throw std::system_error(-rc, std::system_category(), "cnetmod: connect to " + endpoint.to_string());
    }
    co_return tcp_stream(ctx, fd, options);
}

task<tcp_stream> tcp_connect(io_context& ctx, std::string host, std::uint16_t port, deadline d, std::stop_token stop,
                             stream_options options) {
    auto endpoints = co_await resolve(ctx, host, port);
    std::exception_ptr last;
    for (const auto& ep : endpoints) {
        try {
            co_return co_await tcp_connect(ctx, ep, d, stop, options);
        } catch (const std::system_error&) {
            last = std::current_exception();
        }
    }
    std::rethrow_exception(last);
}

}  // namespace cnetmod
