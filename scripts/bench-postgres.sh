#!/usr/bin/env bash
# pgbench against one PostgreSQL three ways in the same run: direct, through Airlock's PostgreSQL
# door (every statement classified, decided, audited), and through PgBouncer in session mode,
# the plain-proxy reference. Prints TPS per (script, protocol, clients) and Airlock/PgBouncer.
#
#   scripts/bench-postgres.sh            # 5 s per run
#   SECONDS_PER_RUN=10 CLIENTS="1 8 32" scripts/bench-postgres.sh
#
# The last column is each proxy's own CPU time per transaction (PgBouncer/Airlock).
# PERF=1 prints instead a cpu-clock profile of the door under `pgbench -S -M prepared -c 8`
# (PERF_ARGS: other pgbench arguments, e.g. "-M simple -c 8 -j 2" for TPC-B; PERF_RECORD_ARGS:
# perf's call-graph option, default -g, e.g. "--call-graph dwarf" for callers without frame pointers).
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
# AIRLOCK_BIN: another airlock binary (an older build, an experiment) to measure instead.
AIRLOCK=$(realpath "${AIRLOCK_BIN:-target/release/airlock}")
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
# AUDIT_LINGER: gateway.audit_linger for this run (default: the gateway's own).
linger_line=""; [ -n "${AUDIT_LINGER:-}" ] && linger_line="audit_linger = \"$AUDIT_LINGER\""
( cd "$home" && "$AIRLOCK" init >/dev/null
  cat >> airlock.toml <<TOML

[gateway]
admin_listen = "127.0.0.1:0"
$linger_line

[databases.$db]
listen = "127.0.0.1:6435"
url = "postgres://postgres@127.0.0.1:$PG_PORT/$db"
environment = "staging"
# pgbench's tables have no triggers, rules or foreign tables (see docs/postgres.md).
audit_writes_at_commit = true
TOML
  "$AIRLOCK" identity add bench-owner --kind human >/dev/null
  "$AIRLOCK" identity add bench-bot --kind agent --owner bench-owner --purpose "pgbench" >/dev/null
  "$AIRLOCK" token issue --identity bench-bot --env staging --allow read,write,destructive,privilege --ttl 2h > token.txt )
token="$(cat "$home/token.txt")"
( cd "$home" && exec "$AIRLOCK" serve > serve.out 2> serve.log ) &
serve_pid=$!
sleep 1.5

if [ "${PERF:-0}" = 1 ]; then
  # Where the door's CPU goes under `pgbench -S -M prepared -c 8` (software clock: these machines
  # may lack PMU counters). Needs perf (Debian's linux-perf).
  perf record -q -e cpu-clock -F 4999 ${PERF_RECORD_ARGS:--g} -p "$serve_pid" -o "$work/perf.data" -- sleep "$T" &
  perf_pid=$!
  # shellcheck disable=SC2086
  PGPASSWORD="$token" pgbench -n ${PERF_ARGS:--S -M prepared -c 8 -j 2} -T "$T" -h 127.0.0.1 -p 6435 -U bench-bot "$db" 2>/dev/null | grep '^tps'
  wait "$perf_pid" || true
  cp "$work/perf.data" "${PERF_DATA:-/tmp/airlock-pg-perf.data}"
  perf report -i "$work/perf.data" --no-children --sort comm,dso,symbol --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9.]+%' | sed 's/  */ /g' | head -"${PERF_TOP:-60}" || true
  exit 0
fi

if [ "${STRACE:-0}" = 1 ]; then
  # System calls per transaction of each proxy (strace -c; slows both, so only counts matter).
  bouncer_proc=$(cat "$work/pgbouncer.pid" 2>/dev/null || echo "$bouncer_pid")
  for target in "pgbouncer 6434 postgres $bouncer_proc" "airlock 6435 bench-bot $serve_pid"; do
    read -r name port user pid <<<"$target"
    pass=""; [ "$name" = airlock ] && pass=$token
    if [ -n "${STRACE_THREADS:-}" ]; then
      for t in /proc/"$pid"/task/*; do echo "${t##*/} $(cat "$t/comm")"; done >"$work/threads.$name"
      strace -f -e trace="$STRACE_THREADS" -p "$pid" -o "$work/calls.$name" &
    else
      strace -c -f -p "$pid" -o "$work/strace.$name" &
    fi
    st=$!
    sleep 0.5
    # shellcheck disable=SC2086
    n=$(PGPASSWORD="$pass" pgbench -n ${PERF_ARGS:--S -M prepared -c 8 -j 2} -T "$T" -h 127.0.0.1 -p "$port" -U "$user" "$db" 2>/dev/null |
      awk -F': ' '/^number of transactions actually processed/ {print $2 + 0}')
    kill -INT "$st"; wait "$st" 2>/dev/null || true
    if [ -n "${STRACE_THREADS:-}" ]; then
      echo "== $name: $STRACE_THREADS per transaction by thread ($n transactions)"
      awk -v n="$n" 'NR == FNR { comm[$1] = $2; next } { c[comm[$1] ? comm[$1] : "other"]++ }
        END { for (k in c) printf "  %-16s %6.2f\n", k, c[k] / n }' "$work/threads.$name" "$work/calls.$name"
      continue
    fi
    echo "== $name: system calls per transaction ($n transactions)"
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 { c = $4; name = $NF; if (c / n >= 0.01) printf "  %-16s %6.2f\n", name, c / n }' "$work/strace.$name" | sort -k2 -nr
  done
  exit 0
fi

# CPU time (user + system) of a process and its threads, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
bouncer_proc=$(cat "$work/pgbouncer.pid" 2>/dev/null || echo "$bouncer_pid")
CPU_NOTE="$work/cpu.tsv"

run() { # port user password script mode clients -> tps
  local port=$1 user=$2 pass=$3 script=$4 mode=$5 c=$6 extra=()
  [ "$script" = select ] && extra=(-S)
  local proc="" before=0 out
  case "$port" in 6434) proc=$bouncer_proc ;; 6435) proc=$serve_pid ;; esac
  [ -n "$proc" ] && before=$(ticks "$proc")
  out=$(PGPASSWORD="$pass" pgbench -n "${extra[@]}" -M "$mode" -c "$c" -j "$(( c < 2 ? 1 : 2 ))" -T "$T" \
    -h 127.0.0.1 -p "$port" -U "$user" "$db" 2>/dev/null)
  # The proxy's own CPU per transaction: steadier than TPS on a shared machine.
  if [ -n "$proc" ]; then
    awk -v t=$(( $(ticks "$proc") - before )) -v hz="$HZ" -v p="$port" \
      '/^number of transactions actually processed/ { split($0, a, ": "); n = a[2] + 0 }
       END { if (n > 0) printf "%s\t%.1f\n", p, t / hz * 1e6 / n }' <<<"$out" >>"$CPU_NOTE"
  fi
  awk '/^tps = / { printf "%.0f", $3 }' <<<"$out"
}
cpu_of() { awk -F'\t' -v p="$1" '$1 == p { v = $2 } END { print v }' "$CPU_NOTE"; }
: >"$CPU_NOTE"

printf "%-8s %-9s %7s %10s %10s %10s %8s %14s\n" script protocol clients direct pgbouncer airlock "ratio" "CPU µs/tx b/a"
for script in $SCRIPTS; do
  for mode in $MODES; do
    for c in $CLIENTS; do
      d=$(run "$PG_PORT" postgres "" "$script" "$mode" "$c")
      b=$(run 6434 postgres "" "$script" "$mode" "$c")
      a=$(run 6435 bench-bot "$token" "$script" "$mode" "$c")
      printf "%-8s %-9s %7s %10s %10s %10s %8s %14s\n" "$script" "$mode" "$c" "$d" "$b" "$a" \
        "$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')" \
        "$(cpu_of 6434)/$(cpu_of 6435)"
    done
  done
done

# The door's statement cache over every Airlock run above (prepared runs classify once per session).
admin=$(grep -o 'admin http://[0-9.:]*' "$home/serve.out" | head -1 | cut -d' ' -f2)
if [ -n "$admin" ] && command -v curl >/dev/null; then
  echo "== statement cache (/metrics)"
  curl -s "$admin/metrics" | grep -E '^airlock_sql_(classifications|normalized_hits)_total' || true
fi
