#include <cnetmod/proto/ws/handshake.hpp>

#include <openssl/evp.h>
#include <sys/random.h>

#include <stdexcept>

namespace cnetmod::ws {

std::string accept_key(std::string_view client_key) {
    static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::string input;
    input.reserve(client_key.size() + guid.size());
    input.append(client_key);
    input.append(guid);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr) != 1)
        throw std::runtime_error("cnetmod: OpenSSL SHA-1 failed");
    unsigned char out[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    const int n = EVP_EncodeBlock(out, digest, static_cast<int>(digest_len));
    return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

std::string generate_client_key() {
    unsigned char bytes[16];
    if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) throw std::runtime_error("cnetmod: getrandom failed");
    unsigned char out[25];
    const int n = EVP_EncodeBlock(out, bytes, sizeof bytes);
    return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

}  // namespace cnetmod::ws
