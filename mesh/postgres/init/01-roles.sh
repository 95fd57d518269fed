#!/bin/sh
# Run once by the postgres image on an empty data directory (as the
# superuser it made from POSTGRES_USER), and by native/run.sh: a role and a
# database for the example service and for Keycloak, neither a superuser,
# with the passwords from ATHYPER_DB_PASSWORD and KEYCLOAK_DB_PASSWORD.
set -eu
: "${ATHYPER_DB_PASSWORD:?ATHYPER_DB_PASSWORD is not set}"
: "${KEYCLOAK_DB_PASSWORD:?KEYCLOAK_DB_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
  --set athyper_password="$ATHYPER_DB_PASSWORD" \
  --set keycloak_password="$KEYCLOAK_DB_PASSWORD" <<'SQL'
CREATE ROLE athyper LOGIN PASSWORD :'athyper_password';
CREATE DATABASE athyper OWNER athyper;
CREATE ROLE keycloak LOGIN PASSWORD :'keycloak_password';
CREATE DATABASE keycloak OWNER keycloak;
SQL
