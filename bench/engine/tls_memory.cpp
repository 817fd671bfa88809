// What OpenSSL keeps per idle server tls_session, by call site: N sessions
// shake hands with an in-memory client (TLS 1.3 unless --tls12), echo one
// message and are released as an idle connection is; every allocation made
// through OpenSSL while a server session is driven is counted by the file
// and line OpenSSL names (CRYPTO_set_mem_functions), and what is still live
// at the end is printed per session, largest first.
//
//   sh tests/support/make_certs.sh /tmp/certs
//   build/bench/engine_tls_memory /tmp/certs/server.pem /tmp/certs/server.key [N] [--tls12]
//
// The client's allocations and one-time ones (the contexts, the providers'
// caches, shown as fractions of an allocation) are told apart this way, so
// the figure is OpenSSL's own per session, without malloc's headers.
#include <cnetmod/engine/tls.hpp>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace {

// Each block carries who allocated it, ahead of what OpenSSL sees (16-byte
// aligned, as malloc's own blocks are).
struct alignas(16) block_header {
    std::size_t size;
    const char* file;
    int line;
    bool counted;
};

struct site_total {
    long bytes = 0;
    long blocks = 0;
};

bool counting = false;  // a server session is being driven
std::map<std::pair<const char*, int>, site_total>* sites = nullptr;

void note(const block_header* h, long sign) {
    auto& site = (*sites)[{h->file, h->line}];
    site.bytes += sign * static_cast<long>(h->size);
    site.blocks += sign;
}

void* counted_malloc(std::size_t n, const char* file, int line) {
    auto* h = static_cast<block_header*>(std::malloc(sizeof(block_header) + n));
    if (h == nullptr) return nullptr;
    *h = {n, file, line, counting};
    if (h->counted) note(h, 1);
    return h + 1;
}

void counted_free(void* p, const char*, int) {
    if (p == nullptr) return;
    auto* h = static_cast<block_header*>(p) - 1;
    if (h->counted) note(h, -1);
    std::free(h);
}

void* counted_realloc(void* p, std::size_t n, const char* file, int line) {
    if (p == nullptr) return counted_malloc(n, file, line);
    auto* h = static_cast<block_header*>(p) - 1;
    const block_header old = *h;
    auto* grown = static_cast<block_header*>(std::realloc(h, sizeof(block_header) + n));
    if (grown == nullptr) return nullptr;
    if (old.counted) note(&old, -1);
    *grown = {n, file, line, counting};
    if (grown->counted) note(grown, 1);
    return grown + 1;
}

void transfer(cnetmod::tls_session& from, cnetmod::tls_session& to) {
    std::byte buffer[16 * 1024];
    while (const std::size_t n = from.take_output(buffer)) to.feed(std::span(buffer, n));
}

// Runs `step` on the server session with counting on.
template <class F>
void on_server(F&& step) {
    counting = true;
    step();
    counting = false;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s CERT KEY [N] [--tls12]\n", argv[0]);
        return 2;
    }
    // Before OpenSSL allocates anything: it refuses once it has.
    sites = new std::map<std::pair<const char*, int>, site_total>;
    if (CRYPTO_set_mem_functions(counted_malloc, counted_realloc, counted_free) != 1) {
        std::fprintf(stderr, "OpenSSL allocated before main: cannot count\n");
        return 1;
    }
    const int n = argc > 3 && std::strcmp(argv[3], "--tls12") != 0 ? std::atoi(argv[3]) : 200;
    const bool tls12 = std::string_view(argv[argc - 1]) == "--tls12";
    using cnetmod::tls_context;
    using cnetmod::tls_session;
    const auto server_context = tls_context::server({.cert_file = argv[1], .key_file = argv[2]});
    const auto client_context = tls_context::client({.verify = false});
    if (tls12) SSL_CTX_set_max_proto_version(client_context.native(), TLS1_2_VERSION);

    std::vector<tls_session> servers;
    servers.reserve(n);
    for (int i = 0; i < n; ++i) {
        tls_session client(client_context, "localhost");
        on_server([&] { servers.emplace_back(server_context); });
        tls_session& server = servers.back();
        for (int round = 0; round < 4 && !(client.handshake_done() && server.handshake_done()); ++round) {
            client.handshake();
            transfer(client, server);
            on_server([&] { server.handshake(); });
            transfer(server, client);
        }
        const char message[] = "hello";
        client.write(std::as_bytes(std::span(message)));
        transfer(client, server);
        on_server([&] {
            std::byte echo[64];
            const std::size_t got = server.read(echo);
            server.write(std::span(echo, got));
        });
        transfer(server, client);
        std::byte none[64];
        client.read(none);
        on_server([&] { server.release_buffers(); });
    }

    long total = 0;
    std::vector<std::pair<long, std::string>> rows;
    for (const auto& [site, live] : *sites) {
        total += live.bytes;
        if (live.bytes / n == 0) continue;
        char blocks[32];
        std::snprintf(blocks, sizeof blocks, " (%.2f blocks)", static_cast<double>(live.blocks) / n);
        rows.emplace_back(live.bytes / n,
                          std::string(site.first ? site.first : "?") + ":" + std::to_string(site.second) + blocks);
    }
    std::sort(rows.rbegin(), rows.rend());
    std::printf("%s: OpenSSL keeps %ld bytes per idle server session (%d sessions)\n", servers.front().version().data(),
                total / n, n);
    for (const auto& [bytes, where] : rows) std::printf("%8ld  %s\n", bytes, where.c_str());
}
