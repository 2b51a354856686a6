//! A broker's resources as its management API reports them (vhosts, users,
//! permissions, policies, exchanges, queues, bindings, nodes, parameters, feature
//! flags), read through the central node or a linked site's; and the credentials
//! warren tries there.

use super::{ClusterFacts, HostFacts, NodeState, Unreadable};
use crate::inventory::{Inventory, Secret};
use crate::platform::Probe;
use crate::rabbitmq::api::{self, Credentials};
use anyhow::{bail, Result};

/// The credentials warren tries for the management API, in order.
pub fn credentials(inv: &Inventory) -> Vec<Credentials> {
    let mut out = Vec::new();
    for u in &inv.users {
        if u.tags.iter().any(|t| t == "administrator") {
            if let Ok(pw) = u.password.read() {
                out.push(Credentials {
                    user: u.name.clone(),
                    password: pw,
                });
            }
        }
    }
    out.push(Credentials {
        user: "guest".into(),
        password: Secret::new("guest".into()),
    });
    out
}

/// The management API port of host `i` and the inventory credentials it accepts now.
pub fn node_api(p: &mut dyn Probe, inv: &Inventory, i: usize) -> Result<(u16, Credentials)> {
    let h = &inv.hosts[i];
    let port = h.ports.management;
    match api::accepted(p, port, &credentials(inv))? {
        Some(c) => Ok((port, c)),
        None => bail!(
            "{}: the management API on port {port} accepts neither the inventory's administrator nor guest (from localhost); check the users, then rerun",
            h.name
        ),
    }
}

/// Reads everything warren manages in the cluster through `p`, the central host.
pub fn gather_cluster(p: &mut dyn Probe, port: u16, c: &Credentials) -> Result<ClusterFacts> {
    Ok(ClusterFacts {
        vhosts: api::get(p, port, c, "/api/vhosts")?,
        users: api::get(p, port, c, "/api/users")?,
        permissions: api::get(p, port, c, "/api/permissions")?,
        policies: api::get(p, port, c, "/api/policies")?,
        exchanges: api::get(p, port, c, "/api/exchanges")?,
        queues: api::get(p, port, c, "/api/queues")?,
        bindings: api::get(p, port, c, "/api/bindings")?,
        nodes: api::get(p, port, c, "/api/nodes")?,
        parameters: api::get(p, port, c, "/api/parameters")?,
        feature_flags: api::get(p, port, c, "/api/feature-flags")?,
    })
}

/// The cluster, read through the central node.
pub fn read_cluster(
    inv: &Inventory,
    hosts: &[HostFacts],
    conns: &mut [&mut dyn Probe],
) -> std::result::Result<ClusterFacts, Unreadable> {
    read_broker(inv.central_index(), hosts, conns)
}

/// The broker of host `ci` (the central node, or a linked site's), read through it.
pub fn read_broker(
    ci: usize,
    hosts: &[HostFacts],
    conns: &mut [&mut dyn Probe],
) -> std::result::Result<ClusterFacts, Unreadable> {
    let cf = &hosts[ci];
    match &cf.node.api {
        None if cf.node.state != NodeState::Running => Err(Unreadable(format!(
            "RabbitMQ on {} {}",
            cf.host,
            match cf.node.state {
                NodeState::Booting => "is still booting",
                NodeState::AppStopped => "runs with its rabbit application stopped",
                _ => "is not running",
            }
        ))),
        None => Err(Unreadable(format!(
            "the management API of {} does not answer yet (its plugin is enabled by this apply)",
            cf.host
        ))),
        Some(c) => gather_cluster(&mut *conns[ci], cf.api_port, c)
            .map_err(|e| Unreadable(format!("{e:#}"))),
    }
}
