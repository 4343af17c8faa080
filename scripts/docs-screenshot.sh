#!/usr/bin/env bash
# Renders the admin API's /docs page in headless Chromium and saves a screenshot.
# Usage: scripts/docs-screenshot.sh [output.png]   (CHROMIUM=/path/to/chromium to override)
# Starts the admin API in development mode (in-memory broker and registry) on a free port,
# waits for it, takes the screenshot, then stops what it started.
set -euo pipefail

out="${1:-docs-screenshot.png}"
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [[ -z "$chromium" ]]; then
  echo "docs-screenshot: chromium not found (apt-get install chromium, or set CHROMIUM)" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${TETHER_ADMIN_PORT:-$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}"
profile="$(mktemp -d)"
log="$(mktemp)"
admin_pid=""

cleanup() {
  if [[ -n "$admin_pid" ]] && kill -0 "$admin_pid" 2>/dev/null; then
    kill -TERM "$admin_pid" 2>/dev/null || true
    wait "$admin_pid" 2>/dev/null || true
  fi
  rm -rf "$profile" "$log"
}
trap cleanup EXIT

(
  cd "$root"
  TETHER_ENV=development TETHER_BROKER=memory TETHER_REGISTRY=memory TETHER_LOG_LEVEL=warn \
    TETHER_ADMIN_PORT="$port" TETHER_ADMIN_HOST=127.0.0.1 TETHER_ADMIN_TOKEN=docs-screenshot-only \
    exec node --import tsx services/admin/main.ts
) >"$log" 2>&1 &
admin_pid=$!

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$admin_pid" 2>/dev/null; then
    echo "docs-screenshot: the admin API exited:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/openapi.json" >/dev/null

# The page builds itself with JavaScript after fetching the OpenAPI document, hence the
# virtual time budget before the screenshot is taken.
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --virtual-time-budget=10000 \
  --window-size=1280,900 --screenshot="$out" "http://127.0.0.1:$port/docs" >/dev/null 2>&1

if [[ ! -s "$out" ]]; then
  echo "docs-screenshot: no screenshot was written" >&2
  exit 1
fi
echo "docs-screenshot: wrote $out"
