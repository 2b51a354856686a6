#!/usr/bin/env bash
# scripts/soak.sh N [HOSTS]: N bootstraps of a fresh lab of HOSTS hosts (default 5),
# each to a passing `warren verify`. The lab ("soak", beside any other) is built once
# and reset between runs (`warren lab reset`: every node standalone with a new cookie,
# the inventory as `lab up` wrote it), so each run is a first bootstrap. Prints each
# run as it ends, then the successes, every failure with its reason (the last lines
# `apply` or `verify` printed, and the run log), and min/median/max seconds of the
# successful runs. Everything a run printed, and its run log, stays in target/soak/;
# a failed run's nodes' own logs too (target/soak/run-N/ADDRESS.log).
# The lab is removed at the end. Needs root for the lab (uses sudo otherwise).
#
# SOAK_KILL=SEED: each bootstrap is first killed (SIGKILL) 2-50 s in, at moments
# drawn from SEED (printed; the same SEED replays them), and the timed run is the
# rerun that must finish it.
set -euo pipefail

N=${1:?usage: scripts/soak.sh N [HOSTS]}
HOSTS=${2:-5}
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
export PATH="$HOME/.cargo/bin:$PATH"
cargo build -q
W=target/debug/warren
NAME=soak
INV=lab-$NAME/inventory.toml
OUT=target/soak
rm -rf "$OUT"
mkdir -p "$OUT"
export XDG_STATE_HOME="$PWD/$OUT/state"

$SUDO $W lab down --name $NAME >/dev/null 2>&1 || true
# The lab goes however the soak ends (a failed reset, Ctrl-C).
trap '$SUDO $W lab down --name $NAME >/dev/null 2>&1 || true' EXIT
$SUDO $W lab up --name $NAME --hosts "$HOSTS" >"$OUT/lab-up.out" 2>&1

if [ -n "${SOAK_KILL:-}" ]; then
    RANDOM=$SOAK_KILL
    echo "soak: each bootstrap killed at a random moment first (seed $SOAK_KILL: SOAK_KILL=$SOAK_KILL replays it)"
fi
ok=0
failed=0
: >"$OUT/times"
: >"$OUT/failures"
for i in $(seq 1 "$N"); do
    if [ "$i" -gt 1 ]; then
        $SUDO $W lab reset --name $NAME >"$OUT/reset-$i.out" 2>&1
    fi
    if [ -n "${SOAK_KILL:-}" ]; then
        # The bootstrap killed (SIGKILL) at a random moment, then the timed run
        # below finishes it.
        at=$((2 + RANDOM % 48)).$((RANDOM % 10))
        $W -i "$INV" apply --yes >"$OUT/killed-$i.out" 2>"$OUT/killed-$i.err" &
        pid=$!
        sleep "$at"
        kill -9 "$pid" 2>/dev/null && echo "run $i: killed $at s in, at: $(grep -v '^\s*$' "$OUT/killed-$i.err" | tail -1)"
        wait "$pid" 2>/dev/null || true
    fi
    t0=$(date +%s.%N)
    if $W -i "$INV" apply --yes >"$OUT/apply-$i.out" 2>"$OUT/apply-$i.err" \
        && $W -i "$INV" verify >"$OUT/verify-$i.out" 2>&1; then
        t1=$(date +%s.%N)
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
        echo "$secs" >>"$OUT/times"
        ok=$((ok + 1))
        printf 'run %d: ok in %.1f s\n' "$i" "$secs"
    else
        failed=$((failed + 1))
        # Every node's own log, as the run left it: the cause is there.
        mkdir -p "$OUT/run-$i"
        for a in $(sed -n 's/^address = "\(.*\)"$/\1/p' "$INV"); do
            ssh -i lab-$NAME/id_ed25519 -o UserKnownHostsFile=lab-$NAME/known_hosts \
                -o BatchMode=yes -o ConnectTimeout=5 "root@$a" \
                'cat /var/log/rabbitmq/rabbit@$(hostname).log' >"$OUT/run-$i/$a.log" 2>&1 || true
        done
        reason=$(grep -h '^error: ' "$OUT/apply-$i.err" "$OUT/verify-$i.out" 2>/dev/null | head -5 | tr '\n' ' ')
        [ -n "$reason" ] || reason=$(tail -3 "$OUT/verify-$i.out" 2>/dev/null | tr '\n' ' ')
        echo "run $i: $reason" >>"$OUT/failures"
        echo "run $i: FAILED: $reason"
    fi
done

echo
echo "soak: $N bootstraps of $HOSTS hosts: $ok succeeded, $failed failed"
if [ "$failed" -gt 0 ]; then
    cat "$OUT/failures"
fi
if [ "$ok" -gt 0 ]; then
    sort -n "$OUT/times" | awk '{ t[NR] = $1 } END {
        med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
        printf "times (s): min %.1f, median %.1f, max %.1f\n", t[1], med, t[NR]
    }'
fi
echo "each run's output and run log: $OUT/"
[ "$failed" -eq 0 ]
