#!/usr/bin/env bash
# Gateway throughput: the same small fast upstream measured direct, through nginx `proxy_pass`
# (the plain-proxy reference) and through Airlock (token check + classification + Cedar policy +
# one audit record per request), alternating, in the same run. Not run in CI.
#
# Fairness:
# - nginx runs WORKERS worker processes; Airlock runs WORKERS tokio worker threads
#   (TOKIO_WORKER_THREADS). Both keep a keepalive pool to the upstream, and neither closes
#   client connections after N requests (nginx's keepalive_requests is raised for that).
# - nginx keeps an access log (ACCESS_LOG=buffered: `buffer=64k flush=1s`), because Airlock writes a
#   record for every request too; Airlock's records of allowed reads are group-committed
#   asynchronously, so a buffered log is the closest nginx equivalent. ACCESS_LOG=on (a write per
#   request) and ACCESS_LOG=off are there to show how much it matters.
# - wrk runs with the same arguments and the same CPU affinity (WRK_CPUS, default: none) for
#   every target.
#
# Needs: wrk and nginx on PATH (Debian packages), a Rust toolchain.
# Env: WORK (default /tmp/airlock-bench-gw), PORT (first of four ports, default 18081),
#      WORKERS (2), ROUNDS (3), DURATION (8s), THREADS (2), CONNS (32), ACCESS_LOG (buffered),
#      WRK_CPUS (taskset list for wrk, e.g. "1"; empty: not pinned), AUDIT_LINGER
#      (gateway.audit_linger for this run, e.g. 10ms; default: the gateway's own), NO_BUILD=1 (use the binary
#      already in target/release), AIRLOCK_BIN (another airlock binary, e.g. an older build, to
#      compare; implies NO_BUILD=1).
#
# PERF=1 prints instead a cpu-clock profile of Airlock under the same load (perf, Debian's
# linux-perf; PERF_TOP lines, default 60; PERF_ARGS, default -g, e.g. "--call-graph dwarf" for
# callers in a binary built without frame pointers).
#
# CALLGRIND=1 measures instead the instructions Airlock executes per request (valgrind's
# callgrind, 15 s of `wrk -t1 -c4` after a warm-up): slow, but repeatable on a machine whose other
# tenants make requests/s and even CPU time per request wander. Needs valgrind. Caveat: under
# valgrind SHA-256 runs in software (no SHA-NI), so hashing weighs far more than it does natively.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/airlock-bench-gw}
PORT=${PORT:-18081}
WORKERS=${WORKERS:-2}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
ACCESS_LOG=${ACCESS_LOG:-buffered}
WRK_CPUS=${WRK_CPUS:-}
UP_PORT=$PORT
NGINX_PORT=$((PORT + 1))
AIRLOCK_PORT=$((PORT + 2))
ADMIN_PORT=$((PORT + 3))

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "needs $tool on PATH" >&2; exit 2; }
done
if [ -z "${AIRLOCK_BIN:-}" ] && [ "${NO_BUILD:-0}" != 1 ]; then
  echo "== building airlock (release)" >&2
  (cd "$ROOT" && cargo build -q --release -p airlock-cli)
fi
AIRLOCK=${AIRLOCK_BIN:-$ROOT/target/release/airlock}
CALLGRIND=${CALLGRIND:-0}

rm -rf "$WORK" && mkdir -p "$WORK/nginx" "$WORK/home"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for conf in upstream proxy; do
    [ -f "$WORK/nginx/$conf.pid" ] && kill "$(cat "$WORK/nginx/$conf.pid")" 2>/dev/null || true
  done
}
trap cleanup EXIT

case "$ACCESS_LOG" in
  off) LOG_LINE="access_log off;" ;;
  on) LOG_LINE="access_log $WORK/nginx/access.log;" ;;
  buffered) LOG_LINE="access_log $WORK/nginx/access.log combined buffer=64k flush=1s;" ;;
  *) echo "ACCESS_LOG must be off, on or buffered" >&2; exit 2 ;;
esac

# The upstream: one nginx worker answering a small JSON body from memory.
cat >"$WORK/nginx/upstream.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/upstream.pid;
error_log $WORK/nginx/upstream-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$UP_PORT;
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }
}
EOF

# The plain-proxy reference.
cat >"$WORK/nginx/proxy.conf" <<EOF
worker_processes $WORKERS;
pid $WORK/nginx/proxy.pid;
error_log $WORK/nginx/proxy-error.log warn;
events { worker_connections 4096; }
http {
  $LOG_LINE
  keepalive_requests 10000000;
  upstream api { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /v1/ {
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer upstream-secret";
    }
  }
}
EOF
nginx -c "$WORK/nginx/upstream.conf" -p "$WORK/nginx" -e "$WORK/nginx/upstream-error.log" -g 'daemon on;'
nginx -c "$WORK/nginx/proxy.conf" -p "$WORK/nginx" -e "$WORK/nginx/proxy-error.log" -g 'daemon on;'

# Airlock: one upstream under /api in staging, the generic REST rules, a sealed secret injected,
# an agent token allowed to read.
H="$WORK/home"
export AIRLOCK_CONFIG="$H/airlock.toml" AIRLOCK_ACTOR=bench AIRLOCK_LOG=warn
(cd "$H" && "$AIRLOCK" init >/dev/null)
linger_line=""; [ -n "${AUDIT_LINGER:-}" ] && linger_line="audit_linger = \"$AUDIT_LINGER\""
cat >>"$H/airlock.toml" <<EOF

[gateway]
listen = "127.0.0.1:$AIRLOCK_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
$linger_line

[upstreams.api]
url = "http://127.0.0.1:$UP_PORT"
prefix = "/api"
environment = "staging"
rules = "$ROOT/rules/generic-rest.toml"
secret = "api-key"
EOF
"$AIRLOCK" identity add alice --kind human >/dev/null
"$AIRLOCK" identity add bench-bot --kind agent --owner alice --purpose "gateway benchmark" >/dev/null
echo -n "upstream-secret" | "$AIRLOCK" secret set api-key --env staging >/dev/null
TOKEN=$("$AIRLOCK" token issue --identity bench-bot --env staging --allow read --ttl 2h)
VG=()
[ "$CALLGRIND" = 1 ] && VG=(valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out")
(cd "$H" && TOKIO_WORKER_THREADS=$WORKERS exec "${VG[@]}" "$AIRLOCK" serve >"$WORK/serve.out" 2>"$WORK/serve.err") &
PIDS+=($!)
AIRLOCK_PID=$!
for _ in $(seq 1 300); do
  grep -q listening "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
grep -q listening "$WORK/serve.out" || { cat "$WORK/serve.err" >&2; exit 1; }

# Every target must answer 200 before it is measured.
for url in "http://127.0.0.1:$UP_PORT/v1/projects" "http://127.0.0.1:$NGINX_PORT/v1/projects" \
  "http://127.0.0.1:$AIRLOCK_PORT/api/v1/projects"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$url")
  [ "$code" = 200 ] || { echo "$url answered $code" >&2; exit 1; }
done

if [ "$CALLGRIND" = 1 ]; then
  url="http://127.0.0.1:$AIRLOCK_PORT/api/v1/projects"
  wrk -t1 -c4 -d3s -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
  callgrind_control -z "$AIRLOCK_PID" >/dev/null
  out=$(wrk -t1 -c4 -d15s -H "Authorization: Bearer $TOKEN" "$url")
  callgrind_control -d "$AIRLOCK_PID" >/dev/null
  # The dump is written asynchronously: wait until its size stops changing.
  prev=-1
  while sleep 1; do
    size=$(stat -c %s "$WORK/callgrind.out.1" 2>/dev/null || echo 0)
    [ "$size" -gt 0 ] && [ "$size" = "$prev" ] && break
    prev=$size
  done
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  # Run from $WORK: callgrind_annotate groups costs by source path as it resolves them.
  summary=$(cd "$WORK" && callgrind_annotate --inclusive=yes callgrind.out.1 2>/dev/null)
  per() { # label pattern
    awk -v n="$reqs" -v label="$1" -v pat="$2" 'index($0, pat) {gsub(",", "", $1); printf "  %-34s %8.0f\n", label, $1 / n; exit}' <<<"$summary"
  }
  echo "== instructions per request (callgrind, $reqs requests)"
  per "whole process" "PROGRAM TOTALS"
  per "tokio workers (HTTP in and out)" "multi_thread::worker::run ["
  per "  token verification" "Authority>::verify ["
  per "  classification" "RuleSet::classify ["
  per "  policy decision (cached)" "Engine::decide ["
  per "audit writer thread" "audit_writer.rs:std::sys::backtrace::__rust_begin_short_backtrace"
  per "  hash chain" "airlock_audit::chain_hash ["
  per "SHA-256 in all of the above" "sha256::compress256 ["
  exit 0
fi

if [ "${PERF:-0}" = 1 ]; then
  # Where Airlock's CPU goes under load (software clock: these machines may lack PMU counters).
  # PERF_TARGET=nginx profiles the nginx proxy's workers instead, for comparison.
  url="http://127.0.0.1:$AIRLOCK_PORT/api/v1/projects"
  pids=$AIRLOCK_PID
  if [ "${PERF_TARGET:-airlock}" = nginx ]; then
    url="http://127.0.0.1:$NGINX_PORT/v1/projects"
    pids=$(pgrep -P "$(cat "$WORK/nginx/proxy.pid")" | paste -sd,)
  fi
  wrk -t"$THREADS" -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
  perf record -q -e cpu-clock -F 4999 ${PERF_ARGS:--g} -p "$pids" -o "$WORK/perf.data" -- sleep 6 &
  perf_pid=$!
  wrk -t"$THREADS" -c"$CONNS" -d6s -H "Authorization: Bearer $TOKEN" "$url" | grep -E "Requests/sec"
  wait "$perf_pid" || true
  perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -"${PERF_TOP:-60}"
  exit 0
fi

PIN=()
[ -n "$WRK_CPUS" ] && PIN=(taskset -c "$WRK_CPUS")
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# CPU time (user + system, in clock ticks) of processes and their threads: what a proxy costs per
# request is steadier on a shared machine than its requests/s.
ticks() { # prints "user system"
  local u=0 k=0 p
  for p in "$@"; do
    read -r pu pk < <(awk '{print $14, $15}' "/proc/$p/stat")
    u=$((u + pu))
    k=$((k + pk))
  done
  echo "$u $k"
}
NGINX_WORKERS=$(pgrep -P "$(cat "$WORK/nginx/proxy.pid")" | tr '\n' ' ')
UPSTREAM_WORKERS=$(pgrep -P "$(cat "$WORK/nginx/upstream.pid")" | tr '\n' ' ')
HZ=$(getconf CLK_TCK)
run() { # name url cpu-pids
  local out bu bk au ak
  # shellcheck disable=SC2086
  read -r bu bk < <(ticks $3)
  local bc=0 idle0 p
  if [ -n "${CSW:-}" ]; then
    for p in $3; do bc=$((bc + $(cat /proc/$p/task/*/status | awk '/ctxt_switches/ {s+=$2} END {print s}'))); done
    idle0=$(awk '/^cpu / {print $5}' /proc/stat)
    nstat -n >/dev/null 2>&1 || true
  fi
  out=$("${PIN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
    -H "Authorization: Bearer $TOKEN" "$2")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$1: non-2xx answers:" >&2
    echo "$out" >&2
    exit 1
  fi
  # shellcheck disable=SC2086
  read -r au ak < <(ticks $3)
  local rps p50 p99 reqs cpu user
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v t=$((au + ak - bu - bk)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  user=$(awk -v t=$((au - bu)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$1" "$rps" "$p50" "$p99" "$cpu" >>"$RESULTS"
  printf '  %-8s %10s req/s  p50 %-8s p99 %-8s CPU %s µs/request (user %s)\n' "$1" "$rps" "$p50" "$p99" "$cpu" "$user"
  if [ -n "${CSW:-}" ]; then
    local ac=0 p
    for p in $3; do ac=$((ac + $(cat /proc/$p/task/*/status | awk '/ctxt_switches/ {s+=$2} END {print s}'))); done
    awk -v a="$ac" -v b="$bc" -v n="$reqs" -v i1="$idle0" -v i2="$(awk '/^cpu / {print $5}' /proc/stat)" -v hz="$HZ" 'BEGIN {printf "           %.2f context switches/request; machine idle %.1f µs/request\n", (a-b)/n, (i2-i1)/hz*1e6/n}'
    nstat 2>/dev/null | awk -v n="$reqs" '$1 ~ /TcpOutSegs|TcpExtDelayedACKs|TcpExtTCPPureAcks|TcpExtTCPHPAcks|IpExtOutOctets/ {printf "           %s %.2f/request\n", $1, $2/n}'
  fi
}

echo "== wrk -t$THREADS -c$CONNS -d$DURATION --latency; $WORKERS workers each; nginx access_log $ACCESS_LOG; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  run direct "http://127.0.0.1:$UP_PORT/v1/projects" "$UPSTREAM_WORKERS"
  run nginx "http://127.0.0.1:$NGINX_PORT/v1/projects" "$NGINX_WORKERS"
  run airlock "http://127.0.0.1:$AIRLOCK_PORT/api/v1/projects" "$AIRLOCK_PID"
  awk -F'\t' -v r="$round" '$1==r && $2=="nginx" {n=$3} $1==r && $2=="airlock" {a=$3}
    END {printf "  airlock/nginx %.2f\n", a/n}' "$RESULTS"
done
awk -F'\t' '$2=="nginx" {n+=$3; nc+=$6; nn++} $2=="airlock" {a+=$3; ac+=$6; na++}
  END {printf "== mean: nginx %.0f req/s (%.1f µs CPU/request), airlock %.0f req/s (%.1f µs CPU/request), airlock/nginx %.2f\n",
    n/nn, nc/nn, a/na, ac/na, (a/na)/(n/nn)}' "$RESULTS"

# Every request answered is one audit record, and the chain still verifies.
kill -TERM "$AIRLOCK_PID"
wait "$AIRLOCK_PID" || true
"$AIRLOCK" audit verify
