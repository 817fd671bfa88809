#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/tcp_listener.hpp>

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <vector>

namespace cnetmod::detail {

class listener_state : completion, orphan_node {
public:
    listener_state(io_context& ctx, int fd, listen_options options)
        : completion(&listener_state::on_accept), ctx_(ctx), fd_(fd), options_(options) {}

    io_context& ctx() const noexcept { return ctx_; }
    int fd() const noexcept { return fd_; }
    const listen_options& options() const noexcept { return options_; }

    void arm() {
        if (armed_ || fd_ < 0 || reactor_of(ctx_).closing()) return;
        io_uring_sqe* sqe = reactor_of(ctx_).acquire_sqe();
        io_uring_prep_multishot_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
        io_uring_sqe_set_data(sqe, static_cast<completion*>(this));
        armed_ = true;
        ++pending_;
    }

    struct accept_wait {
        // A constructor, not aggregate initialisation: g++ 12 miscompiles an
        // aggregate temporary awaited in place (its members are not copied).
        accept_wait(listener_state& state, deadline at) : s(state), d(at) {}
        listener_state& s;
        deadline d;
        std::coroutine_handle<> handle;
        wait_timer* timer = nullptr;
        bool timed_out = false;

        bool await_ready() const noexcept { return !s.accepted_.empty() || s.fd_ < 0; }
        void await_suspend(std::coroutine_handle<> h) {
            handle = h;
            s.waiters_.push_back(this);
            if (d.is_set()) timer = reactor_of(s.ctx_).arm_wait_timer(d, &accept_wait::on_timeout, this);
        }
        static void on_timeout(void* p) {
            auto* w = static_cast<accept_wait*>(p);
            w->timer = nullptr;
            w->timed_out = true;
            std::erase(w->s.waiters_, w);
            w->handle.resume();
        }
        void await_resume() {
            if (timer) {
                reactor_of(s.ctx_).disarm_wait_timer(timer);
                timer = nullptr;
            }
            if (timed_out) throw std::system_error(std::make_error_code(std::errc::timed_out), "cnetmod: accept");
        }
        ~accept_wait() {
            if (timer) reactor_of(s.ctx_).disarm_wait_timer(timer);
            std::erase(s.waiters_, this);
        }
    };

    // Takes the oldest accepted socket, or -1 when closed.
    int take() {
        if (accepted_.empty()) return -1;
        int fd = accepted_.front();
        accepted_.pop_front();
        if (paused_ && accepted_.size() <= options_.max_queued / 2) {
            paused_ = false;
            arm();
        }
        return fd;
    }

    void close() noexcept {
        if (fd_ < 0) return;
        if (armed_) reactor_of(ctx_).cancel(static_cast<completion*>(this));
        if (retry_timer_) {
            reactor_of(ctx_).disarm_wait_timer(retry_timer_);
            retry_timer_ = nullptr;
        }
        ::close(fd_);
        fd_ = -1;
        for (int fd : accepted_) ::close(fd);
        accepted_.clear();
        auto waiters = std::move(waiters_);
        waiters_.clear();
        for (auto* w : waiters) reactor_of(ctx_).schedule(w->handle);
    }

    void release() noexcept {
        released_ = true;
        close();
        if (pending_ == 0) {
            delete this;
        } else {
            destroy = [](orphan_node* n) { delete static_cast<listener_state*>(n); };
            reactor_of(ctx_).add_orphan(*this);  // the last CQE deletes it, or the context does
        }
    }

private:
    static void on_accept(completion* c, int result, std::uint32_t flags) {
        auto* s = static_cast<listener_state*>(c);
        if (result >= 0) {
            if (s->released_ || s->fd_ < 0)
                ::close(result);
            else
                s->deliver(result);
        }
        if (!(flags & IORING_CQE_F_MORE)) {
            s->armed_ = false;
            if (--s->pending_ == 0 && s->released_) {
                reactor_of(s->ctx_).remove_orphan(*s);
                delete s;
                return;
            }
            if (s->released_ || s->fd_ < 0) return;
            if (result < 0 && result != -ECANCELED) {
                // EMFILE, ENFILE, ENOMEM…: try again shortly rather than spin.
                s->retry_timer_ = reactor_of(s->ctx_).arm_wait_timer(timeout(std::chrono::milliseconds(50)),
                                                                     &listener_state::on_retry, s);
            } else if (!s->paused_) {
                s->arm();
            }
        }
    }

    static void on_retry(void* p) {
        auto* s = static_cast<listener_state*>(p);
        s->retry_timer_ = nullptr;
        s->arm();
    }

    void deliver(int fd) {
        accepted_.push_back(fd);
        if (!waiters_.empty()) {
            accept_wait* w = waiters_.front();
            waiters_.erase(waiters_.begin());
            w->handle.resume();
        }
        if (armed_ && !paused_ && accepted_.size() >= options_.max_queued) {
            paused_ = true;
            reactor_of(ctx_).cancel(static_cast<completion*>(this));
        }
    }

    friend class cnetmod::tcp_listener;

    io_context& ctx_;
    int fd_;
    listen_options options_;
    std::deque<int> accepted_;
    std::vector<accept_wait*> waiters_;
    wait_timer* retry_timer_ = nullptr;
    int pending_ = 0;
    bool armed_ = false;
    bool paused_ = false;
    bool released_ = false;
};

}  // namespace cnetmod::detail

namespace cnetmod {

tcp_listener tcp_listener::bind(io_context& ctx, const ip_endpoint& endpoint, listen_options options) {
    return adopt(ctx, open_socket(endpoint, options), options);
}

tcp_listener tcp_listener::adopt(io_context& ctx, int fd, listen_options options) {
    auto* state = new detail::listener_state(ctx, fd, options);
    state->arm();
    return tcp_listener(state);
}

int tcp_listener::open_socket(const ip_endpoint& endpoint, const listen_options& options) {
    int fd = ::socket(endpoint.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "cnetmod: socket");
    auto fail = [&](const char* what) {
        int err = errno;
        ::close(fd);
        throw std::system_error(err, std::system_category(),
                                std::string("cnetmod: ") + what + " " + endpoint.to_string());
    };
    int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) fail("SO_REUSEADDR on");
    if (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) fail("SO_REUSEPORT on");
    if (options.keepalive) {
        // Accepted sockets inherit these (Linux copies the listener's
        // options); the kernel takes 1..32767 s and 1..127 probes.
        const int idle = static_cast<int>(std::clamp<std::int64_t>(options.keepalive_idle.count(), 1, 32767));
        const int interval = static_cast<int>(std::clamp<std::int64_t>(options.keepalive_interval.count(), 1, 32767));
        const int count = std::clamp(options.keepalive_count, 1, 127);
        if (::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) < 0 ||
            ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
            ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) < 0 ||
            ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) < 0)
            fail("TCP keepalive on");
    }
    if (endpoint.is_v6()) {
        int v6only = options.v6_only ? 1 : 0;
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
    if (::bind(fd, endpoint.data(), endpoint.size()) < 0) fail("cannot bind");
    if (::listen(fd, options.backlog) < 0) fail("cannot listen on");
    return fd;
}

void tcp_listener::ensure_port_free(const ip_endpoint& endpoint) {
    int fd = ::socket(endpoint.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "cnetmod: socket");
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // TIME_WAIT is no reason to refuse
    int dual = 0;                                                  // [::] also probes the IPv4 port
    if (endpoint.is_v6()) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &dual, sizeof dual);
    const int rc = ::bind(fd, endpoint.data(), endpoint.size());
    const int err = errno;
    ::close(fd);
    if (rc < 0) throw std::system_error(err, std::system_category(), "cnetmod: cannot bind " + endpoint.to_string());
}

tcp_listener::tcp_listener(tcp_listener&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

tcp_listener& tcp_listener::operator=(tcp_listener&& other) noexcept {
    if (this != &other) {
        if (state_) state_->release();
        state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
}

tcp_listener::~tcp_listener() {
    if (state_) state_->release();
}

task<tcp_stream> tcp_listener::accept(deadline d) {
    if (!state_ || state_->fd() < 0)
        throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                "cnetmod: accept on a closed listener");
    detail::listener_state& s = *state_;
    co_await detail::listener_state::accept_wait{s, d};
    int fd = s.take();
    if (fd < 0)
        throw std::system_error(std::make_error_code(std::errc::operation_canceled), "cnetmod: listener closed");
    co_return tcp_stream(s.ctx(), fd, s.options().stream);
}

ip_endpoint tcp_listener::local_endpoint() const {
    return ip_endpoint::local_of(native_handle());
}

int tcp_listener::native_handle() const noexcept {
    return state_ ? state_->fd() : -1;
}
bool tcp_listener::is_open() const noexcept {
    return state_ && state_->fd() >= 0;
}
void tcp_listener::close() noexcept {
    if (state_) state_->close();
}

}  // namespace cnetmod
