#!/usr/bin/env bash
# Measures warren on the lab, as recorded in BENCHMARKS.md, one run each:
#  - a bootstrap of 5 fresh hosts (apply --timings: the split by wave and host);
#  - the floor beside it, on the same hosts: one RabbitMQ node start and one
#    stop_app / join_cluster / start_app, timed around RabbitMQ's own CLI;
#  - no-op plans and applies, verify, on the converged cluster;
#  - a sixth host added (its timings, and how many other nodes restarted);
#  - the floor of a blank node booted straight into the cluster (peer discovery);
#  - the same bootstrap with join = "cli" (a standalone boot, then join_cluster);
#  - plan, bootstrap, no-op plan and apply, and verify on a 20-host lab.
# Needs root (the lab). Run from the repository root: scripts/bench.sh
# BENCH_SKIP_20=1 leaves out the 20-host part.
set -euo pipefail
W=${WARREN:-target/release/warren}
[ -n "${WARREN:-}" ] || cargo build --release -q  # always current: a stale binary measures old code
W=$PWD/$W
work=$(mktemp -d)
cd "$work"
trap '"$W" lab down >/dev/null 2>&1; rm -rf "$work"' EXIT
run() { "$W" -i lab/inventory.toml "$@"; }
# Wall seconds of one warren run on the lab's inventory (its exit status aside:
# `plan --exit-code` exits 2 when something would change).
wall() {
    local t0 t1
    t0=$(date +%s.%N)
    "$W" -i lab/inventory.toml "$@" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    awk "BEGIN { printf \"%.2f\n\", $t1 - $t0 }"
}
on() { local ip=$1; shift; ssh -i lab/id_ed25519 -o UserKnownHostsFile=lab/known_hosts -o BatchMode=yes "root@$ip" "$@"; }
pids() { for ip in "$@"; do on "$ip" 'cat /var/lib/rabbitmq/mnesia/*.pid'; done; }
ips() { for i in $(seq 0 $(($1 - 1))); do echo "10.231.77.$((10 + i))"; done; }

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(date -u +%Y-%m-%d)"
"$W" lab down >/dev/null 2>&1
"$W" lab up >/dev/null 2>&1

echo "== bootstrap: plan, then apply --yes --timings, on a fresh 5-host lab"
echo "plan on the 5 fresh hosts: $(wall plan) s"
/usr/bin/time -f "apply wall: %e s" "$W" -i lab/inventory.toml apply --yes --timings 2>&1 >/dev/null | sed -n '/^error\|^timings:/,$p' || true

echo "== no-op plan, 5 runs (wall seconds)"
for i in 1 2 3 4 5; do wall plan --exit-code; done | paste -sd' '
echo "== no-op apply --yes, 5 runs (wall seconds)"
for i in 1 2 3 4 5; do wall apply --yes; done | paste -sd' '
echo "== split of one no-op plan"
run plan --timings 2>&1 >/dev/null | sed -n '/^timings:/,$p'
echo "== verify on the healthy cluster, 3 runs (wall seconds)"
for i in 1 2 3; do wall verify; done | paste -sd' '

echo "== the floor, on site4 of the same lab, with RabbitMQ's own CLI"
S=10.231.77.14
# site4 standalone again, holding nothing (the floor's join is a fresh node's).
on $S 'rabbitmqctl -q stop_app && rabbitmqctl -q reset && rabbitmqctl -q start_app'
on $S 'rabbitmqctl -q stop'
start=$(on $S 'b=$(date +%s.%N); rabbitmq-server -detached >/dev/null 2>&1 </dev/null
  until rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1; do sleep 0.2; done
  awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $b }"')
join=$(on $S 'b=$(date +%s.%N); rabbitmqctl -q stop_app && rabbitmqctl -q join_cluster rabbit@central && rabbitmqctl -q start_app
  awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $b }"')
echo "one node start: $start s; one stop_app/join_cluster/start_app: $join s"
echo "floor (central start, then one start-and-join): $(awk "BEGIN { printf \"%.1f\", $start + $start + $join }") s"
# The same node booted blank into the cluster, as peer discovery does it: out of the
# cluster again, stopped, its database deleted, started with the node list in its
# config.
on $S 'rabbitmqctl -q stop_app && rabbitmqctl -q reset && rabbitmqctl -q start_app'
blank=$(on $S 'rabbitmqctl -q stop /var/lib/rabbitmq/mnesia/rabbit@site4.pid
  grep -q classic_config /etc/rabbitmq/rabbitmq.conf || printf "cluster_formation.peer_discovery_backend = classic_config\ncluster_formation.classic_config.nodes.1 = rabbit@central\n" >>/etc/rabbitmq/rabbitmq.conf
  rm -rf /var/lib/rabbitmq/mnesia/rabbit@site4 /var/lib/rabbitmq/mnesia/rabbit@site4-feature_flags
  b=$(date +%s.%N); rabbitmq-server -detached >/dev/null 2>&1 </dev/null
  until rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1; do sleep 0.2; done
  awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $b }"')
echo "one blank boot straight into the cluster (peer discovery): $blank s; members: $(on $S 'rabbitmqctl -q cluster_status --formatter json' | grep -o 'rabbit@[a-z0-9]*' | sort -u | paste -sd' ')"
echo "repairing site4's queue placement: $(wall apply --yes) s"
echo "== a sixth host: lab up --hosts 6, then apply --yes --timings"
before=$(pids $(ips 5))
"$W" lab up --hosts 6 >/dev/null 2>&1
/usr/bin/time -f "apply wall: %e s" "$W" -i lab/inventory.toml apply --yes --timings 2>&1 >/dev/null | sed -n '/^error\|^timings:/,$p' || true
after=$(pids $(ips 5))
echo "other nodes restarted: $(diff <(echo "$before") <(echo "$after") | grep -c '^>' || true)"
echo "== drill site1 --yes --messages 20 (wall seconds)"
wall drill site1 --yes --messages 20

echo "== bootstrap with join = \"cli\" (each node boots standalone, then rabbitmqctl join_cluster), on a fresh 5-host lab"
"$W" lab down >/dev/null 2>&1
"$W" lab up >/dev/null 2>&1
sed -i 's/^join = "config"/join = "cli"/' lab/inventory.toml
/usr/bin/time -f "apply wall: %e s" "$W" -i lab/inventory.toml apply --yes --timings 2>&1 >/dev/null | sed -n '/^error\|^timings:/,$p' || true

if [ -z "${BENCH_SKIP_20:-}" ]; then
    echo "== 20 hosts: lab up --hosts 20"
    "$W" lab down >/dev/null 2>&1
    /usr/bin/time -f "lab up: %e s" "$W" lab up --hosts 20 2>&1 >/dev/null | tail -1
    echo "plan on 20 fresh hosts:"
    run plan --timings 2>&1 >/dev/null | sed -n '/^timings:/,$p'
    echo "bootstrap of 20:"
    /usr/bin/time -f "apply wall: %e s" "$W" -i lab/inventory.toml apply --yes --timings 2>&1 >/dev/null | sed -n '/^error\|^timings:/,$p' || true
    echo "no-op plan, 3 runs: $(for i in 1 2 3; do wall plan --exit-code; done | paste -sd' ')"
    echo "no-op apply, 3 runs: $(for i in 1 2 3; do wall apply --yes; done | paste -sd' ')"
    echo "verify, 3 runs: $(for i in 1 2 3; do wall verify; done | paste -sd' ')"
    run plan --timings 2>&1 >/dev/null | sed -n '/^timings:/,$p'
fi
