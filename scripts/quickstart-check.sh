#!/usr/bin/env bash
# Runs the README's quickstart exactly as written: `npm start`, then the `liftoff launch` example it prints,
# in a throwaway HOME so that nothing of the user's is touched. Fails if either step does not work.
set -euo pipefail
cd "$(dirname "$0")/.."

home="$(mktemp -d)"
# As root, `liftoff up` gives each job a user of its own, which must be able to enter the data dir under HOME
# (mktemp makes it 0700). The credentials under it stay private by their own modes (0700 dir, 0600 file).
chmod 711 "$home"
log="$home/up.log"
cleanup() {
  if [[ -n "${pgid:-}" ]]; then kill -TERM -- "-$pgid" 2>/dev/null || true; sleep 1; kill -KILL -- "-$pgid" 2>/dev/null || true; fi
  rm -rf "$home"
}
trap cleanup EXIT

HOME="$home" setsid npm start >"$log" 2>&1 &
pgid=$!
for _ in $(seq 1 120); do
  grep -q 'Liftoff is up at' "$log" && break
  sleep 1
done
grep -q 'Liftoff is up at' "$log" || { cat "$log"; echo "quickstart: npm start did not come up" >&2; exit 1; }

example="$(grep -E '^\s+npx liftoff launch ' "$log" | head -1 | sed -E 's/^\s+//')"
[[ -n "$example" ]] || { cat "$log"; echo "quickstart: no launch example printed" >&2; exit 1; }
echo "quickstart: running the printed example: $example"
out="$(HOME="$home" bash -c "$example" 2>&1)" || { echo "$out"; echo "quickstart: the example failed" >&2; exit 1; }
echo "$out"
grep -q 'epoch 3/3' <<<"$out" || { echo "quickstart: the example's output is missing" >&2; exit 1; }
echo "quickstart: OK"
