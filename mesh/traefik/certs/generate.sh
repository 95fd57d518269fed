#!/usr/bin/env bash
# Makes the local certificate Traefik serves with env/local.env: a CA of
# your own (local-ca.crt, to add to the browser's or system's trust store)
# and a certificate for *.athyper.local it signed (local.crt, local.key).
# Nothing here is committed (see mesh/.gitignore). With mkcert installed,
# `mkcert -cert-file local.crt -key-file local.key '*.athyper.local'` in this
# directory does the same with a CA your system already trusts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
domain="${1:-athyper.local}"
days="${DAYS:-825}"

if [ ! -f local-ca.key ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
    -subj "/CN=athyper mesh local CA" \
    -keyout local-ca.key -out local-ca.crt
fi
openssl req -newkey rsa:2048 -nodes \
  -subj "/CN=*.$domain" \
  -keyout local.key -out local.csr
printf 'subjectAltName=DNS:*.%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$domain" "$domain" > local.ext
openssl x509 -req -in local.csr -CA local-ca.crt -CAkey local-ca.key -CAcreateserial \
  -days "$days" -extfile local.ext -out local.crt
rm -f local.csr local.ext local-ca.srl
chmod 600 local.key local-ca.key
echo "made $(pwd)/local.crt for *.$domain; trust $(pwd)/local-ca.crt to avoid browser warnings"
