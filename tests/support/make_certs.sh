#!/bin/sh
# Makes throwaway TLS material for tests in DIR (created if missing):
#   ca.pem, ca.key          a self-signed CA (EC P-256), trusted by nobody else
#   server.pem, server.key  a certificate for DNS:localhost, IP:127.0.0.1 and
#                           IP:::1, signed by that CA
#   server-chain.pem        server.pem followed by ca.pem
#   bad.pem                 a file that is not PEM at all
# Usage: make_certs.sh DIR    (needs the openssl command line, 1.1.1 or 3.x)
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
mkdir -p "$1"
cd "$1"

# Our own configuration, so that the system's openssl.cnf (whose default
# extensions differ between distributions) cannot add or clash with ours.
cat > certs.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = cnetmod test CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

# openssl prints progress to stderr; keep it in a log, shown only on failure.
quiet() {
    "$@" 2>>openssl.log || { cat openssl.log >&2; exit 1; }
}

quiet openssl req -x509 -config certs.cnf -extensions ca_ext -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -nodes -keyout ca.key -out ca.pem -days 30
quiet openssl req -new -config certs.cnf -subj /CN=localhost -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -nodes -keyout server.key -out server.csr
# `x509 -req` copies no extensions from the request by default (and 1.1.1 has
# no -copy_extensions), so the SAN and the rest come from the extension file.
quiet openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 30 \
    -extfile certs.cnf -extensions server_ext -out server.pem
cat server.pem ca.pem > server-chain.pem
echo "this is not a PEM file" > bad.pem
rm -f server.csr openssl.log
