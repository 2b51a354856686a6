#!/usr/bin/env bash
# warren against an Ansible playbook of the same layout (bench/ansible), on the
# same fresh 5-host lab, one run each, back to back:
#  1. lab up --name ansible --hosts 5; the lab's cookie file made (warren render);
#  2. ansible-playbook bench/ansible/site.yml, timed (wall seconds);
#  3. warren verify on the Ansible-built cluster (must pass: the same layout);
#  4. lab reset --name ansible (fresh nodes again, same hosts), then
#     warren apply --yes, timed;
#  5. both times and the ratio. The lab is taken down at the end, whatever happens.
# Needs root (the lab). Run from anywhere; it works from the repository root.
# WARREN=path: the warren binary to use (default: target/release/warren, built now).
# Ansible is installed into target/ansible-venv from PyPI when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-ansible.sh: run as root (the lab needs it)" >&2; exit 1; }

W=${WARREN:-target/release/warren}
[ -n "${WARREN:-}" ] || cargo build --release -q
case $W in /*) ;; *) W=$PWD/$W ;; esac
LAB=lab-ansible
OUT=target/bench-ansible
VENV=target/ansible-venv
mkdir -p "$OUT"

if ! "$VENV/bin/ansible-playbook" --version >/dev/null 2>&1 || ! "$VENV/bin/python" -c 'import requests' 2>/dev/null; then
    echo "== installing Ansible into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q ansible requests
fi
echo "== $("$VENV/bin/ansible" --version 2>/dev/null | head -1); community.rabbitmq $("$VENV/bin/ansible-galaxy" collection list community.rabbitmq 2>/dev/null | awk '/community.rabbitmq/ {print $2}')"

trap '"$W" lab down --name ansible >/dev/null 2>&1 || true' EXIT
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "== lab up --name ansible --hosts 5"
"$W" lab down --name ansible >/dev/null 2>&1 || true
"$W" lab up --name ansible --hosts 5 >"$OUT/lab-up.log" 2>&1 || { cat "$OUT/lab-up.log"; exit 1; }

# The cluster's cookie: warren render writes $LAB/erlang.cookie when missing, as
# for its own runs; the playbook reads it, and the passwords, from the lab's files.
rm -rf "$OUT/rendered"
"$W" -i "$LAB/inventory.toml" render --out "$OUT/rendered" >/dev/null

# The Ansible inventory, from the lab's inventory.toml: hosts (groups central_node and
# site_nodes), how to reach them, and the layout's values (users, sites, cluster).
"$VENV/bin/python" - "$LAB/inventory.toml" "$OUT/hosts.yml" <<'PY'
import json, os, sys, tomllib
src, dst = sys.argv[1], sys.argv[2]
base = os.path.dirname(os.path.abspath(src))
inv = tomllib.load(open(src, "rb"))
c = inv["cluster"]
path = lambda p: os.path.join(base, p)
sites = {s["host"]: s for s in inv.get("sites", [])}
hosts = {}
for h in inv["hosts"]:
    v = {
        "ansible_host": h["address"],
        "ansible_user": h.get("user", "root"),
        "ansible_ssh_private_key_file": path(h["key"]),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={path(h['known_hosts'])}",
        "rabbitmq_role": h["role"],
    }
    if h["name"] in sites:
        v["rabbitmq_site"] = {k: sites[h["name"]][k] for k in ("exchange", "queue")}
    hosts[h["name"]] = (h["role"], v)
users = [{
    "name": u["name"],
    "password_file": path(u["password"]["file"]),
    "tags": u.get("tags", []),
    "permissions": [{"vhost": p.get("vhost", "/"), "configure_priv": p["configure"],
                     "write_priv": p["write"], "read_priv": p["read"]}
                    for p in u.get("permissions", [])],
} for u in inv.get("users", [])]
plugins = list(c.get("plugins", []))
if "rabbitmq_prometheus" not in plugins:
    plugins.append("rabbitmq_prometheus")  # warren enables metrics on every node
out = {"all": {
    "vars": {
        "rabbitmq_cluster_name": c["name"],
        "rabbitmq_partition_handling": c.get("partition_handling", "ignore"),
        "rabbitmq_net_ticktime": c.get("net_ticktime", 60),
        "rabbitmq_plugins": plugins,
        "rabbitmq_cookie_file": path(c["cookie"]["file"]),
        "rabbitmq_users": users,
        "rabbitmq_sites": [{"host": s["host"], "exchange": s["exchange"], "queue": s["queue"]}
                           for s in inv.get("sites", [])],
    },
    "children": {"rabbitmq": {"children": {
        "central_node": {"hosts": {n: v for n, (r, v) in hosts.items() if r == "central"}},
        "site_nodes": {"hosts": {n: v for n, (r, v) in hosts.items() if r == "site"}},
    }}},
}}
json.dump(out, open(dst, "w"), indent=2)
PY

wall() { awk "BEGIN { printf \"%.1f\", $2 - $1 }"; }

echo "== ansible-playbook on the fresh lab"
t0=$(date +%s.%N)
ANSIBLE_CONFIG=bench/ansible/ansible.cfg "$VENV/bin/ansible-playbook" -i "$OUT/hosts.yml" bench/ansible/site.yml \
    >"$OUT/ansible.log" 2>&1 || { tail -40 "$OUT/ansible.log"; echo "ansible-playbook failed (log: $OUT/ansible.log)"; exit 1; }
t1=$(date +%s.%N)
ansible_s=$(wall "$t0" "$t1")
sed -n '/^PLAY RECAP/,$p' "$OUT/ansible.log"
echo "ansible-playbook wall: $ansible_s s"

echo "== warren verify on the Ansible-built cluster"
if "$W" -i "$LAB/inventory.toml" verify >"$OUT/verify-ansible.log" 2>&1; then
    verify=passed
else
    verify=FAILED
fi
grep -iE 'fail|✗' "$OUT/verify-ansible.log" || true
echo "warren verify: $verify (log: $OUT/verify-ansible.log)"

echo "== lab reset --name ansible, then warren apply --yes on the fresh nodes"
"$W" lab reset --name ansible >"$OUT/lab-reset.log" 2>&1 || { cat "$OUT/lab-reset.log"; exit 1; }
t0=$(date +%s.%N)
rc=0
"$W" -i "$LAB/inventory.toml" apply --yes --timings >"$OUT/apply.log" 2>&1 || rc=$?
t1=$(date +%s.%N)
warren_s=$(wall "$t0" "$t1")
sed -n '/^timings:/,$p' "$OUT/apply.log"
echo "warren apply wall: $warren_s s (exit $rc; log: $OUT/apply.log)"

echo "== result"
echo "ansible-playbook: $ansible_s s (warren verify on its cluster: $verify)"
echo "warren apply:     $warren_s s (exit $rc)"
echo "ratio warren/ansible: $(awk "BEGIN { printf \"%.2f\", $warren_s / $ansible_s }")"
[ "$verify" = passed ] && [ "$rc" = 0 ]
