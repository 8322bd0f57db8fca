#!/usr/bin/env bash
# Certificates for node TLS (NODE_TLS=required): a CA every node trusts and,
# per node, a key and a certificate signed by that CA (mutual TLS: each node
# presents its own certificate; plaintext peers are refused).
#
#   scripts/make-node-certs.sh DIR NAME...
#   scripts/make-node-certs.sh deploy/node-certs auditor-node ingress-node
#
# DIR/ca.pem, DIR/ca.key   the CA (RSA 2048, 10 years), made unless DIR/ca.pem
#                          exists; an existing CA is reused and needs DIR/ca.key
#                          only to sign new node certificates.
# DIR/NAME.pem, NAME.key   the node's certificate (CN=NAME, subjectAltName
#                          DNS:NAME, serverAuth and clientAuth: a node both
#                          serves stages and connects to other nodes, RSA 2048,
#                          825 days) and its unencrypted key.
#
# Idempotent: a node certificate is kept when it verifies against DIR/ca.pem,
# matches its key and is valid for 30 more days; otherwise it is made again
# (e.g. after a new CA). Keys are mode 0600: the worker image runs as uid
# 10001, so for docker-compose.yml `chown 10001 DIR/NAME.key` for each node
# (as root; not DIR/ca.key, which no node needs: keep it elsewhere once the
# certificates are made, and bring it back to sign more).
#
# Prints (stdout) for each NAME the NODE_TLS_* lines of that node's
# environment, with the paths under DIR, or under MOUNTED_AT when set (where
# DIR is mounted on the node: MOUNTED_AT=/etc/vote-worker/node-certs for
# docker-compose.yml). Progress goes to stderr.
set -euo pipefail

usage() {
  echo "usage: $0 DIR NAME..." >&2
  echo "  e.g. $0 deploy/node-certs auditor-node ingress-node" >&2
  exit 2
}
die() {
  echo "make-node-certs: $*" >&2
  exit 1
}
say() { echo "make-node-certs: $*" >&2; }

[[ $# -ge 2 ]] || usage
[[ "$1" != -* ]] || usage
DIR=$1
shift
NAMES=("$@")

command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"

DAYS=825
CA_DAYS=3650
RENEW_BEFORE_S=$((30 * 24 * 3600))

for name in "${NAMES[@]}"; do
  # A DNS name (it is the certificate's subjectAltName) and a file name.
  [[ "$name" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]] ||
    die "'$name' is not a host name (letters, digits, '-' and '.')"
  [[ "$name" != ca ]] || die "'ca' is the CA's file name; pick another node name"
done

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
SHOWN_DIR=${MOUNTED_AT:-$DIR}
SHOWN_DIR=${SHOWN_DIR%/}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ---- CA ------------------------------------------------------------------------------
if [[ -f "$DIR/ca.pem" ]]; then
  openssl x509 -in "$DIR/ca.pem" -noout 2>/dev/null || die "$DIR/ca.pem is not a PEM certificate"
  say "CA: keeping $DIR/ca.pem ($(openssl x509 -in "$DIR/ca.pem" -noout -subject))"
else
  [[ ! -e "$DIR/ca.key" ]] ||
    die "$DIR/ca.key exists without $DIR/ca.pem; move it away to make a new CA"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days "$CA_DAYS" -sha256 \
      -subj "/CN=vote-worker node CA" \
      -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign \
      -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>"$TMP/openssl.log"
  ) || die "openssl could not make the CA: $(cat "$TMP/openssl.log")"
  chmod 0600 "$TMP/ca.key"
  chmod 0644 "$TMP/ca.pem"
  mv "$TMP/ca.key" "$DIR/ca.key"
  mv "$TMP/ca.pem" "$DIR/ca.pem"
  say "CA: made $DIR/ca.pem and $DIR/ca.key"
fi

# ---- nodes -----------------------------------------------------------------------------
# usable NAME: the node's certificate verifies against the CA, belongs to its
# key and is valid for RENEW_BEFORE_S more seconds.
usable() {
  local pem=$DIR/$1.pem key=$DIR/$1.key
  [[ -f "$pem" && -f "$key" ]] || return 1
  openssl verify -CAfile "$DIR/ca.pem" "$pem" >/dev/null 2>&1 || return 1
  openssl x509 -in "$pem" -noout -checkend "$RENEW_BEFORE_S" >/dev/null 2>&1 || return 1
  [[ "$(openssl x509 -in "$pem" -noout -pubkey 2>/dev/null)" == \
    "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ]] || return 1
}

for name in "${NAMES[@]}"; do
  if usable "$name"; then
    chmod 0600 "$DIR/$name.key"
    say "$name: keeping $DIR/$name.pem (signed by the CA, valid until $(openssl x509 -in "$DIR/$name.pem" -noout -enddate | cut -d= -f2))"
    continue
  fi
  [[ -f "$DIR/ca.key" ]] ||
    die "$name: no usable certificate and no $DIR/ca.key to sign one (the CA's key is needed; or remove $DIR/ca.pem to make a new CA, then every node's certificate again)"
  printf '%s\n' basicConstraints=critical,CA:FALSE \
    keyUsage=critical,digitalSignature,keyEncipherment \
    extendedKeyUsage=serverAuth,clientAuth "subjectAltName=DNS:$name" >"$TMP/$name.ext"
  (
    umask 077
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" \
      -keyout "$TMP/$name.key" -out "$TMP/$name.csr" 2>"$TMP/openssl.log" &&
      openssl x509 -req -days "$DAYS" -sha256 -in "$TMP/$name.csr" \
        -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
        -extfile "$TMP/$name.ext" -out "$TMP/$name.pem" 2>>"$TMP/openssl.log"
  ) || die "$name: openssl could not make the certificate: $(cat "$TMP/openssl.log")"
  openssl verify -CAfile "$DIR/ca.pem" "$TMP/$name.pem" >/dev/null ||
    die "$name: the new certificate does not verify against $DIR/ca.pem"
  chmod 0600 "$TMP/$name.key"
  chmod 0644 "$TMP/$name.pem"
  mv "$TMP/$name.key" "$DIR/$name.key"
  mv "$TMP/$name.pem" "$DIR/$name.pem"
  say "$name: made $DIR/$name.pem and $DIR/$name.key (CN=$name, DNS:$name, $DAYS days)"
done

# ---- environment lines -----------------------------------------------------------------
for name in "${NAMES[@]}"; do
  printf '# %s\n' "$name"
  printf 'NODE_TLS=required\n'
  printf 'NODE_TLS_CERT=%s/%s.pem\n' "$SHOWN_DIR" "$name"
  printf 'NODE_TLS_KEY=%s/%s.key\n' "$SHOWN_DIR" "$name"
  printf 'NODE_TLS_CA=%s/ca.pem\n' "$SHOWN_DIR"
done
