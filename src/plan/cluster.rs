//! The cluster part of the plan: vhost, users, permissions, policies, exchanges, queues
//! (with where their master and copies live) and bindings, compared with what the
//! central node's management API reports.

use super::Action;
use crate::facts::{ClusterFacts, Unreadable};
use crate::inventory::{Broker, Inventory, Link, Replication};
use crate::render::definitions::{
    self, BindingDef, ExchangeDef, ParameterDef, PermissionDef, PolicyDef, QueueDef,
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

/// The temporary quorum queue of a migration: `warren.migrate.QUEUE`.
pub fn migration_queue(queue: &str) -> String {
    format!("warren.migrate.{queue}")
}

/// The dynamic shovel that drains a queue during a migration.
pub fn migration_shovel(queue: &str) -> String {
    format!("warren-migrate-{queue}")
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
const OWN_QUEUES: [(&str, &str); 3] = [
    ("warren.verify.", "an interrupted verify"),
    (
        "federation: warren.verify.",
        "an interrupted verify (the upstream queue of its federation link)",
    ),
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

/// Everything the inventory wants on broker `b`, as operations, in the order they
/// must run (users before permissions, policies before queues, queues before
/// bindings, links last).
fn desired(inv: &Inventory, b: Broker) -> Vec<ResourceChange> {
    let defs = definitions::for_broker(inv, b);
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
    for u in inv.users_on(b) {
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
    for (name, _) in &defs.link_users {
        out.push(c(
            Resource::User,
            name.clone(),
            "the link's own user, no tags".into(),
            Op::PutUser {
                name: name.clone(),
                tags: Vec::new(),
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
    for q in defs.queues {
        let s = inv
            .sites
            .iter()
            .find(|s| s.queue == q.name)
            .expect("every queue is a site's");
        if s.linked() {
            // A linked site's queue: on its own broker, or the central node's copy
            // that receives its messages. One node, no copies.
            let node = inv.hosts[inv.broker_host(b)].node_name();
            out.push(c(
                Resource::Queue,
                q.name.clone(),
                match b {
                    Broker::Cluster => format!("classic, on {node}, fed by the site's {}", s.link),
                    Broker::Site(_) => format!("classic, on {node}, emptied by its shovel"),
                },
                Op::DeclareQueue {
                    def: q,
                    node,
                    members: Vec::new(),
                },
            ));
            continue;
        }
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
    for p in defs.parameters {
        let (resource, detail) = parameter_text(&p);
        out.push(c(resource, p.name.clone(), detail, Op::PutParameter(p)));
    }
    out
}

/// How a shovel or upstream reads in the plan (its password masked).
fn parameter_text(p: &ParameterDef) -> (Resource, String) {
    let v = |k: &str| p.value.get(k).and_then(|x| x.as_str()).unwrap_or("");
    if p.component == "shovel" {
        (
            Resource::Shovel,
            format!(
                "queue {} -> {} queue {}, ack-mode {}",
                v("src-queue"),
                v("dest-uri"),
                v("dest-queue"),
                v("ack-mode")
            ),
        )
    } else {
        (
            Resource::Upstream,
            format!("from {}, ack-mode {}", v("uri"), v("ack-mode")),
        )
    }
}

/// The components of the runtime parameters warren manages.
const LINK_COMPONENTS: [&str; 2] = ["shovel", "federation-upstream"];

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
                    if_empty: false,
                },
            });
        }
    }
    for e in cf.exchanges.iter().filter(|e| {
        &e.vhost == vhost
            && (e.name == OWN_EXCHANGE
                || e.name.starts_with(&format!("{OWN_EXCHANGE}."))
                || e.name.starts_with(&format!("federation: {OWN_EXCHANGE}.")))
    }) {
        leftovers.push(ResourceChange {
            resource: Resource::Exchange,
            name: e.name.clone(),
            action: Action::Delete,
            detail: "left by an interrupted verify".into(),
            op: Op::DeleteExchange {
                name: e.name.clone(),
            },
        });
    }
    // What a former federation link of this site left on its broker: warren's
    // upstreams keep their queue and exchange here when the link stops
    // (`resource-cleanup-mode` "never", so that they buffer through central's
    // restarts), so they outlive a link the inventory no longer wants. The queue
    // goes only once empty: what it holds was never carried to central.
    if let Broker::Site(si) = b {
        let site = &inv.sites[si];
        let prefix = format!("federation: {} -> ", site.exchange);
        if site.link != Link::Federation {
            // The exchange first: it feeds the queue.
            for e in cf
                .exchanges
                .iter()
                .filter(|e| &e.vhost == vhost && e.name.starts_with(&prefix))
            {
                leftovers.push(ResourceChange {
                    resource: Resource::Exchange,
                    name: e.name.clone(),
                    action: Action::Delete,
                    detail:
                        "the upstream exchange of a federation link the inventory no longer has"
                            .into(),
                    op: Op::DeleteExchange {
                        name: e.name.clone(),
                    },
                });
            }
            for q in cf
                .queues
                .iter()
                .filter(|q| &q.vhost == vhost && q.name.starts_with(&prefix))
            {
                match q.messages.unwrap_or(0) {
                    0 => leftovers.push(ResourceChange {
                        resource: Resource::Queue,
                        name: q.name.clone(),
                        action: Action::Delete,
                        detail: "the upstream queue of a federation link the inventory no longer has, empty".into(),
                        op: Op::DeleteQueue {
                            name: q.name.clone(),
                            if_empty: true,
                        },
                    }),
                    n => blockers.push(format!(
                        "queue '{}' on {} holds {n} messages a former federation link never carried to central, and warren would delete it: consume or move them (e.g. a shovel into '{}'), or delete the queue to drop them, then rerun",
                        q.name, inv.hosts[site.host].name, site.queue
                    )),
                }
            }
        }
    }
    // Links of warren's the inventory no longer wants on this broker, and those an
    // interrupted verify left: a shovel left running would keep moving messages.
    let wanted: Vec<(&str, String)> = desired_links(inv, b);
    for x in cf.parameters.iter().filter(|x| {
        &x.vhost == vhost
            && LINK_COMPONENTS.contains(&x.component.as_str())
            && x.name.starts_with("warren-")
            && !x.name.starts_with(&migration_shovel(""))
            && !wanted
                .iter()
                .any(|(c, n)| *c == x.component && *n == x.name)
    }) {
        let resource = if x.component == "shovel" {
            Resource::Shovel
        } else {
            Resource::Upstream
        };
        leftovers.push(ResourceChange {
            resource,
            name: x.name.clone(),
            action: Action::Delete,
            detail: if x.name.starts_with("warren-verify-") {
                "left by an interrupted verify".into()
            } else {
                "warren's, and the inventory no longer links this site this way".into()
            },
            op: Op::DeleteParameter {
                component: x.component.clone(),
                name: x.name.clone(),
            },
        });
    }
    // Mirror policies of warren's the inventory no longer wants (quorum queues need
    // none), once no classic queue of the site is left for them to mirror.
    let desired_policies: Vec<String> = desired(inv, b)
        .iter()
        .filter_map(|c| match &c.op {
            Op::PutPolicy(p) => Some(p.name.clone()),
            _ => None,
        })
        .collect();
    for p in cf.policies.iter().filter(|p| {
        &p.vhost == vhost
            && p.name.starts_with(&definitions::policy_name(""))
            && !desired_policies.contains(&p.name)
    }) {
        let host = &p.name[definitions::policy_name("").len()..];
        let classic_left = inv
            .sites
            .iter()
            .filter(|s| inv.hosts[s.host].name == host)
            .any(|s| {
                cf.queues
                    .iter()
                    .any(|q| q.name == s.queue && &q.vhost == vhost && q.kind == "classic")
            });
        if !classic_left {
            leftovers.push(ResourceChange {
                resource: Resource::Policy,
                name: p.name.clone(),
                action: Action::Delete,
                detail: "warren's mirror policy, and the site's queue is no longer mirrored".into(),
                op: Op::DeletePolicy {
                    name: p.name.clone(),
                },
            });
        }
    }
    // Federation policies of warren's whose site is no longer federated: left, each
    // would federate the exchange again from an upstream that is gone.
    for p in cf.policies.iter().filter(|p| {
        &p.vhost == vhost
            && p.name.starts_with(&definitions::federation_policy_name(""))
            && !desired_policies.contains(&p.name)
    }) {
        leftovers.push(ResourceChange {
            resource: Resource::Policy,
            name: p.name.clone(),
            action: Action::Delete,
            detail: "warren's, and the inventory no longer federates this site".into(),
            op: Op::DeletePolicy {
                name: p.name.clone(),
            },
        });
    }
    // A leftover link goes before the queue it fills.
    leftovers.sort_by_key(|c| !matches!(c.resource, Resource::Shovel | Resource::Upstream));
    changes.splice(0..0, leftovers);
    // RabbitMQ's default user goes once warren's own administrator is in place.
    let has_admin = inv
        .users_on(b)
        .any(|u| u.tags.iter().any(|t| t == "administrator"));
    if has_admin && cf.users.iter().any(|u| u.name == "guest") {
        changes.push(ResourceChange {
            resource: Resource::User,
            name: "guest".into(),
            action: Action::Delete,
            detail: "RabbitMQ's default user, not in the inventory: the inventory's administrator replaces it".into(),
            op: Op::DeleteUser {
                name: "guest".into(),
            },
        });
    }
    // Link users of warren's this broker no longer needs (a site linked another way,
    // or no longer linked): each holds a password and permissions nothing uses.
    let link_users: Vec<String> = definitions::for_broker(inv, b)
        .link_users
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for u in cf.users.iter().filter(|u| {
        u.name.starts_with(&crate::inventory::link_user(""))
            && !link_users.contains(&u.name)
            && !inv.users_on(b).any(|x| x.name == u.name)
    }) {
        changes.push(ResourceChange {
            resource: Resource::User,
            name: u.name.clone(),
            action: Action::Delete,
            detail: "warren's link user, and no link of the inventory logs in as it here".into(),
            op: Op::DeleteUser {
                name: u.name.clone(),
            },
        });
    }
    ClusterPlan::Known {
        changes,
        unchanged,
        blockers,
        notes,
    }
}

/// The (component, name) of every link the inventory wants on `b`.
fn desired_links(inv: &Inventory, b: Broker) -> Vec<(&'static str, String)> {
    definitions::for_broker(inv, b)
        .parameters
        .into_iter()
        .map(|p| (p.component, p.name))
        .collect()
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

fn has_queue(cf: &ClusterFacts, vhost: &str, name: &str) -> bool {
    cf.queues.iter().any(|q| q.name == name && q.vhost == vhost)
}

/// The migration of a site's queue to quorum, its steps described from where the
/// cluster is now.
fn migration(
    inv: &Inventory,
    cf: &ClusterFacts,
    def: &QueueDef,
    node: &str,
    members: &[String],
) -> ResourceChange {
    let vhost = &inv.cluster.vhost;
    let site = inv
        .sites
        .iter()
        .find(|s| s.queue == def.name)
        .expect("a site queue");
    let q = &def.name;
    let temp = migration_queue(q);
    let x = &site.exchange;
    let old = cf
        .queues
        .iter()
        .find(|c| &c.name == q && &c.vhost == vhost && c.kind == "classic");
    let mut steps = Vec::new();
    if let Some(old) = old {
        steps.push(format!(
            "quorum queue {temp} bound to {x} in {q}'s place, then {q} unbound"
        ));
        steps.push(format!(
            "{q}'s {} message(s) shovelled into it (on-confirm), {q} deleted once empty (its consumers are cancelled)",
            old.messages.unwrap_or(0)
        ));
    }
    let new_exists = cf
        .queues
        .iter()
        .any(|c| &c.name == q && &c.vhost == vhost && c.kind == "quorum");
    if !new_exists {
        steps.push(format!(
            "{q} declared as a quorum queue (leader on {node}, members {})",
            members.join(", ")
        ));
    }
    steps.push(format!(
        "{q} bound to {x}, {temp} unbound, drained into {q} and deleted; policy {} removed",
        definitions::policy_name(&inv.hosts[site.host].name)
    ));
    let detail = format!(
        "classic -> quorum without losing a message{}: {}",
        if old.is_some() {
            ""
        } else {
            " (resuming an interrupted run)"
        },
        steps
            .iter()
            .enumerate()
            .map(|(k, s)| format!("{}) {s}", k + 1))
            .collect::<Vec<_>>()
            .join("; ")
    );
    ResourceChange {
        resource: Resource::Migration,
        name: q.clone(),
        action: Action::Update,
        detail,
        op: Op::MigrateQueue {
            def: def.clone(),
            node: node.to_string(),
            members: members.to_vec(),
            exchange: x.clone(),
            routing_key: site.routing_key.clone(),
            mirror_policy: definitions::policy_name(&inv.hosts[site.host].name),
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
