#!/usr/bin/env bash
# tls-certs.sh: write a throwaway CA and certificates for the HTTPS of the
# compose stack (docker-compose.tls.yml); for tests and trials, not for
# production.
#
# Usage: scripts/tls-certs.sh [dir]      (default: $TLS_DIR or deploy/tls)
#
# Writes into dir:
#   ca.crt, ca.key           the CA (kept when present, so running the script
#                            again rotates the certificates under the same CA)
#   node.crt, node.key       the nodes' certificate, for DNS leader, follower,
#                            localhost and IP 127.0.0.1, ::1; server and client
#                            authentication (the healthcheck presents it under
#                            mutual TLS)
#   client.crt, client.key   a client certificate for curl under mutual TLS
# Each file is replaced by renaming a new one over it: running nodes pick up
# the new pair at their next TLS handshake, at most a second later.
# node.key is made readable by everyone (mode 0644) so that the containers'
# user (uid 65532) can read it from a bind mount: keep the directory in a
# private place.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-${TLS_DIR:-$ROOT/deploy/tls}}"
DAYS="${TLS_DAYS:-90}"

command -v openssl >/dev/null 2>&1 || { echo "tls-certs.sh: openssl is not installed" >&2; exit 1; }
mkdir -p "$DIR"
chmod 0755 "$DIR" # the containers' user must reach the files through the bind mount
DIR="$(cd "$DIR" && pwd)"
work="$(mktemp -d "$DIR/.tls-certs.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [[ ! -f "$DIR/ca.crt" || ! -f "$DIR/ca.key" ]]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
		-subj "/CN=replikv throwaway CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
	chmod 0600 "$work/ca.key"
	mv "$work/ca.key" "$DIR/ca.key"
	mv "$work/ca.crt" "$DIR/ca.crt"
fi

# issue NAME CN SAN EKU: a key and a certificate signed by the CA.
issue() {
	local name="$1" cn="$2" san="$3" eku="$4"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
		-keyout "$work/$name.key" -out "$work/$name.csr" 2>/dev/null
	{
		[[ -n "$san" ]] && printf 'subjectAltName=%s\n' "$san"
		printf 'extendedKeyUsage=%s\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n' "$eku"
	} >"$work/$name.ext"
	openssl x509 -req -in "$work/$name.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -extfile "$work/$name.ext" \
		-out "$work/$name.crt" 2>/dev/null
}

issue node "replikv node" "DNS:leader,DNS:follower,DNS:localhost,IP:127.0.0.1,IP:::1" "serverAuth,clientAuth"
issue client "replikv client" "" "clientAuth"
chmod 0644 "$work/node.key" "$work/node.crt" "$work/client.crt"
chmod 0600 "$work/client.key"
# The certificate first: a node that reads the new certificate with the old key keeps its previous pair and tries
# again at its next check.
for f in node.crt node.key client.crt client.key; do
	mv "$work/$f" "$DIR/$f"
done
echo "tls-certs.sh: wrote $DIR/{ca,node,client}.{crt,key}" >&2
