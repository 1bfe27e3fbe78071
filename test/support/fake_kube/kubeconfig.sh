#!/usr/bin/env bash
# Writes a kubeconfig (to stdout) for a fake-kube server, the way a real cluster's would look:
# cluster with certificate-authority-data (base64 PEM), a user with a bearer token and/or a
# client certificate, one context that is current.
# Usage: kubeconfig.sh --server https://127.0.0.1:PORT [--ca CA.crt] [--token TOKEN]
#                      [--client-cert C --client-key K] [--namespace NS] [--name NAME]
set -euo pipefail
server= ca= token= cert= key= ns= name=fake-kube
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server=$2; shift 2 ;;
    --ca) ca=$2; shift 2 ;;
    --token) token=$2; shift 2 ;;
    --client-cert) cert=$2; shift 2 ;;
    --client-key) key=$2; shift 2 ;;
    --namespace) ns=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    *) echo "kubeconfig.sh: unknown argument $1 (see the usage line in $0)" >&2; exit 2 ;;
  esac
done
[ -n "$server" ] || { echo "kubeconfig.sh: --server is required" >&2; exit 2; }
b64() { base64 -w0 < "$1"; }
echo "apiVersion: v1"
echo "kind: Config"
echo "current-context: $name"
echo "clusters:"
echo "- name: $name"
echo "  cluster:"
echo "    server: $server"
[ -z "$ca" ] || echo "    certificate-authority-data: $(b64 "$ca")"
echo "contexts:"
echo "- name: $name"
echo "  context:"
echo "    cluster: $name"
echo "    user: $name"
[ -z "$ns" ] || echo "    namespace: $ns"
echo "users:"
echo "- name: $name"
echo "  user:"
[ -z "$token" ] || echo "    token: $token"
[ -z "$cert" ] || echo "    client-certificate-data: $(b64 "$cert")"
[ -z "$key" ] || echo "    client-key-data: $(b64 "$key")"
if [ -z "$token$cert" ]; then echo "    {}"; fi
