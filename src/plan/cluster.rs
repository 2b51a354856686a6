//! The cluster part of the plan: vhost, users, permissions, policies, exchanges, queues
//! (with where their master and copies live) and bindings, compared with what the
//! central node's management API reports.

use super::Action;
use crate::facts::{ClusterFacts, Unreadable};
use crate::inventory::{Inventory, Replication};
use crate::render::definitions::{
    self, BindingDef, ExchangeDef, PermissionDef, PolicyDef, QueueDef,
};
use base64::Engine;
use sha2::{Digest, Sha256};

/// One API (or CLI) operation on the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    PutVhost(String),
    /// Create the user or set its password and tags; the password is read from the
    /// inventory's reference when the step runs.
    PutUser {
        name: String,
        tags: Vec<String>,
    },
    PutPermission(PermissionDef),
    PutPolicy(PolicyDef),
    PutExchange(ExchangeDef),
    /// Declared through `node`, so that its master (or leader) lives there; a quorum
    /// queue's members are then made exactly `members`.
    DeclareQueue {
        def: QueueDef,
        node: String,
        members: Vec<String>,
    },
    PutBinding(BindingDef),
    AddMember {
        queue: String,
        node: String,
    },
    DeleteMember {
        queue: String,
        node: String,
    },
    SyncQueue {
        queue: String,
    },
    /// Move a classic queue's master back to its site's node (after a failover or a
    /// restart of that node promoted the mirror), once the site's copy is synchronised.
    MoveMaster {
        queue: String,
        to: String,
        from: String,
    },
    /// Remove a policy warren made for itself and a run left behind.
    DeletePolicy {
        name: String,
    },
    /// Remove a queue of warren's own (verify's, a drill's) a run left behind.
    DeleteQueue {
        name: String,
    },
    /// Remove verify's exchange, left behind by an interrupted verify.
    DeleteExchange {
        name: String,
    },
    /// Remove RabbitMQ's default `guest` user once the inventory's administrator
    /// exists (last: warren may be reading the cluster as guest until then).
    DeleteGuest,
}

/// The prefix of the temporary policy that moves a master (`apply`): one left
/// behind by an interrupted run pins its queue to one node, without a mirror.
pub const MOVE_POLICY_PREFIX: &str = "warren-move-";

/// What warren makes for itself while it runs, by name prefix, and which run makes it:
/// policies, then queues, then verify's exchange. Each is removed when the run ends;
/// the facts find what an interrupted run left, and the plan removes it.
const OWN_POLICIES: [(&str, &str); 3] = [
    (MOVE_POLICY_PREFIX, "an interrupted master move"),
    ("warren-verify-", "an interrupted verify"),
    ("warren-drill-", "an interrupted drill"),
];
const OWN_QUEUES: [(&str, &str); 2] = [
    ("warren.verify.", "an interrupted verify"),
    (
        "warren.drill.",
        "an interrupted drill (its test messages go with it)",
    ),
];
const OWN_EXCHANGE: &str = "warren.verify";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Vhost,
    User,
    Permission,
    Policy,
    Exchange,
    Queue,
    Binding,
    Members,
    Sync,
    Master,
}

impl Resource {
    pub fn label(&self) -> &'static str {
        match self {
            Resource::Vhost => "vhost",
            Resource::User => "user",
            Resource::Permission => "permission",
            Resource::Policy => "policy",
            Resource::Exchange => "exchange",
            Resource::Queue => "queue",
            Resource::Binding => "binding",
            Resource::Members => "quorum member",
            Resource::Sync => "sync",
            Resource::Master => "master",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResourceChange {
    pub resource: Resource,
    pub name: String,
    pub action: Action,
    pub detail: String,
    pub op: Op,
}

#[derive(Debug, Clone)]
pub enum ClusterPlan {
    /// Read from the cluster: exactly what differs.
    Known {
        changes: Vec<ResourceChange>,
        unchanged: usize,
        /// Differences warren will not fix (they would lose data), one sentence each.
        blockers: Vec<String>,
        /// Drift worth knowing that apply does not change.
        notes: Vec<String>,
    },
    /// Not readable before the node steps (a fresh central node has no management
    /// API yet): everything is ensured after them, and read back.
    Unknown {
        reason: String,
        changes: Vec<ResourceChange>,
    },
}

impl ClusterPlan {
    pub fn changes(&self) -> &[ResourceChange] {
        match self {
            ClusterPlan::Known { changes, .. } | ClusterPlan::Unknown { changes, .. } => changes,
        }
    }
    pub fn has_changes(&self) -> bool {
        !self.changes().is_empty()
    }
}

/// Everything the inventory wants in the cluster, as operations, in the order they
/// must run (users before permissions, policies before queues, queues before bindings).
fn desired(inv: &Inventory) -> Vec<ResourceChange> {
    let defs = definitions::build_without_passwords(inv);
    let mut out = Vec::new();
    let c = |resource, name: String, detail: String, op| ResourceChange {
        resource,
        name,
        action: Action::Create,
        detail,
        op,
    };
    for v in &defs.vhosts {
        out.push(c(
            Resource::Vhost,
            v.name.clone(),
            String::new(),
            Op::PutVhost(v.name.clone()),
        ));
    }
    for u in &inv.users {
        out.push(c(
            Resource::User,
            u.name.clone(),
            tags_text(&u.tags),
            Op::PutUser {
                name: u.name.clone(),
                tags: u.tags.clone(),
            },
        ));
    }
    for p in defs.permissions {
        out.push(c(
            Resource::Permission,
            format!("{} on {}", p.user, p.vhost),
            format!(
                "configure {:?} write {:?} read {:?}",
                p.configure, p.write, p.read
            ),
            Op::PutPermission(p),
        ));
    }
    for p in defs.policies {
        out.push(c(
            Resource::Policy,
            p.name.clone(),
            format!(
                "{} -> {}",
                p.pattern,
                serde_json::Value::Object(p.definition.clone())
            ),
            Op::PutPolicy(p),
        ));
    }
    for e in defs.exchanges {
        out.push(c(
            Resource::Exchange,
            e.name.clone(),
            e.kind.clone(),
            Op::PutExchange(e),
        ));
    }
    for (q, s) in defs.queues.into_iter().zip(&inv.sites) {
        let node = inv.hosts[s.host].node_name();
        let copies: Vec<String> = s
            .mirrors
            .iter()
            .map(|&m| inv.hosts[m].node_name())
            .collect();
        let detail = match inv.cluster.replication {
            Replication::Mirrored => format!("master on {node}, mirrored on {}", copies.join(", ")),
            Replication::Quorum => {
                format!("quorum, leader on {node}, members {}", copies.join(", "))
            }
        };
        let mut members = vec![node.clone()];
        members.extend(copies);
        out.push(c(
            Resource::Queue,
            q.name.clone(),
            detail,
            Op::DeclareQueue {
                def: q,
                node,
                members: if inv.cluster.replication == Replication::Quorum {
                    members
                } else {
                    Vec::new()
                },
            },
        ));
    }
    for b in defs.bindings {
        out.push(c(
            Resource::Binding,
            format!("{} -> {}", b.source, b.destination),
            format!("routing key {:?}", b.routing_key),
            Op::PutBinding(b),
        ));
    }
    out
}

fn tags_text(tags: &[String]) -> String {
    if tags.is_empty() {
        "no tags".into()
    } else {
        format!("tags {}", tags.join(","))
    }
}

/// Whether `password` is the one RabbitMQ stored as `hash` (salted SHA-256).
pub fn password_matches(hash: &str, algorithm: &str, password: &str) -> bool {
    if algorithm != "rabbit_password_hashing_sha256" {
        return false;
    }
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(hash) else {
        return false;
    };
    if raw.len() != 36 {
        return false;
    }
    let (salt, digest) = raw.split_at(4);
    Sha256::new()
        .chain_update(salt)
        .chain_update(password.as_bytes())
        .finalize()
        .as_slice()
        == digest
}

pub fn plan(inv: &Inventory, facts: &Result<ClusterFacts, Unreadable>) -> ClusterPlan {
    let all = desired(inv);
    let cf = match facts {
        Err(Unreadable(reason)) => {
            return ClusterPlan::Unknown {
                reason: reason.clone(),
                changes: all,
            }
        }
        Ok(cf) => cf,
    };
    let vhost = &inv.cluster.vhost;
    let mut changes = Vec::new();
    let mut blockers = Vec::new();
    let mut notes = Vec::new();
    let mut unchanged = 0;
    for mut ch in all {
        let verdict: Option<(Action, String)> = match &ch.op {
            Op::PutVhost(v) => {
                (!cf.vhosts.iter().any(|x| &x.name == v)).then(|| (Action::Create, String::new()))
            }
            Op::PutUser { name, tags } => match cf.users.iter().find(|u| &u.name == name) {
                None => Some((Action::Create, tags_text(tags))),
                Some(u) => {
                    let user = inv
                        .users
                        .iter()
                        .find(|x| &x.name == name)
                        .expect("from inventory");
                    let pw_ok = user
                        .password
                        .read()
                        .map(|p| {
                            password_matches(&u.password_hash, &u.hashing_algorithm, p.expose())
                        })
                        .unwrap_or(false);
                    let mut have = u.tags.clone();
                    have.sort();
                    let mut want = tags.clone();
                    want.sort();
                    let mut what = Vec::new();
                    if !pw_ok {
                        what.push("password (sensitive value) changed".to_string());
                    }
                    if have != want {
                        what.push(format!("{} -> {}", tags_text(&have), tags_text(&want)));
                    }
                    (!what.is_empty()).then(|| (Action::Update, what.join("; ")))
                }
            },
            Op::PutPermission(p) => match cf
                .permissions
                .iter()
                .find(|x| x.user == p.user && x.vhost == p.vhost)
            {
                None => Some((Action::Create, ch.detail.clone())),
                Some(x) if x.configure == p.configure && x.write == p.write && x.read == p.read => {
                    None
                }
                Some(x) => Some((
                    Action::Update,
                    format!(
                        "configure {:?} write {:?} read {:?} -> {}",
                        x.configure, x.write, x.read, ch.detail
                    ),
                )),
            },
            Op::PutPolicy(p) => match cf
                .policies
                .iter()
                .find(|x| x.name == p.name && &x.vhost == vhost)
            {
                None => Some((Action::Create, ch.detail.clone())),
                Some(x)
                    if x.pattern == p.pattern
                        && x.definition == p.definition
                        && x.priority == p.priority
                        && x.apply_to == p.apply_to =>
                {
                    None
                }
                Some(x) => Some((
                    Action::Update,
                    format!(
                        "{} -> {} becomes {}",
                        x.pattern,
                        serde_json::Value::Object(x.definition.clone()),
                        ch.detail
                    ),
                )),
            },
            Op::PutExchange(e) => match cf
                .exchanges
                .iter()
                .find(|x| x.name == e.name && &x.vhost == vhost)
            {
                None => Some((Action::Create, ch.detail.clone())),
                Some(x)
                    if x.kind == e.kind
                        && x.durable == e.durable
                        && x.auto_delete == e.auto_delete =>
                {
                    None
                }
                Some(x) => {
                    blockers.push(format!(
                        "exchange {} exists as {} (durable {}), the inventory wants {} (durable {}); RabbitMQ cannot change an exchange in place and warren does not delete it: delete it by hand, then rerun",
                        e.name, x.kind, x.durable, e.kind, e.durable
                    ));
                    None
                }
            },
            Op::DeclareQueue { def, node, members } => match cf
                .queues
                .iter()
                .find(|x| x.name == def.name && &x.vhost == vhost)
            {
                None => Some((Action::Create, ch.detail.clone())),
                Some(x) => {
                    let want_type = if members.is_empty() {
                        "classic"
                    } else {
                        "quorum"
                    };
                    if x.kind != want_type {
                        blockers.push(format!(
                            "queue {} is a {} queue, the inventory wants {want_type}; the type cannot change without deleting the queue and its {} messages: move them and delete it by hand, then rerun",
                            def.name, x.kind, x.messages.unwrap_or(0)
                        ));
                    } else if want_type == "quorum" {
                        for m in members.iter().filter(|m| !x.members.contains(m)) {
                            changes.push(member_change(&def.name, m, true));
                        }
                        for m in x.members.iter().filter(|m| !members.contains(m)) {
                            changes.push(member_change(&def.name, m, false));
                        }
                        if x.leader.as_deref() != Some(node.as_str()) {
                            notes.push(format!(
                                "queue {}: its leader is {}, not {node} (after a failover); apply does not move leaders",
                                def.name,
                                x.leader.as_deref().unwrap_or("unknown")
                            ));
                        }
                    } else {
                        if let Some(from) = x.node.as_deref().filter(|n| *n != node.as_str()) {
                            changes.push(ResourceChange {
                                resource: Resource::Master,
                                name: def.name.clone(),
                                action: Action::Update,
                                detail: format!("on {from} (after a failover or restart): move it back to {node}"),
                                op: Op::MoveMaster {
                                    queue: def.name.clone(),
                                    to: node.clone(),
                                    from: from.to_string(),
                                },
                            });
                        }
                        let site = inv
                            .sites
                            .iter()
                            .find(|s| s.queue == def.name)
                            .expect("site queue");
                        let unsynced: Vec<String> = site
                            .mirrors
                            .iter()
                            .map(|&m| inv.hosts[m].node_name())
                            .filter(|n| !x.synchronised_slave_nodes.contains(n))
                            .collect();
                        if !unsynced.is_empty()
                            && x.slave_nodes.iter().any(|n| unsynced.contains(n))
                        {
                            changes.push(ResourceChange {
                                resource: Resource::Sync,
                                name: def.name.clone(),
                                action: Action::Update,
                                detail: format!(
                                    "mirror on {} not synchronised: synchronise it",
                                    unsynced.join(", ")
                                ),
                                op: Op::SyncQueue {
                                    queue: def.name.clone(),
                                },
                            });
                        }
                    }
                    None
                }
            },
            Op::PutBinding(b) => {
                let exists = cf.bindings.iter().any(|x| {
                    x.source == b.source
                        && x.destination == b.destination
                        && x.destination_type == b.destination_type
                        && x.routing_key == b.routing_key
                        && &x.vhost == vhost
                });
                (!exists).then(|| (Action::Create, ch.detail.clone()))
            }
            Op::AddMember { .. }
            | Op::DeleteMember { .. }
            | Op::SyncQueue { .. }
            | Op::MoveMaster { .. }
            | Op::DeletePolicy { .. }
            | Op::DeleteQueue { .. }
            | Op::DeleteExchange { .. }
            | Op::DeleteGuest => None,
        };
        match verdict {
            Some((action, detail)) => {
                ch.action = action;
                ch.detail = detail;
                changes.push(ch);
            }
            None => unchanged += 1,
        }
    }
    // Member and sync changes were pushed as found; keep the fixed order of kinds.
    changes.sort_by_key(|c| order(&c.resource));
    // What an interrupted run of warren left goes first: it would undo the rest.
    let mut leftovers: Vec<ResourceChange> = Vec::new();
    for p in cf.policies.iter().filter(|p| &p.vhost == vhost) {
        let Some((_, by)) = OWN_POLICIES.iter().find(|(pre, _)| p.name.starts_with(pre)) else {
            continue;
        };
        let why = if p.name.starts_with(MOVE_POLICY_PREFIX) {
            ": it keeps the queue on one node without its mirror"
        } else {
            ""
        };
        leftovers.push(ResourceChange {
            resource: Resource::Policy,
            name: p.name.clone(),
            action: Action::Delete,
            detail: format!("left by {by} (pattern {}){why}", p.pattern),
            op: Op::DeletePolicy {
                name: p.name.clone(),
            },
        });
    }
    for q in cf.queues.iter().filter(|q| &q.vhost == vhost) {
        if let Some((_, by)) = OWN_QUEUES.iter().find(|(pre, _)| q.name.starts_with(pre)) {
            leftovers.push(ResourceChange {
                resource: Resource::Queue,
                name: q.name.clone(),
                action: Action::Delete,
                detail: format!("left by {by}"),
                op: Op::DeleteQueue {
                    name: q.name.clone(),
                },
            });
        }
    }
    if cf
        .exchanges
        .iter()
        .any(|e| &e.vhost == vhost && e.name == OWN_EXCHANGE)
    {
        leftovers.push(ResourceChange {
            resource: Resource::Exchange,
            name: OWN_EXCHANGE.into(),
            action: Action::Delete,
            detail: "left by an interrupted verify".into(),
            op: Op::DeleteExchange {
                name: OWN_EXCHANGE.into(),
            },
        });
    }
    changes.splice(0..0, leftovers);
    // RabbitMQ's default user goes once warren's own administrator is in place.
    let has_admin = inv
        .users
        .iter()
        .any(|u| u.tags.iter().any(|t| t == "administrator"));
    if has_admin && cf.users.iter().any(|u| u.name == "guest") {
        changes.push(ResourceChange {
            resource: Resource::User,
            name: "guest".into(),
            action: Action::Delete,
            detail: "RabbitMQ's default user, not in the inventory: the inventory's administrator replaces it".into(),
            op: Op::DeleteGuest,
        });
    }
    ClusterPlan::Known {
        changes,
        unchanged,
        blockers,
        notes,
    }
}

fn member_change(queue: &str, node: &str, add: bool) -> ResourceChange {
    ResourceChange {
        resource: Resource::Members,
        name: queue.to_string(),
        action: Action::Update,
        detail: format!("{} {node}", if add { "add" } else { "remove" }),
        op: if add {
            Op::AddMember {
                queue: queue.to_string(),
                node: node.to_string(),
            }
        } else {
            Op::DeleteMember {
                queue: queue.to_string(),
                node: node.to_string(),
            }
        },
    }
}

fn order(r: &Resource) -> u8 {
    match r {
        Resource::Vhost => 0,
        Resource::User => 1,
        Resource::Permission => 2,
        Resource::Policy => 3,
        Resource::Exchange => 4,
        Resource::Queue => 5,
        Resource::Binding => 6,
        Resource::Members => 7,
        Resource::Sync => 8,
        Resource::Master => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_check_matches_rabbitmq() {
        // salt 0x908DC60A, password "test12": RabbitMQ's documented example.
        assert!(password_matches(
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
            "rabbit_password_hashing_sha256",
            "test12"
        ));
        assert!(!password_matches(
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
            "rabbit_password_hashing_sha256",
            "test13"
        ));
    }
}
