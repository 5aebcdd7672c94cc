#!/usr/bin/env bash
# Runs Airlock's whole test suite. Installs what the tests need when it can (as root with apt and
# npm): the sqlite3 command (audit tamper tests), Debian's Chromium (the console's browser test),
# playwright-core (drives it), PostgreSQL's server and clients (psql, pgbench) for the PostgreSQL
# door's tests, and starts a PostgreSQL on 127.0.0.1:5432 (trust auth) when none answers there.
# Point AIRLOCK_TEST_PG=postgres://USER@HOST:PORT at another server to use that one instead.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test.sh: please install: ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
    exit 2
  fi
fi
if [ ! -d e2e/node_modules/playwright-core ]; then
  echo "test.sh: installing playwright-core for the browser test"
  npm --prefix e2e install --no-audit --no-fund --silent
fi

# A PostgreSQL for the door's tests: use the one named by AIRLOCK_TEST_PG or on 127.0.0.1:5432,
# else start one of our own (trust auth on loopback, data under /tmp).
pg_url="${AIRLOCK_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
pg_rest="${pg_url#*://}"; pg_user="${pg_rest%%@*}"; pg_hostport="${pg_rest#*@}"; pg_hostport="${pg_hostport%%/*}"
pg_host="${pg_hostport%:*}"; pg_port="${pg_hostport##*:}"
if ! pg_isready -q -h "$pg_host" -p "$pg_port" -U "$pg_user" 2>/dev/null; then
  bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  data="${TMPDIR:-/tmp}/airlock-test-postgres-$pg_port"
  echo "test.sh: no PostgreSQL at $pg_host:$pg_port; starting one in $data"
  mkdir -p "$data"
  run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
  [ -f "$data/PG_VERSION" ] || run_pg "$bin/initdb" -D "$data" -U "$pg_user" --auth=trust -E UTF8 >/dev/null
  run_pg "$bin/pg_ctl" -D "$data" -l "$data/log" -w -o "-p $pg_port -k /tmp -c listen_addresses=$pg_host" start >/dev/null
fi
export AIRLOCK_TEST_PG="$pg_url"

cargo test --workspace --all-targets
