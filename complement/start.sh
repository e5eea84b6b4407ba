#!/bin/sh
# Starts Haven as Complement expects: the client API on 8008, federation over TLS on 8448 with
# a certificate for $SERVER_NAME signed by Complement's CA (which Haven also trusts for its own
# outbound federation), open registration, no rate limits, storage inside the container.
# (Its own settings are START_*: HAVEN_* variables would be read by Haven as config keys.)
set -eu
: "${SERVER_NAME:?Complement sets SERVER_NAME}"
CA_DIR="${COMPLEMENT_CA_DIR:-/complement/ca}"
DATA="${START_DATA_DIR:-/data}"
CLIENT_PORT="${START_CLIENT_PORT:-8008}"
FEDERATION_PORT="${START_FEDERATION_PORT:-8448}"
LISTEN_HOST="${START_LISTEN_HOST:-0.0.0.0}"
HOST="${SERVER_NAME%:*}"

mkdir -p "$DATA/tls"
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$HOST" \
    -keyout "$DATA/tls/key.pem" -out "$DATA/tls/request.csr" 2>/dev/null
# Complement reaches the server by its name; tests on one host may also use its IP.
case "$HOST" in
    *[!0-9.]*) printf 'subjectAltName=DNS:%s\n' "$HOST" > "$DATA/tls/ext.cnf" ;;
    *) printf 'subjectAltName=IP:%s\n' "$HOST" > "$DATA/tls/ext.cnf" ;;
esac
openssl x509 -req -in "$DATA/tls/request.csr" -CA "$CA_DIR/ca.crt" -CAkey "$CA_DIR/ca.key" \
    -CAcreateserial -CAserial "$DATA/tls/ca.srl" -days 2 -sha256 \
    -extfile "$DATA/tls/ext.cnf" -out "$DATA/tls/cert.pem" 2>/dev/null

cat > "$DATA/config.toml" <<CONFIG
server_name = "$SERVER_NAME"

[listen]
address = "$LISTEN_HOST:$CLIENT_PORT"

[database]
path = "$DATA/db"

[registration]
mode = "open"

[rate_limits]
enabled = false
per_second = 100.0
burst = 1000

[federation]
listen = "$LISTEN_HOST:$FEDERATION_PORT"
tls_certificate = "$DATA/tls/cert.pem"
tls_private_key = "$DATA/tls/key.pem"
ca_file = "$CA_DIR/ca.crt"

[outbound]
# Complement's servers are containers on a private network (denied by default).
ip_range_allowlist = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"]

[logging]
level = "${START_LOG:-info}"
format = "plain"
CONFIG

exec "${START_BIN:-haven}" --config "$DATA/config.toml"
