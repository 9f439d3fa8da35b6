#!/usr/bin/env bash
# Entrypoint of docker/local/postgres.Dockerfile: the part of the official postgres image's
# docker-entrypoint.sh that PersonaOps uses. On an empty PGDATA: initdb with POSTGRES_USER
# as superuser and POSTGRES_PASSWORD (scram-sha-256 over TCP, trust on the socket), create
# POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sh (executable: run, else sourced) and
# *.sql on a socket-only server, stop it. Then exec postgres listening on every address.
set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA POSTGRES_USER POSTGRES_DB

if [[ "${1:-postgres}" != "postgres" ]]; then
  exec "$@"
fi
shift || true

if [[ "$(id -u)" == 0 ]]; then
  echo "postgres-entrypoint: refusing to run as root (set user: postgres)" >&2
  exit 1
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
    echo "postgres-entrypoint: POSTGRES_PASSWORD is empty: set it (docker-compose.yml reads .env)" >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Socket only while the init scripts run: nothing can connect over TCP half-initialised.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" \
    -w -t 60 start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres)
  if [[ "$POSTGRES_DB" != postgres ]]; then
    "${psql[@]}" -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [[ -x "$f" ]]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
      *.sql) echo "running $f"; "${psql[@]}" -f "$f" ;;
      *) [[ -e "$f" ]] && echo "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres-entrypoint: initialised $PGDATA"
fi

exec postgres -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
