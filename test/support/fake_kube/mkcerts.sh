#!/usr/bin/env bash
# Mints throwaway TLS material for fake-kube in DIR with the openssl CLI:
#   ca.crt/ca.key          a test CA
#   server.crt/server.key  server certificate for 127.0.0.1, ::1 and localhost, signed by the CA
#   client.crt/client.key  client certificate (CN=mflow-client, O=system:masters) for
#                          server.py --client-ca DIR/ca.crt
#   other-ca.crt/.key      an unrelated CA (tests use it to prove a wrong CA fails TLS)
# Usage: mkcerts.sh DIR
set -euo pipefail
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
days=2
mkca() {  # mkca NAME CN
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days $days \
    -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
mkca ca fake-kube-test-ca
mkca other-ca unrelated-test-ca
cat > server.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EXT
cat > client.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EXT
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
  -subj "/CN=fake-kube-apiserver" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
  -days $days -extfile server.ext 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr \
  -subj "/O=system:masters/CN=mflow-client" 2>/dev/null
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt \
  -days $days -extfile client.ext 2>/dev/null
rm -f server.csr client.csr server.ext client.ext ca.srl
chmod 600 ./*.key
