#!/usr/bin/env bash
# pgbench against one PostgreSQL three ways in the same run: direct, through Airlock's PostgreSQL
# door (every statement classified, decided, audited), and through PgBouncer in session mode,
# the plain-proxy reference. Prints TPS per (script, protocol, clients) and Airlock/PgBouncer.
#
#   scripts/bench-postgres.sh            # 5 s per run
#   SECONDS_PER_RUN=10 CLIENTS="1 8 32" scripts/bench-postgres.sh
#
# Needs: a PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres` (as CI has), pgbench,
# pgbouncer (Debian package), and a release build (`cargo build --release -p airlock-cli`).
set -euo pipefail
cd "$(dirname "$0")/.."
T="${SECONDS_PER_RUN:-5}"
CLIENTS="${CLIENTS:-1 8 32}"
SCRIPTS="${SCRIPTS:-select tpcb}"
MODES="${MODES:-simple prepared}"
PG_PORT="${PG_PORT:-5432}"
AIRLOCK=target/release/airlock
[ -x "$AIRLOCK" ] || { echo "build first: cargo build --release -p airlock-cli" >&2; exit 2; }
for t in pgbench pgbouncer psql; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }; done

work="$(mktemp -d /tmp/airlock-bench-pg.XXXXXX)"
chmod 755 "$work"
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
  [ -n "${bouncer_pid:-}" ] && kill "$bouncer_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

db=airlock_bench
psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
pgbench -q -i -s 10 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db" >/dev/null 2>&1

# PgBouncer, session mode (it refuses to run as root).
cat > "$work/pgbouncer.ini" <<INI
[databases]
$db = host=127.0.0.1 port=$PG_PORT dbname=$db user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6434
auth_type = trust
auth_file = $work/users.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 64
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
INI
echo '"postgres" ""' > "$work/users.txt"
if [ "$(id -u)" = 0 ]; then chown -R postgres "$work"; runuser -u postgres -- pgbouncer -q "$work/pgbouncer.ini" & else pgbouncer -q "$work/pgbouncer.ini" & fi
bouncer_pid=$!

# Airlock: an unprotected environment and a token allowed everything pgbench does.
home="$work/airlock"; mkdir -p "$home"
( cd "$home" && "$OLDPWD/$AIRLOCK" init >/dev/null
  cat >> airlock.toml <<TOML

[gateway]
admin_listen = "127.0.0.1:0"

[databases.$db]
listen = "127.0.0.1:6435"
url = "postgres://postgres@127.0.0.1:$PG_PORT/$db"
environment = "staging"
# pgbench's tables have no triggers, rules or foreign tables (see docs/postgres.md).
audit_writes_at_commit = true
TOML
  "$OLDPWD/$AIRLOCK" identity add bench-owner --kind human >/dev/null
  "$OLDPWD/$AIRLOCK" identity add bench-bot --kind agent --owner bench-owner --purpose "pgbench" >/dev/null
  "$OLDPWD/$AIRLOCK" token issue --identity bench-bot --env staging --allow read,write,destructive,privilege --ttl 2h > token.txt )
token="$(cat "$home/token.txt")"
( cd "$home" && exec "$OLDPWD/$AIRLOCK" serve > serve.out 2> serve.log ) &
serve_pid=$!
sleep 1.5

run() { # port user password script mode clients -> tps
  local port=$1 user=$2 pass=$3 script=$4 mode=$5 c=$6 extra=()
  [ "$script" = select ] && extra=(-S)
  PGPASSWORD="$pass" pgbench -n "${extra[@]}" -M "$mode" -c "$c" -j "$(( c < 2 ? 1 : 2 ))" -T "$T" \
    -h 127.0.0.1 -p "$port" -U "$user" "$db" 2>/dev/null \
    | awk '/^tps = / { printf "%.0f", $3 }'
}

printf "%-8s %-9s %7s %10s %10s %10s %8s\n" script protocol clients direct pgbouncer airlock "ratio"
for script in $SCRIPTS; do
  for mode in $MODES; do
    for c in $CLIENTS; do
      d=$(run "$PG_PORT" postgres "" "$script" "$mode" "$c")
      b=$(run 6434 postgres "" "$script" "$mode" "$c")
      a=$(run 6435 bench-bot "$token" "$script" "$mode" "$c")
      printf "%-8s %-9s %7s %10s %10s %10s %8s\n" "$script" "$mode" "$c" "$d" "$b" "$a" \
        "$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
    done
  done
done

# The door's statement cache over every Airlock run above (prepared runs classify once per session).
admin=$(grep -o 'admin http://[0-9.:]*' "$home/serve.out" | head -1 | cut -d' ' -f2)
if [ -n "$admin" ] && command -v curl >/dev/null; then
  echo "== statement cache (/metrics)"
  curl -s "$admin/metrics" | grep -E '^airlock_sql_(classifications|normalized_hits)_total' || true
fi
