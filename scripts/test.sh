#!/usr/bin/env bash
# Runs Airlock's whole test suite. Installs what the tests need when it can (as root with apt and
# npm): the sqlite3 command (audit tamper tests), Debian's Chromium (the console's browser test)
# and playwright-core (drives it). Otherwise it says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
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

cargo test --workspace --all-targets
