#!/usr/bin/env bash
# Throughput, peak memory and accuracy of `airlock scan` against peer scanners.
# Not run in CI. Bounded: every tool runs on a 1/10 corpus; only the fast ones (airlock,
# kingfisher) run on the full >= 1 GB corpus; slow runs are cut at SLOW_TIMEOUT seconds.
#
# Needs on PATH: kingfisher and detect-secrets (pip install kingfisher-bin detect-secrets),
# ripsecrets (cargo install ripsecrets), GNU time (/usr/bin/time, apt install time); secretlint
# is installed with npm under $WORK/peers if missing. Root is needed for cold-cache runs
# (drop_caches); without it cold runs are skipped and the report says so.
#
# Env: WORK (default /tmp/airlock-bench), SIZE_MB (1100), SLOW_MB (110),
#      REAL (a real source tree, default ~/.cargo/registry/src), RUNS (warm runs, best of; 3),
#      SLOW_TIMEOUT (300), ONLY_FAST=1 (only airlock and kingfisher on the big corpora),
#      PAIRED=N (only airlock and kingfisher, warm, alternating N times on each corpus, then
#      the median of each: on a machine shared with other work, alternation exposes both
#      tools to the same load).
#      AIRLOCK_BIN (default: this checkout's release build) to measure another build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/airlock-bench}
SIZE_MB=${SIZE_MB:-1100}
SLOW_MB=${SLOW_MB:-110}
REAL=${REAL:-$HOME/.cargo/registry/src}
RUNS=${RUNS:-3}
SLOW_TIMEOUT=${SLOW_TIMEOUT:-300}
mkdir -p "$WORK/out" "$WORK/peers"
RESULTS="$WORK/results.tsv"

echo "== building airlock (release)" >&2
(cd "$ROOT" && cargo build -q --release -p airlock-cli && cargo build -q --release -p airlock-scan --examples)
AIRLOCK=${AIRLOCK_BIN:-$ROOT/target/release/airlock}
EX="$ROOT/target/release/examples"

if [ "${PAIRED:-0}" = 0 ] && [ ! -x "$WORK/peers/node_modules/.bin/secretlint" ]; then
  echo "== installing secretlint" >&2
  npm install --silent --prefix "$WORK/peers" secretlint @secretlint/secretlint-rule-preset-recommend >/dev/null
fi
SECRETLINT="$WORK/peers/node_modules/.bin/secretlint"
echo '{"rules":[{"id":"@secretlint/secretlint-rule-preset-recommend"}]}' > "$WORK/peers/.secretlintrc.json"

[ -d "$WORK/gen" ] || "$EX/gen_corpus" "$WORK/gen" "$SIZE_MB"
[ -d "$WORK/gen-small" ] || "$EX/gen_corpus" "$WORK/gen-small" "$SLOW_MB"
rm -rf "$WORK/labelled" && "$EX/corpus" "$WORK/labelled" >/dev/null

size_mb() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.1f", s/1e6}'; }
warm() { find "$1" -type f -print0 | xargs -0 cat > /dev/null; }
can_drop=yes
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || { can_drop=no; return 1; }; }

# run TOOL DIR OUT: one scan, output to OUT; exit codes of "found something" are not errors.
run() {
  local tool=$1 dir=$2 out=$3
  case $tool in
    airlock) "$AIRLOCK" scan --json --no-progress "$dir" > "$out" 2>/dev/null || true ;;
    kingfisher) kingfisher scan "$dir" --no-validate --no-update-check -f json -o "$out" >/dev/null 2>&1 || true ;;
    ripsecrets) timeout "$SLOW_TIMEOUT" ripsecrets "$dir" > "$out" 2>/dev/null || true ;;
    detect-secrets) (cd "$dir" && timeout "$SLOW_TIMEOUT" detect-secrets scan --all-files . > "$out" 2>/dev/null) || true ;;
    secretlint) (cd "$dir" && timeout "$SLOW_TIMEOUT" "$SECRETLINT" --secretlintrc "$WORK/peers/.secretlintrc.json" --format json "**/*" > "$out" 2>/dev/null) || true ;;
  esac
}

# measure TOOL CORPUS_NAME DIR MODE: prints one TSV row.
measure() {
  local tool=$1 name=$2 dir=$3 mode=$4 best="" row=""
  local mb; mb=$(size_mb "$dir")
  local n=$RUNS
  [ "$mode" = cold ] && n=1
  case $tool in ripsecrets|detect-secrets|secretlint) n=1 ;; esac
  for _ in $(seq "$n"); do
    if [ "$mode" = cold ]; then drop || { echo -e "$tool\t$name\tcold\t$mb\tskipped (drop_caches not permitted)"; return; }; else warm "$dir"; fi
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" bash -c "$(declare -f run); AIRLOCK=$AIRLOCK SECRETLINT=$SECRETLINT WORK=$WORK SLOW_TIMEOUT=$SLOW_TIMEOUT run $tool '$dir' '$WORK/out/$tool-$name.txt'" 2>/dev/null || true
    read -r wall user sys rss < <(tail -1 "$WORK/time.txt")
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then
      best=$wall
      row=$(awk -v t="$tool" -v c="$name" -v m="$mode" -v mb="$mb" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" \
        'BEGIN{printf "%s\t%s\t%s\t%s\t%.2f\t%.1f\t%.1f\t%.0f\n", t, c, m, mb, w, mb/w, mb/(u+s), r/1024}')
    fi
  done
  echo "$row"
}

# paired TOOL... : PAIRED rounds, each running every tool once on each corpus, warm; then one
# row per tool and corpus with the median wall time and the median CPU time.
if [ "${PAIRED:-0}" -gt 0 ]; then
  echo -e "tool\tcorpus\truns\tMB\tmedian_wall_s\tMB/s\tmedian_cpu_s\tMB/cpu-s" | tee "$RESULTS"
  for corpus in generated:"$WORK/gen" real:"$REAL"; do
    name=${corpus%%:*} dir=${corpus#*:}
    mb=$(size_mb "$dir"); warm "$dir"
    : > "$WORK/paired.txt"
    for _ in $(seq "$PAIRED"); do
      for tool in airlock kingfisher; do
        /usr/bin/time -f "%e %U %S" -o "$WORK/time.txt" bash -c "$(declare -f run); AIRLOCK=$AIRLOCK run $tool '$dir' '$WORK/out/$tool-$name.txt'" 2>/dev/null || true
        echo "$tool $(tail -1 "$WORK/time.txt")" >> "$WORK/paired.txt"
      done
    done
    for tool in airlock kingfisher; do
      awk -v t="$tool" -v c="$name" -v mb="$mb" '$1 == t { w[n] = $2; u[n] = $3 + $4; n++ }
        function med(a, n,   i, j, x) { for (i = 1; i < n; i++) { x = a[i]; for (j = i - 1; j >= 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
          return n % 2 ? a[int(n / 2)] : (a[n / 2 - 1] + a[n / 2]) / 2 }
        END { mw = med(w, n); mc = med(u, n); printf "%s\t%s\t%d\t%s\t%.2f\t%.0f\t%.2f\t%.0f\n", t, c, n, mb, mw, mb / mw, mc, mb / mc }' "$WORK/paired.txt" | tee -a "$RESULTS"
    done
  done
  exit 0
fi

echo -e "tool\tcorpus\tcache\tMB\twall_s\tMB/s\tMB/cpu-s\tpeak_MiB" | tee "$RESULTS"
# Fast tier: the full generated corpus and the real tree, warm (best of $RUNS) and cold.
for mode in warm cold; do
  for tool in airlock kingfisher; do
    measure $tool generated "$WORK/gen" $mode | tee -a "$RESULTS"
    measure $tool real "$REAL" $mode | tee -a "$RESULTS"
  done
done
# ONLY_FAST=1 stops here (airlock and kingfisher on the big corpora only).
if [ "${ONLY_FAST:-0}" = 1 ]; then exit 0; fi
# Every tool on the 1/10 corpus (the slow ones cannot do 1 GB in a bounded run).
for mode in warm cold; do
  for tool in airlock kingfisher ripsecrets secretlint detect-secrets; do
    measure $tool generated-small "$WORK/gen-small" $mode | tee -a "$RESULTS"
  done
done
# The slow tools on the real tree, once, warm; a run cut by SLOW_TIMEOUT shows as its timeout.
for tool in ripsecrets secretlint detect-secrets; do
  measure $tool real "$REAL" warm | tee -a "$RESULTS"
done
[ "$can_drop" = yes ] || echo "note: cold-cache runs skipped: /proc/sys/vm/drop_caches is not writable here" | tee -a "$RESULTS"

echo; echo "== labelled corpus (tests/corpus): false positives and misses"
for tool in airlock kingfisher ripsecrets detect-secrets secretlint; do
  run $tool "$WORK/labelled" "$WORK/out/$tool-labelled.txt"
  python3 "$ROOT/scripts/score-scan.py" "$WORK/labelled/labels-span.tsv" "$WORK/labelled" $tool "$WORK/out/$tool-labelled.txt"
done | tee "$WORK/accuracy.txt"

echo; echo "== planted secrets in the generated corpus (airlock)"
python3 - "$WORK/gen/planted.tsv" "$WORK/out/airlock-generated.txt" "$WORK/gen" <<'PY'
import json, sys
planted = {(l.split("\t")[0], int(l.split("\t")[1])) for l in open(sys.argv[1])}
root = sys.argv[3].rstrip("/") + "/"
found = {(json.loads(l)["file"].replace(root, ""), json.loads(l)["line"]) for l in open(sys.argv[2]) if l.strip()}
print(f"planted {len(planted)} found {len(found & planted)} extra {len(found - planted)}")
PY
