// A Boost.Beast asynchronous WebSocket echo server, the C++ peer of the
// comparison runs: one thread, one io_context, one session per connection
// reading a message and writing it back with its type, as Beast's own
// asynchronous echo example does. No compression; TCP_NODELAY as cnetmod.
//
//   build/bench/beast_echo PORT
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

class session : public std::enable_shared_from_this<session> {
public:
    explicit session(tcp::socket&& socket) : ws_(std::move(socket)) {}

    void run() {
        ws_.next_layer().socket().set_option(tcp::no_delay(true));
        ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        ws_.read_message_max(64 * 1024 * 1024);
        ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
            if (!ec) self->read();
        });
    }

private:
    void read() {
        ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;  // closed or failed: the session ends
            self->ws_.text(self->ws_.got_text());
            self->ws_.async_write(self->buffer_.data(), [self](beast::error_code wec, std::size_t) {
                if (wec) return;
                self->buffer_.consume(self->buffer_.size());
                self->read();
            });
        });
    }

    websocket::stream<beast::tcp_stream> ws_;
    beast::flat_buffer buffer_;
};

class listener : public std::enable_shared_from_this<listener> {
public:
    listener(asio::io_context& ioc, tcp::endpoint endpoint) : ioc_(ioc), acceptor_(ioc) {
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(endpoint);
        acceptor_.listen(asio::socket_base::max_listen_connections);
    }
    void accept() {
        acceptor_.async_accept(asio::make_strand(ioc_),
                               [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
                                   if (!ec) std::make_shared<session>(std::move(socket))->run();
                                   self->accept();
                               });
    }

private:
    asio::io_context& ioc_;
    tcp::acceptor acceptor_;
};

}  // namespace

int main(int argc, char** argv) {
    const auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 8080);
    asio::io_context ioc{1};
    std::make_shared<listener>(ioc, tcp::endpoint{asio::ip::make_address("127.0.0.1"), port})->accept();
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) { ioc.stop(); });
    std::printf("beast echo on ws://127.0.0.1:%u/ws\n", static_cast<unsigned>(port));
    std::fflush(stdout);
    ioc.run();
}
