//! The checks from one reading of the cluster through its management API: alarms,
//! where the site queues live and that their copies are in sync, and the site
//! queues' policies.

use super::users::{site_users, users_as_declared};
use super::{Checks, APPLY};
use crate::facts::ClusterFacts;
use crate::inventory::{Inventory, Replication};
use crate::platform::Probe;
use std::time::Duration;

/// Alarms, queue placement, policies, users and permissions, from one reading of
/// the cluster.
pub(super) fn cluster_checks(inv: &Inventory, cf: &ClusterFacts) -> Checks {
    let mut c = Checks::default();
    for n in &cf.nodes {
        let host = host_of(inv, &n.name);
        let mut alarms = Vec::new();
        if n.mem_alarm {
            alarms.push("memory");
        }
        if n.disk_free_alarm {
            alarms.push("disk");
        }
        c.add(
            "alarms",
            &host,
            alarms.is_empty(),
            if alarms.is_empty() {
                "none".to_string()
            } else {
                format!("{} alarm: publishers are blocked", alarms.join(" and "))
            },
            Some("free memory or disk space on the host"),
        );
    }
    // Site queues: master on the site's node, copies present and synchronised.
    let problems = crate::apply::placement_problems(inv, &cf.queues);
    for s in inv.sites.iter().filter(|s| !s.linked()) {
        let site = &inv.hosts[s.host];
        let mine: Vec<&str> = problems
            .iter()
            .filter(|p| {
                p.text.starts_with(&format!("queue {} ", s.queue))
                    || p.text.starts_with(&format!("queue {}:", s.queue))
            })
            .map(|p| p.text.as_str())
            .collect();
        let copies = inv.copy_nodes(s);
        let hint = if mine.iter().any(|p| p.contains("not synchronised")) {
            format!(
                "synchronise it: rabbitmqctl sync_queue -p {} {} (or `warren apply`)",
                inv.cluster.vhost, s.queue
            )
        } else {
            APPLY.to_string()
        };
        c.add(
            "queue placement",
            &site.name,
            mine.is_empty(),
            if mine.is_empty() {
                let at = cf
                    .queues
                    .iter()
                    .find(|q| q.name == s.queue)
                    .and_then(|q| q.master().map(str::to_string))
                    .unwrap_or_default();
                match inv.cluster.replication {
                    Replication::Mirrored => format!(
                        "{} on {at}, copies on {} in sync",
                        s.queue,
                        copies.join(", ")
                    ),
                    Replication::Quorum => format!(
                        "{}: leader {at}, members {} and {} online",
                        s.queue,
                        site.node_name(),
                        copies.join(", ")
                    ),
                }
            } else {
                mine.join("; ")
            },
            Some(&hint),
        );
    }
    // Each site's user reaches nothing of the other sites, by the permissions
    // RabbitMQ holds for it (which may have been changed by hand).
    site_users(&mut c, inv, cf, crate::inventory::Broker::Cluster);
    users_as_declared(&mut c, inv, cf, crate::inventory::Broker::Cluster);
    c
}

fn host_of(inv: &Inventory, node: &str) -> String {
    inv.hosts
        .iter()
        .find(|h| h.node_name() == node)
        .map(|h| h.name.clone())
        .unwrap_or_else(|| node.to_string())
}

/// Each site queue's policy is warren's (mirrored replication). The queue's
/// statistics name it; where they do not (late after a change, or lost for good, as
/// 3.10 can after a partition), `rabbitmqctl list_queues` on the node warren reads
/// the cluster through has the last word.
pub(super) fn policies(c: &mut Checks, inv: &Inventory, cf: &ClusterFacts, t: &mut dyn Probe) {
    if inv.cluster.replication != Replication::Mirrored {
        return;
    }
    let want = |s: &crate::inventory::Site| {
        crate::render::definitions::policy_name(&inv.hosts[s.host].name)
    };
    let mut got: std::collections::BTreeMap<String, String> = cf
        .queues
        .iter()
        .filter(|q| q.vhost == inv.cluster.vhost)
        .filter_map(|q| Some((q.name.clone(), q.policy.clone()?)))
        .collect();
    let members: Vec<&crate::inventory::Site> = inv.sites.iter().filter(|s| !s.linked()).collect();
    if members.iter().any(|s| got.get(&s.queue) != Some(&want(s))) {
        let q = t.platform().read(crate::platform::Read::QueuePolicies {
            vhost: &inv.cluster.vhost,
        });
        if let Ok(out) = t.query(&q, Duration::from_secs(60)) {
            if out.ok() {
                got = out
                    .stdout
                    .lines()
                    .filter_map(|l| l.split_once('\t'))
                    .map(|(n, p)| (n.to_string(), p.trim().to_string()))
                    .filter(|(_, p)| !p.is_empty())
                    .collect();
            }
        }
    }
    for s in members {
        let have = got.get(&s.queue).map(String::as_str);
        c.add(
            "policy",
            &inv.hosts[s.host].name,
            have == Some(want(s).as_str()),
            format!("{} has policy {}", s.queue, have.unwrap_or("none")),
            Some(APPLY),
        );
    }
}
