#!/usr/bin/env bash
# A real PostgreSQL server on loopback for the tests of the Butler's scaled
# registry: Debian's PostgreSQL, its own data directory, trust authentication
# on 127.0.0.1 only, and a database with the btree_gist extension that the
# Butler's registry needs.
#
#   tests/services/postgres.sh start    install what is missing, start the server, create the database
#   tests/services/postgres.sh stop     stop the server
#   tests/services/postgres.sh status   exit 0 when the database answers
#   tests/services/postgres.sh url      print the database URL the tests use
#
# Idempotent: `start` twice is harmless. Must run as root (it installs
# packages and runs the server as the postgres user). Settings, by environment:
#   LOCAL_PG_DIR    data directory, socket and log   (/var/tmp/lsst-on-aws/postgres)
#   LOCAL_PG_PORT   TCP port on 127.0.0.1             (5433: clear of a system server on 5432)
#   LOCAL_PG_DB     database for Butler registries    (butler)
set -euo pipefail

DIR=${LOCAL_PG_DIR:-/var/tmp/lsst-on-aws/postgres}
PORT=${LOCAL_PG_PORT:-5433}
DB=${LOCAL_PG_DB:-butler}
URL="postgresql://postgres@127.0.0.1:$PORT/$DB"

NAME=postgres.sh
# shellcheck source=tests/services/lib.sh
source "$(dirname "$0")/lib.sh"

bindir() {
	local pg_config
	pg_config=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -n "$pg_config" ] || return 1
	echo "$pg_config"
}

install_server() {
	bindir >/dev/null && dpkg -s postgresql-client >/dev/null 2>&1 && return 0
	install_packages postgresql postgresql-client
}

psql_() { psql -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

answers() { psql_ -d "$DB" -c "select 1" >/dev/null 2>&1; }

start() {
	install_server
	local bin
	bin=$(bindir) || die "no PostgreSQL server binaries under /usr/lib/postgresql"
	mkdir -p "$DIR"
	chown postgres:postgres "$DIR"
	if [ ! -s "$DIR/data/PG_VERSION" ]; then
		say "initialising $DIR/data"
		runuser -u postgres -- "$bin/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
	fi
	if ! runuser -u postgres -- "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
		runuser -u postgres -- "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
			-o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null ||
			die "the server did not start; see $DIR/server.log"
	fi
	if [ "$(psql_ -d postgres -c "select 1 from pg_database where datname = '$DB'")" != 1 ]; then
		psql_ -d postgres -c "create database $DB"
	fi
	psql_ -d "$DB" -c "create extension if not exists btree_gist"
	answers || die "database $DB does not answer"
	say "up: $URL"
}

stop() {
	local bin
	bin=$(bindir) || return 0
	[ -s "$DIR/data/PG_VERSION" ] || return 0
	runuser -u postgres -- "$bin/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
	say "stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) answers ;;
url) echo "$URL" ;;
*) die "usage: $0 start|stop|status|url" ;;
esac
