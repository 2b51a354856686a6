//! A site's classic mirrored queue turned into a quorum queue of the same name
//! without losing a message: the names of its temporary queue and shovel, and its
//! steps described from where the cluster is now (an interrupted run resumes).

use super::{Op, Resource, ResourceChange};
use crate::facts::ClusterFacts;
use crate::inventory::Inventory;
use crate::plan::Action;
use crate::render::definitions::{self, QueueDef};

/// The temporary quorum queue of a migration: `warren.migrate.QUEUE`.
pub fn migration_queue(queue: &str) -> String {
    format!("warren.migrate.{queue}")
}

/// The dynamic shovel that drains a queue during a migration.
pub fn migration_shovel(queue: &str) -> String {
    format!("warren-migrate-{queue}")
}

pub(super) fn has_queue(cf: &ClusterFacts, vhost: &str, name: &str) -> bool {
    cf.queues.iter().any(|q| q.name == name && q.vhost == vhost)
}

/// The migration of a site's queue to quorum, its steps described from where the
/// cluster is now.
pub(super) fn migration(
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
