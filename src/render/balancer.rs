//! HAProxy's configuration, rendered: one frontend per protocol the cluster serves, each
//! leading to every cluster member, at the port its node listens on for it.

use super::{text_file, Effect, FileSpec, RenderedFile, Templates};
use crate::inventory::balancer::frontend_ports;
use crate::inventory::{Host, Inventory};
use crate::platform::balancer::CONFIG;
use anyhow::Result;
use serde::Serialize;

/// A server of a balancer backend: a cluster member and the port it serves on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Server {
    pub name: String,
    pub address: String,
    pub port: u16,
}

/// Each backend's servers, as (frontend, servers): every cluster member (a linked
/// site's broker is another broker, no member), at the port its node listens on for
/// that protocol: the TLS one where the host closes the plain listeners, so TLS goes
/// through the balancer end to end.
pub fn backends(inv: &Inventory) -> Vec<(&'static str, Vec<Server>)> {
    frontend_ports(inv)
        .into_iter()
        .map(|(what, _)| {
            let servers = inv
                .hosts
                .iter()
                .enumerate()
                .filter(|(i, _)| inv.is_member(*i))
                .map(|(_, h)| {
                    let tls_only = h.tls_only();
                    let port = match (what, tls_only) {
                        ("amqp", false) => h.ports.amqp,
                        ("amqp", true) => h.ports.amqps,
                        ("mqtt", false) => h.ports.mqtt,
                        ("mqtt", true) => h.ports.mqtts,
                        (_, false) => h.ports.management,
                        (_, true) => h.ports.management_tls,
                    };
                    Server {
                        name: h.name.clone(),
                        address: h.address.clone(),
                        port,
                    }
                })
                .collect();
            (what, servers)
        })
        .collect()
}

/// The haproxy.cfg of `host`, when it is the balancer's host.
pub(super) fn haproxy_cfg(
    inv: &Inventory,
    t: &Templates,
    ctx: &tera::Context,
    host: &Host,
) -> Result<Option<RenderedFile>> {
    let Some(lb) = inv
        .load_balancer
        .as_ref()
        .filter(|lb| inv.hosts[lb.host].name == host.name)
    else {
        return Ok(None);
    };
    let mut ctx = ctx.clone();
    let backends: Vec<BackendCtx> = backends(inv)
        .into_iter()
        .map(|(name, servers)| BackendCtx {
            name,
            port: match name {
                "amqp" => lb.ports.amqp,
                "mqtt" => lb.ports.mqtt,
                _ => lb.ports.management,
            },
            servers,
        })
        .collect();
    ctx.insert("backends", &backends);
    ctx.insert("stats_port", &lb.ports.stats);
    Ok(Some(text_file(
        t,
        &ctx,
        FileSpec {
            path: CONFIG.into(),
            template: "linux/haproxy.cfg.tera",
            owner: Some("root"),
            mode: Some(0o644),
            effect: Effect::ReloadBalancer,
        },
        false,
    )?))
}

/// One HAProxy frontend and the cluster's nodes behind it.
#[derive(Serialize)]
struct BackendCtx {
    /// "amqp", "mqtt" or "management".
    name: &'static str,
    /// The port HAProxy listens on.
    port: u16,
    servers: Vec<Server>,
}
