//! Everything the inventory wants on a broker, as operations in the order they run:
//! the vhost, users (the links' own too), permissions, policies, exchanges, queues
//! (where their master and copies live), bindings, then the links.

use super::{Op, Resource, ResourceChange};
use crate::inventory::{Broker, Inventory, Replication};
use crate::plan::Action;
use crate::render::definitions::{self, ParameterDef};

/// Everything the inventory wants on broker `b`, as operations, in the order they
/// must run (users before permissions, policies before queues, queues before
/// bindings, links last).
pub(super) fn desired(inv: &Inventory, b: Broker) -> Vec<ResourceChange> {
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

pub(super) fn tags_text(tags: &[String]) -> String {
    if tags.is_empty() {
        "no tags".into()
    } else {
        format!("tags {}", tags.join(","))
    }
}

/// The (component, name) of every link the inventory wants on `b`.
pub(super) fn desired_links(inv: &Inventory, b: Broker) -> Vec<(&'static str, String)> {
    definitions::for_broker(inv, b)
        .parameters
        .into_iter()
        .map(|p| (p.component, p.name))
        .collect()
}
