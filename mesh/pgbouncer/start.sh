#!/bin/sh
# Starts PgBouncer with the mesh's pgbouncer.ini after writing its auth file
# from ATHYPER_DB_USER and ATHYPER_DB_PASSWORD, so no password is committed.
#   PGBOUNCER_INI        the configuration (default: next to this script)
#   PGBOUNCER_AUTH_FILE  where to write the auth file; must match auth_file
#                        in the configuration (default /tmp/pgbouncer/userlist.txt)
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
ini="${PGBOUNCER_INI:-$here/pgbouncer.ini}"
auth_file="${PGBOUNCER_AUTH_FILE:-/tmp/pgbouncer/userlist.txt}"
: "${ATHYPER_DB_USER:?ATHYPER_DB_USER is not set}"
: "${ATHYPER_DB_PASSWORD:?ATHYPER_DB_PASSWORD is not set}"

mkdir -p "$(dirname "$auth_file")"
umask 077
# The auth file quotes each field; a double quote inside one is doubled.
quote() { printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"; }
printf '%s %s\n' "$(quote "$ATHYPER_DB_USER")" "$(quote "$ATHYPER_DB_PASSWORD")" > "$auth_file"
exec pgbouncer "$ini"
