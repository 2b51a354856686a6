//! What warren left on a broker and no longer wants: what an interrupted run made
//! for itself (policies, queues, verify's exchange), what a former federation link
//! left, links, policies and users the inventory no longer has.

use super::desired::{desired, desired_links};
use super::{migration_shovel, Op, Resource, ResourceChange};
use crate::facts::ClusterFacts;
use crate::inventory::{Broker, Inventory, Link};
use crate::plan::Action;
use crate::render::definitions;

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

/// The components of the runtime parameters warren manages.
const LINK_COMPONENTS: [&str; 2] = ["shovel", "federation-upstream"];

/// What warren left on broker `b` and no longer wants there, to delete before
/// anything else (it would undo the rest): what an interrupted run made for itself, a
/// former federation link's upstream queue and exchange, links and mirror and
/// federation policies the inventory no longer has. A leftover that holds messages
/// is a blocker instead.
pub(super) fn leftovers(
    inv: &Inventory,
    b: Broker,
    cf: &ClusterFacts,
    blockers: &mut Vec<String>,
) -> Vec<ResourceChange> {
    let vhost = &inv.cluster.vhost;
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
    leftovers
}

/// Users of warren's that broker `b` no longer needs: RabbitMQ's default `guest`
/// once the inventory's administrator is in place, and link users no link logs in as.
pub(super) fn stale_users(inv: &Inventory, b: Broker, cf: &ClusterFacts) -> Vec<ResourceChange> {
    let mut changes = Vec::new();
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
    changes
}
