//! The hosts' own checks: reachable, RabbitMQ running, the cookie, each node's view of
//! the cluster (or, for a linked site's broker, that it stands alone), partitions,
//! versions, and the declared plugins on every running node.

use super::{Checks, APPLY};
use crate::facts::{self, ClusterFacts, HostFacts};
use crate::inventory::Inventory;
use crate::platform::{Probe, Transport};
use crate::render::Rendered;
use std::collections::BTreeSet;

/// Connects to every host: a check each, and the connection where there is one.
pub(super) fn reach(c: &mut Checks, inv: &Inventory) -> Vec<Option<Box<dyn Transport>>> {
    let mut conns: Vec<Option<Box<dyn Transport>>> = Vec::new();
    for (h, r) in inv.hosts.iter().zip(facts::connect_all(inv)) {
        match r {
            Ok(t) => {
                c.add(
                    "reachable",
                    &h.name,
                    true,
                    format!("{} over {}", h.address, h.transport),
                    None,
                );
                conns.push(Some(t));
            }
            Err(e) => {
                c.add(
                    "reachable",
                    &h.name,
                    false,
                    format!("{e:#}"),
                    Some(match h.transport {
                        crate::inventory::TransportKind::Ssh => {
                            "check that the host is up and its SSH server answers"
                        }
                        crate::inventory::TransportKind::Winrm => {
                            "check that the host is up and its WinRM listener answers (winrm enumerate winrm/config/listener)"
                        }
                    }),
                );
                conns.push(None);
            }
        }
    }
    conns
}

/// Every host's facts at once, and the checks read from them: RabbitMQ running, the
/// cookie, the node's own view of the cluster; then the versions across the hosts.
pub(super) fn hosts(
    c: &mut Checks,
    inv: &Inventory,
    rendered: &Rendered,
    conns: &mut [Option<Box<dyn Transport>>],
) -> Vec<Option<HostFacts>> {
    // The cluster's members: a linked site's broker is none of them.
    let all_nodes: BTreeSet<String> = inv
        .hosts
        .iter()
        .enumerate()
        .filter(|(i, _)| inv.is_member(*i))
        .map(|(_, h)| h.node_name())
        .collect();
    let mut host_facts: Vec<Option<HostFacts>> = Vec::new();
    let mut versions: BTreeSet<String> = BTreeSet::new();
    // Every host's facts at once, read as `plan` reads them.
    let read = facts::read_hosts(
        inv,
        &rendered.hosts,
        conns
            .iter_mut()
            .map(|c| c.as_mut().map(|t| &mut **t as &mut dyn Probe))
            .collect(),
    );
    for (hi, ((h, d), r)) in inv.hosts.iter().zip(&rendered.hosts).zip(read).enumerate() {
        let Some(r) = r else {
            host_facts.push(None);
            continue;
        };
        let f = match r {
            Ok(f) => f,
            Err(e) => {
                c.add("facts", &h.name, false, format!("{e:#}"), None);
                host_facts.push(None);
                continue;
            }
        };
        let running = f.running() && f.node.membership.is_some();
        c.add(
            "rabbitmq running",
            &h.name,
            running,
            match f.node.state {
                _ if running => format!("{} answers", h.node_name()),
                facts::NodeState::Booting => format!("{} is still booting", h.node_name()),
                facts::NodeState::AppStopped => format!(
                    "{}: the Erlang VM runs with the rabbit application stopped",
                    h.node_name()
                ),
                _ => format!("{} is not running", h.node_name()),
            },
            Some("start RabbitMQ on the host (warren apply starts it)"),
        );
        let whose = if inv.is_linked(hi) {
            "the site's own cookie"
        } else {
            "the cluster's cookie"
        };
        if let Some(cookie) = d
            .files
            .iter()
            .find(|x| x.effect == crate::render::Effect::StopWriteStart)
        {
            let want = crate::util::sha256_hex(cookie.content.bytes());
            let ok = matches!(f.files.get(&cookie.path), Some(facts::FileState::Hash { sha256, .. }) if *sha256 == want);
            c.add(
                "cookie",
                &h.name,
                ok,
                if ok {
                    format!("{whose} (compared by hash)")
                } else {
                    format!("{} differs from {whose}", cookie.path)
                },
                Some(APPLY),
            );
        }
        if let Some(v) = &f.node.version {
            versions.insert(v.clone());
        }
        if let Some(m) = f.node.membership.as_ref().filter(|_| inv.is_linked(hi)) {
            let alone = m.nodes == [m.node.clone()];
            c.add(
                "standalone",
                &h.name,
                alone,
                if alone {
                    format!("{} is a broker of its own, in no cluster", m.node)
                } else {
                    format!("{} is in a cluster with {}", m.node, m.nodes.join(", "))
                },
                Some("a linked site's broker is no cluster member: `warren plan` says how to take it out"),
            );
        } else if let Some(m) = &f.node.membership {
            let seen: BTreeSet<String> = m.nodes.iter().cloned().collect();
            let running: BTreeSet<String> = m.running.iter().cloned().collect();
            let missing: Vec<&String> = all_nodes.difference(&seen).collect();
            let extra: Vec<&String> = seen.difference(&all_nodes).collect();
            let down: Vec<&String> = all_nodes
                .difference(&running)
                .filter(|n| seen.contains(*n))
                .collect();
            let ok = missing.is_empty() && extra.is_empty() && down.is_empty();
            let detail = if ok {
                format!("sees all {} nodes running", all_nodes.len())
            } else {
                let mut parts = Vec::new();
                if !missing.is_empty() {
                    parts.push(format!("not in its cluster: {}", join(&missing)));
                }
                if !extra.is_empty() {
                    parts.push(format!("not in the inventory: {}", join(&extra)));
                }
                if !down.is_empty() {
                    parts.push(format!("not running: {}", join(&down)));
                }
                parts.join("; ")
            };
            c.add(
                "cluster view",
                &h.name,
                ok,
                detail,
                Some("start the nodes that are down; `warren apply` joins the missing ones"),
            );
            c.add(
                "partitions",
                &h.name,
                m.partitions.is_empty(),
                if m.partitions.is_empty() { "none".to_string() } else { format!("partitioned from {}", m.partitions.join(", ")) },
                Some("restore the network between the nodes, then restart the nodes of the minority side"),
            );
        }
        host_facts.push(Some(f));
    }
    let all_versions: Vec<String> = versions.into_iter().collect();
    c.add(
        "versions",
        "cluster",
        all_versions.len() <= 1,
        if all_versions.is_empty() {
            "no node reported its version".to_string()
        } else {
            all_versions.join(" / ")
        },
        Some("upgrade the nodes to the same RabbitMQ and Erlang versions"),
    );
    host_facts
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// The declared plugins on every running node. The node statistics say which run;
/// where they say one is missing (as they do for a few seconds after a restart), the
/// node itself is asked, and its answer counts.
pub(super) fn plugins(
    c: &mut Checks,
    inv: &Inventory,
    cf: &ClusterFacts,
    conns: &mut [Option<Box<dyn Transport>>],
) {
    // (host index, whether its statistics miss a declared plugin), running nodes only.
    let nodes: Vec<(usize, bool)> = cf
        .nodes
        .iter()
        .filter(|n| n.running)
        .filter_map(|n| {
            let i = inv.hosts.iter().position(|h| h.node_name() == n.name)?;
            let miss = inv
                .plugins_of(i)
                .iter()
                .any(|p| !n.applications.iter().any(|a| &a.name == p));
            Some((i, miss))
        })
        .collect();
    // The nodes whose statistics miss a plugin are asked through their CLI, all at
    // once (right after a restart that is every restarted node).
    let mut asked: Vec<Option<anyhow::Result<facts::PluginStates>>> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(i, t)| {
                let ask = nodes.iter().any(|&(k, miss)| k == i && miss);
                s.spawn(move || match (ask, t.as_mut()) {
                    (true, Some(t)) => Some(facts::plugin_states(&mut **t, inv, i)),
                    _ => None,
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|j| j.join().ok().flatten())
            .collect()
    });
    for (i, miss) in nodes {
        let host = inv.hosts[i].name.clone();
        let states = match (miss, asked[i].take()) {
            (false, _) => facts::PluginStates::default(),
            (true, None) => continue, // unreachable: reported above
            (true, Some(Ok(s))) => s,
            (true, Some(Err(e))) => {
                c.add("plugins", &host, false, format!("{e:#}"), None);
                continue;
            }
        };
        let mut wrong = Vec::new();
        if !states.not_enabled.is_empty() {
            wrong.push(format!("not enabled: {}", states.not_enabled.join(", ")));
        }
        if !states.not_running.is_empty() {
            wrong.push(format!("not running: {}", states.not_running.join(", ")));
        }
        c.add(
            "plugins",
            &host,
            wrong.is_empty(),
            if wrong.is_empty() {
                format!("{} running", inv.plugins_of(i).join(", "))
            } else {
                wrong.join("; ")
            },
            Some(APPLY),
        );
    }
}
