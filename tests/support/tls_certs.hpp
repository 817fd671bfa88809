// Throwaway TLS material for tests: a private CA and a server certificate for
// localhost / 127.0.0.1 / ::1 signed by it, made at test time by
// tests/support/make_certs.sh (whose path the build passes as
// MAKE_CERTS_SCRIPT) in a fresh directory under /tmp, removed again when the
// test_certs that names it is destroyed.
//
//   static const test_certs certs = make_test_certs();   // once per test binary
#pragma once

#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

#ifndef MAKE_CERTS_SCRIPT
#error "MAKE_CERTS_SCRIPT must name tests/support/make_certs.sh (see tests/meson.build)"
#endif

namespace cnetmod::testing_support {

struct test_certs {
    std::string dir;
    std::string ca_file;      // the CA certificate (trust anchor for clients)
    std::string ca_key_file;  // the CA's key: a key that does not match cert_file
    std::string cert_file;    // the server certificate alone
    std::string chain_file;   // the server certificate followed by the CA
    std::string key_file;     // the server certificate's key
    std::string bad_file;     // not PEM at all

    test_certs() = default;
    test_certs(test_certs&& other) noexcept { *this = std::move(other); }
    test_certs& operator=(test_certs&& other) noexcept {
        std::swap(dir, other.dir);
        ca_file = std::move(other.ca_file);
        ca_key_file = std::move(other.ca_key_file);
        cert_file = std::move(other.cert_file);
        chain_file = std::move(other.chain_file);
        key_file = std::move(other.key_file);
        bad_file = std::move(other.bad_file);
        return *this;
    }
    ~test_certs() {
        std::error_code ignored;
        if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
    }
};

// Throws std::runtime_error when the directory or the certificates cannot be made.
inline test_certs make_test_certs() {
    char pattern[] = "/tmp/cnetmod-certs-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("make_test_certs: mkdtemp under /tmp failed");
    test_certs certs;
    certs.dir = pattern;
    const std::string command = std::string("sh '") + MAKE_CERTS_SCRIPT + "' '" + certs.dir + "'";
    const int status = std::system(command.c_str());
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("make_test_certs: '" + command + "' failed (is the openssl command installed?)");
    certs.ca_file = certs.dir + "/ca.pem";
    certs.ca_key_file = certs.dir + "/ca.key";
    certs.cert_file = certs.dir + "/server.pem";
    certs.chain_file = certs.dir + "/server-chain.pem";
    certs.key_file = certs.dir + "/server.key";
    certs.bad_file = certs.dir + "/bad.pem";
    return certs;
}

}  // namespace cnetmod::testing_support
