#!/bin/sh
# Runs once, when the postgres container initialises an empty volume: one login role per
# careloop service with its password from the environment, owning its own schema, with no right
# elsewhere (as `python -m deploy.local.stack prepare` provisions the local stack). Each service
# then applies its own migrations at start, as its own role.
set -eu
for service in desk routing notify survey metrics knowledge incident; do
  var="CARELOOP_PG_$(echo "$service" | tr a-z A-Z)_PASSWORD"
  eval "password=\${$var:?$var is not set}"
  psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
    -v role="careloop_$service" -v schema="$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'password';
GRANT CONNECT ON DATABASE careloop TO :"role";
CREATE SCHEMA :"schema" AUTHORIZATION :"role";
SQL
done
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<'SQL'
REVOKE ALL ON DATABASE careloop FROM PUBLIC;
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
