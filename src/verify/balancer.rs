//! The load balancer's checks: HAProxy runs on its host, sees every cluster member
//! up, and clients that connect through its frontends reach RabbitMQ, each node in
//! turn. Connections are made on the balancer's host itself, to its frontends, as a
//! client on that host would.

use super::Checks;
use crate::facts::HostFacts;
use crate::inventory::Inventory;
use crate::platform::{Probe, Transport};
use crate::rabbitmq::api::{self, Credentials};

const HINT: &str = "run `warren plan` to see what differs and `warren apply` to start or reload HAProxy; its log is in the host's syslog (or `journalctl -u haproxy`)";

pub(super) fn check(
    c: &mut Checks,
    inv: &Inventory,
    host_facts: &[Option<HostFacts>],
    conns: &mut [Option<Box<dyn Transport>>],
    creds: &[Credentials],
) {
    let Some(lb) = inv.load_balancer.as_ref() else {
        return;
    };
    let name = inv.hosts[lb.host].name.clone();
    let (Some(t), Some(hf)) = (conns[lb.host].as_mut(), host_facts[lb.host].as_ref()) else {
        c.add("balancer", &name, false, "the host could not be read", None);
        return;
    };
    let t: &mut dyn Transport = &mut **t;
    let state = crate::facts::balancer::read(inv, hf, &mut *t);
    let state = match state {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            c.add("balancer", &name, false, format!("{e:#}"), None);
            return;
        }
        None => return,
    };
    let running = state.running && state.version.is_some();
    c.add(
        "balancer",
        &name,
        running,
        match (&state.version, state.running) {
            (None, _) => "HAProxy is not installed".to_string(),
            (Some(v), false) => format!("HAProxy {v} is installed but not running"),
            (Some(v), true) => format!("HAProxy {v} runs"),
        },
        Some(HINT),
    );
    if !running {
        return;
    }
    let members: Vec<&crate::inventory::Host> = inv
        .hosts
        .iter()
        .enumerate()
        .filter(|(i, _)| inv.is_member(*i))
        .map(|(_, h)| h)
        .collect();

    // HAProxy's own health checks: every member up in every backend.
    match crate::facts::balancer::stats(inv, &mut *t) {
        Ok(rows) => {
            let mut down = Vec::new();
            let mut up = 0;
            for (backend, _) in crate::render::balancer::backends(inv) {
                for h in &members {
                    match rows
                        .iter()
                        .find(|r| r.backend == backend && r.server == h.name)
                    {
                        Some(r) if r.up() => up += 1,
                        Some(r) => down.push(format!("{} in {backend}: {}", h.name, r.status)),
                        None => down.push(format!("{} in {backend}: not listed", h.name)),
                    }
                }
            }
            c.add(
                "balancer backends",
                &name,
                down.is_empty(),
                if down.is_empty() {
                    format!("HAProxy's checks see every node up ({up} servers)")
                } else {
                    format!("HAProxy's checks: {}", down.join(", "))
                },
                Some("a node down here is one HAProxy cannot reach on its port from this host: check that it runs and the firewall lets the balancer in"),
            );
        }
        Err(e) => c.add("balancer backends", &name, false, e, Some(HINT)),
    }

    // Through the frontends, as a client: the management API answers from each node
    // in turn (it names the node that served), and every AMQP and MQTT connection
    // is answered by RabbitMQ. Where the nodes listen with TLS only, the balancer
    // passes TLS through, and so do the probes (`balancer::through`); `check` refuses
    // members that differ in it.
    let mut problems = Vec::new();
    let cred = if crate::inventory::balancer::wire(inv) == crate::inventory::balancer::Wire::Plain
        && inv
            .cluster
            .plugins
            .iter()
            .any(|p| p == "rabbitmq_management")
    {
        let port = lb.ports.management;
        match api::accepted(&mut *t as &mut dyn Probe, port, creds) {
            Ok(Some(cred)) => Some(cred),
            Ok(None) => {
                problems.push(format!(
                    "the management API through port {port} accepts neither the inventory's administrator nor guest"
                ));
                None
            }
            Err(e) => {
                problems.push(format!("management through port {port}: {e:#}"));
                None
            }
        }
    } else {
        None
    };
    let n = 2 * members.len();
    let seen = crate::facts::balancer::through(inv, &mut *t, cred.as_ref(), n);
    let (mut problems, mut parts) = describe(&seen, &members, problems);
    if let Some(t) = &seen.tls {
        parts.push(match &t.ca {
            Some(ca) => format!("through TLS, each node's certificate checked against {ca}"),
            None => format!(
                "through TLS (certificates not checked: {name} has no tls table, so no CA file)"
            ),
        });
    }
    if !problems.is_empty() {
        problems.dedup();
    }
    c.add(
        "balancer serves",
        &name,
        problems.is_empty(),
        if problems.is_empty() {
            parts.join("; ")
        } else {
            problems.join("; ")
        },
        Some(HINT),
    );
}

/// What `through` found, as (problems, good parts): every member must have answered
/// through the management frontend and every connection through the others.
fn describe(
    seen: &crate::facts::balancer::Through,
    members: &[&crate::inventory::Host],
    mut problems: Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let mut parts = Vec::new();
    if let Some((nodes, tried)) = &seen.management {
        let missing: Vec<String> = members
            .iter()
            .map(|h| h.node_name())
            .filter(|n| !nodes.contains(n))
            .collect();
        if missing.is_empty() {
            parts.push(format!(
                "management answered from each of {} nodes",
                nodes.len()
            ));
        } else {
            problems.push(format!(
                "management never answered from {} in {tried} requests",
                missing.join(", ")
            ));
        }
    }
    for (label, port, ok, tried) in &seen.connections {
        if ok == tried {
            parts.push(format!("{label} {ok} of {tried} connections answered"));
        } else {
            problems.push(format!(
                "{label} on port {port}: {ok} of {tried} connections answered by RabbitMQ"
            ));
        }
    }
    (problems, parts)
}
