#!/usr/bin/env bash
# Measures warren on the 5-host lab, as recorded in BENCHMARKS.md: a bootstrap from
# fresh hosts (with --timings' split), then repeated no-op plans and applies, verify
# on the healthy cluster, and one drill.
# Needs root (the lab). Run from the repository root: scripts/bench.sh
set -euo pipefail
W=${WARREN:-target/release/warren}
[ -n "${WARREN:-}" ] || cargo build --release -q  # always current: a stale binary measures old code
work=$(mktemp -d)
cd "$work"
"$OLDPWD/$W" lab down >/dev/null
"$OLDPWD/$W" lab up >/dev/null 2>&1
run() { "$OLDPWD/$W" -i lab/inventory.toml "$@"; }
echo "== bootstrap: apply --yes --timings on a fresh 5-host lab"
run apply --yes --timings 2>&1 >/dev/null | sed -n '/^timings:/,$p'
echo "== no-op plan, 5 runs (wall seconds)"
for i in 1 2 3 4 5; do /usr/bin/time -f "%e" "$OLDPWD/$W" -i lab/inventory.toml plan --exit-code >/dev/null; done
echo "== no-op apply --yes, 5 runs (wall seconds)"
for i in 1 2 3 4 5; do /usr/bin/time -f "%e" "$OLDPWD/$W" -i lab/inventory.toml apply --yes >/dev/null; done
echo "== split of one no-op plan"
run plan --timings 2>&1 >/dev/null | sed -n '/^timings:/,$p'
echo "== verify on the healthy cluster, 3 runs (wall seconds)"
for i in 1 2 3; do /usr/bin/time -f "%e" "$OLDPWD/$W" -i lab/inventory.toml verify >/dev/null; done
echo "== drill site1 --yes --messages 20 (wall seconds)"
/usr/bin/time -f "%e" "$OLDPWD/$W" -i lab/inventory.toml drill site1 --yes --messages 20 >/dev/null
"$OLDPWD/$W" lab down >/dev/null
rm -rf "$work"
