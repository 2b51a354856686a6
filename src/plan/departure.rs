//! Removing a host: a node the cluster lists that the inventory no longer does. Its
//! queue masters move to their synchronised copies first (RabbitMQ's own promotion,
//! as for any master move), its quorum queue members are deleted, then the node is
//! stopped (from the central node, through Erlang distribution: the host is no longer
//! in the inventory, so warren has no way in) and forgotten (`forget_cluster_node`).
//! Its files stay on the host. Refused where a queue would lose messages: a master
//! without a synchronised copy, a queue that lives on that node only, a quorum queue
//! whose only member it is.

use super::Blocker;
use crate::facts::Facts;
use crate::inventory::Inventory;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub node: String,
    /// The cluster lists it as running.
    pub running: bool,
    /// Classic queues mastered on it, each with the synchronised copy its master moves
    /// to (the central node's where it has one).
    pub moves: Vec<(String, String)>,
    /// Quorum queues with a member on it: that member is deleted.
    pub members: Vec<String>,
}

impl Departure {
    /// The steps, in the plan's words.
    pub fn describe(&self) -> String {
        let mut steps: Vec<String> = self
            .moves
            .iter()
            .map(|(q, to)| format!("move the master of {q} to {to} (its synchronised copy)"))
            .collect();
        for q in &self.members {
            steps.push(format!("delete its member of quorum queue {q}"));
        }
        if self.running {
            steps.push("stop the node".into());
        }
        steps.push("forget it (forget_cluster_node); its files stay on its host".into());
        steps.join(", ")
    }
}

/// The departures the facts show, and what refuses them (lifted by `force`, except a
/// master whose copies are not synchronised: syncing them first loses nothing).
pub fn departures(
    inv: &Inventory,
    facts: &Facts,
    force: bool,
    blockers: &mut Vec<Blocker>,
) -> Vec<Departure> {
    let Ok(cf) = &facts.cluster else {
        return Vec::new();
    };
    let wanted: Vec<String> = inv.hosts.iter().map(|h| h.node_name()).collect();
    let central = inv.central().node_name();
    let mut out = Vec::new();
    for n in cf.nodes.iter().filter(|n| !wanted.contains(&n.name)) {
        let node = &n.name;
        let mut refuse = |message: String, overridable: bool| {
            if !(force && overridable) {
                blockers.push(Blocker {
                    host: inv.central().name.clone(),
                    message,
                });
            }
        };
        let mut d = Departure {
            node: node.clone(),
            running: n.running,
            moves: Vec::new(),
            members: Vec::new(),
        };
        for q in &cf.queues {
            if q.members.contains(node) {
                if q.members.len() == 1 {
                    refuse(format!(
                        "{node} is not in the inventory, but it is the only member of quorum queue {}: removing it would delete the queue; add a member on another node first, or rerun with --force",
                        q.name
                    ), true);
                } else {
                    d.members.push(q.name.clone());
                }
                continue;
            }
            if !q.members.is_empty() || q.node.as_deref() != Some(node.as_str()) {
                continue;
            }
            let synced: Vec<&String> = q
                .synchronised_slave_nodes
                .iter()
                .filter(|s| wanted.contains(s))
                .collect();
            let to = synced
                .iter()
                .find(|s| ***s == central)
                .or(synced.first())
                .map(|s| s.to_string());
            match to {
                _ if q.vhost != inv.cluster.vhost => refuse(format!(
                    "{node} is not in the inventory, but queue {} of vhost {} lives on it; warren moves the queues of vhost {} only: move it by hand, or rerun with --force to lose it",
                    q.name, q.vhost, inv.cluster.vhost
                ), true),
                Some(to) => d.moves.push((q.name.clone(), to)),
                None if q.slave_nodes.is_empty() => {
                    if q.durable {
                        refuse(format!(
                            "{node} is not in the inventory, but durable queue {} lives on it alone (no mirror): removing the node would lose it and its messages; mirror it or move it first, or rerun with --force",
                            q.name
                        ), true)
                    }
                }
                None => refuse(format!(
                    "{node} is not in the inventory, but queue {}'s master is on it and none of its copies ({}) is synchronised: moving it now would lose messages; `rabbitmqctl sync_queue -p {} {}`, then rerun",
                    q.name,
                    q.slave_nodes.join(", "),
                    q.vhost,
                    q.name
                ), false),
            }
        }
        out.push(d);
    }
    out
}
