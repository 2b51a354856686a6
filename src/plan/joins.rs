//! Which nodes join the seed (the central node), decided from RabbitMQ's node lists;
//! and when a join, which resets the node, would lose something and needs `--force`.

use super::{Blocker, Options};
use crate::facts::Facts;
use crate::inventory::{Inventory, JoinMethod, NodeType, Role};

#[derive(Debug, Clone)]
pub struct Join {
    pub host: String,
    pub node: String,
    pub seed: String,
    pub method: JoinMethod,
    pub ram: bool,
    /// Why it joins ("standalone", "not running: checked when started").
    pub why: String,
}

/// Why joining (which resets the node) would lose something, if it would: the node
/// belongs to another cluster, or its queues hold messages. Both need `--force`.
pub fn reset_refusal(m: &crate::facts::Membership, messages: u64) -> Option<String> {
    let others: Vec<&str> = m
        .nodes
        .iter()
        .filter(|n| **n != m.node)
        .map(String::as_str)
        .collect();
    if !others.is_empty() {
        Some(format!(
            "{} belongs to another cluster (with {}); warren does not reset a cluster member: remove it from that cluster, or rerun with --force to reset it",
            m.node,
            others.join(", ")
        ))
    } else if messages > 0 {
        Some(format!(
            "{} holds {messages} messages that joining would delete (join resets the node); drain them, or rerun with --force",
            m.node
        ))
    } else {
        None
    }
}

/// Which nodes join the seed (the central node), decided from RabbitMQ's node lists.
pub(super) fn joins(
    inv: &Inventory,
    facts: &Facts,
    opts: Options,
    blockers: &mut Vec<Blocker>,
) -> Vec<Join> {
    let central = inv.central();
    let seed = central.node_name();
    let mut out = Vec::new();
    for (i, (h, f)) in inv.hosts.iter().zip(&facts.hosts).enumerate() {
        if h.role == Role::Central {
            continue;
        }
        if inv.is_linked(i) {
            // A linked site's broker stays standalone: one that is a member of a
            // cluster now is not taken out by warren (that resets it).
            if let Some(m) = f.node.membership.as_ref().filter(|m| m.nodes.len() > 1) {
                let link = inv.site_of(h).map(|s| s.link.as_str()).unwrap_or("");
                blockers.push(Blocker {
                    host: h.name.clone(),
                    message: format!(
                        "{} is a member of a cluster ({}), but the inventory links its site by {link} as a standalone broker: move its queues' messages away, take it out (rabbitmqctl stop_app, reset, start_app on {}), then rerun; or set link = \"cluster\"",
                        m.node,
                        m.nodes.join(", "),
                        h.name
                    ),
                });
            }
            continue;
        }
        let join = |why: String| Join {
            host: h.name.clone(),
            node: h.node_name(),
            seed: seed.clone(),
            method: inv.cluster.join,
            ram: h.node_type == NodeType::Ram,
            why,
        };
        let Some(m) = &f.node.membership else {
            out.push(join(
                "not answering as a member now: joins if it is not a member once started".into(),
            ));
            continue;
        };
        if m.nodes.contains(&seed) {
            continue;
        }
        let others = m.nodes.iter().any(|n| *n != m.node);
        if !opts.force {
            if let Some(message) = reset_refusal(m, f.node.messages.unwrap_or(0)) {
                blockers.push(Blocker {
                    host: h.name.clone(),
                    message,
                });
                continue;
            }
        }
        out.push(join(if !others {
            "standalone".to_string()
        } else {
            "in another cluster; reset by --force".to_string()
        }));
    }
    out
}
