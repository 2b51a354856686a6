//! The cluster part of the plan: vhost, users, permissions, policies, exchanges, queues
//! (with where their master and copies live) and bindings, compared with what the
//! central node's management API reports. Here: the operations, and each wanted
//! resource against the broker's; what the inventory wants, what warren left behind,
//! and a queue's migration to quorum each have a file.

mod desired;
mod leftovers;
mod migration;

pub use leftovers::MOVE_POLICY_PREFIX;
pub use migration::{migration_queue, migration_shovel};

use super::Action;
use crate::facts::{ClusterFacts, Unreadable};
use crate::inventory::{Broker, Inventory};
use crate::render::definitions::{
    BindingDef, ExchangeDef, ParameterDef, PermissionDef, PolicyDef, QueueDef,
};
use base64::Engine;
use desired::{desired, tags_text};
use migration::{has_queue, migration};
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
    /// A shovel or federation upstream; the link password goes into its URI when
    /// the step runs.
    PutParameter(ParameterDef),
    /// Remove a shovel or federation upstream of warren's the inventory no longer
    /// wants (or an interrupted verify left).
    DeleteParameter {
        component: String,
        name: String,
    },
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
    /// Remove a queue of warren's own a run or a former link left behind (verify's,
    /// a drill's, a federation link's); `if_empty`: RabbitMQ refuses if it holds
    /// messages.
    DeleteQueue {
        name: String,
        if_empty: bool,
    },
    /// Remove an exchange of warren's own a run or a former link left behind.
    DeleteExchange {
        name: String,
    },
    /// Remove RabbitMQ's default `guest` user once the inventory's administrator
    /// exists (last: warren may be reading the cluster as guest until then).
    /// Remove a user: RabbitMQ's default `guest`, or a link user whose link is gone.
    DeleteUser {
        name: String,
    },
    /// Turn a site's classic mirrored queue into a quorum queue of the same name
    /// without losing a message, from wherever an earlier run stopped: a temporary
    /// quorum queue takes the exchange's messages, the old queue is drained into it
    /// and deleted, the new queue is declared, takes the exchange's messages, and the
    /// temporary queue is drained into it and deleted; then the mirror policy goes.
    MigrateQueue {
        def: QueueDef,
        node: String,
        members: Vec<String>,
        exchange: String,
        routing_key: String,
        mirror_policy: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Vhost,
    User,
    Permission,
    Policy,
    Exchange,
    Queue,
    Binding,
    Shovel,
    Upstream,
    Members,
    Sync,
    Master,
    Migration,
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
            Resource::Shovel => "shovel",
            Resource::Upstream => "federation upstream",
            Resource::Members => "quorum member",
            Resource::Sync => "sync",
            Resource::Master => "master",
            Resource::Migration => "migration of queue",
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

/// The plan for broker `b` from its facts.
pub fn plan(inv: &Inventory, b: Broker, facts: &Result<ClusterFacts, Unreadable>) -> ClusterPlan {
    let all = desired(inv, b);
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
    let mut migrations: Vec<ResourceChange> = Vec::new();
    for mut ch in all {
        let verdict: Option<(Action, String)> = match &ch.op {
            Op::PutVhost(v) => {
                (!cf.vhosts.iter().any(|x| &x.name == v)).then(|| (Action::Create, String::new()))
            }
            Op::PutUser { name, tags } => match cf.users.iter().find(|u| &u.name == name) {
                None => Some((Action::Create, tags_text(tags))),
                Some(u) => {
                    let pw_ok = inv
                        .password_of(name)
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
                // A migration stopped between deleting the old queue and declaring
                // the new one: it goes on from there.
                None if has_queue(cf, vhost, &migration_queue(&def.name)) => {
                    migrations.push(migration(inv, cf, def, node, members));
                    None
                }
                None => Some((Action::Create, ch.detail.clone())),
                Some(x) => {
                    let want_type = if members.is_empty() {
                        "classic"
                    } else {
                        "quorum"
                    };
                    if x.kind == "classic" && want_type == "quorum" {
                        migrations.push(migration(inv, cf, def, node, members));
                    } else if x.kind != want_type {
                        blockers.push(format!(
                            "queue {} is a {} queue, the inventory wants {want_type}; the type cannot change without deleting the queue and its {} messages: move them and delete it by hand, then rerun",
                            def.name, x.kind, x.messages.unwrap_or(0)
                        ));
                    } else if want_type == "quorum" {
                        if has_queue(cf, vhost, &migration_queue(&def.name)) {
                            migrations.push(migration(inv, cf, def, node, members));
                        }
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
            Op::PutParameter(p) => {
                let want = inv
                    .sites
                    .get(p.site)
                    .and_then(|s| s.link_password.as_ref())
                    .and_then(|r| r.read_or_create_random().ok())
                    .map(|pw| serde_json::Value::Object(p.with_password(pw.expose())));
                match cf
                    .parameters
                    .iter()
                    .find(|x| x.component == p.component && x.name == p.name && &x.vhost == vhost)
                {
                    None => Some((Action::Create, ch.detail.clone())),
                    Some(x) if Some(&x.value) == want.as_ref() => None,
                    Some(_) => Some((Action::Update, format!("{} (it differs now)", ch.detail))),
                }
            }
            Op::DeleteParameter { .. } => None,
            Op::AddMember { .. }
            | Op::DeleteMember { .. }
            | Op::SyncQueue { .. }
            | Op::MoveMaster { .. }
            | Op::DeletePolicy { .. }
            | Op::DeleteQueue { .. }
            | Op::DeleteExchange { .. }
            | Op::MigrateQueue { .. }
            | Op::DeleteUser { .. } => None,
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
    if !migrations.is_empty() && !inv.cluster.plugins.iter().any(|p| p == "rabbitmq_shovel") {
        blockers.push(format!(
            "{} must become quorum queues, and warren moves their messages with a dynamic shovel: add \"rabbitmq_shovel\" to cluster.plugins in {} (enabling it restarts each node once, one at a time), then rerun",
            migrations.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
            inv.path.display()
        ));
    }
    changes.extend(migrations);
    // Member and sync changes were pushed as found; keep the fixed order of kinds.
    changes.sort_by_key(|c| order(&c.resource));
    // What an interrupted run of warren left goes first: it would undo the rest.
    changes.splice(0..0, leftovers::leftovers(inv, b, cf, &mut blockers));
    changes.extend(leftovers::stale_users(inv, b, cf));
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
        Resource::Queue | Resource::Migration => 5,
        Resource::Binding => 6,
        Resource::Shovel | Resource::Upstream => 7,
        Resource::Members => 8,
        Resource::Sync => 9,
        Resource::Master => 10,
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
