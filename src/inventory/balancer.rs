//! The load balancer as the inventory draws it: HAProxy on one Linux host of the
//! inventory, in front of the cluster's nodes, so that a client connects to one address
//! and reaches whichever node answers. Here: `[load_balancer]` checked, its frontends,
//! and what its backends speak. Its haproxy.cfg is rendered by `render::balancer`,
//! HAProxy read by `facts::balancer`, started or reloaded by `plan::balancer`.

use super::model::{BalancerPorts, Host, Inventory, LoadBalancer, Os};
use super::problem::Problems;
use super::raw::RawLoadBalancer;

/// `[load_balancer]`: a Linux host of the inventory, and ports of its own on it (the
/// host usually runs a RabbitMQ node too).
pub(super) fn load_balancer(
    p: &mut Problems,
    b: &RawLoadBalancer,
    hosts: &[Host],
) -> Option<LoadBalancer> {
    let Some(host) = hosts.iter().position(|h| h.name == b.host) else {
        p.add(
            "load_balancer.host",
            format!(
                "no host is named \"{}\"; name a Linux host of [[hosts]] ({})",
                b.host,
                hosts
                    .iter()
                    .filter(|h| h.os == Os::Linux)
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return None;
    };
    let h = &hosts[host];
    if h.os != Os::Linux {
        p.add(
            "load_balancer.host",
            format!(
                "{} is a Windows host, and warren runs HAProxy from Debian's package on Linux; name a Linux host",
                h.name
            ),
        );
    }
    let d = BalancerPorts::DEFAULT;
    let r = &b.ports;
    let ports = BalancerPorts {
        amqp: r.amqp.unwrap_or(d.amqp),
        mqtt: r.mqtt.unwrap_or(d.mqtt),
        management: r.management.unwrap_or(d.management),
        stats: r.stats.unwrap_or(d.stats),
    };
    let named = [
        ("amqp", ports.amqp),
        ("mqtt", ports.mqtt),
        ("management", ports.management),
        ("stats", ports.stats),
    ];
    let rabbit = [
        ("amqp", h.ports.amqp),
        ("management", h.ports.management),
        ("mqtt", h.ports.mqtt),
        ("dist", h.ports.dist),
        ("amqps", h.ports.amqps),
        ("management_tls", h.ports.management_tls),
        ("mqtts", h.ports.mqtts),
        ("prometheus", h.ports.prometheus),
        ("prometheus_tls", h.ports.prometheus_tls),
        ("epmd", 4369),
    ];
    for (i, (a, pa)) in named.iter().enumerate() {
        let key = format!("load_balancer.ports.{a}");
        if *pa == 0 {
            p.add(key, "port 0 is no port; choose another");
            continue;
        }
        if let Some((r, _)) = rabbit.iter().find(|(_, pr)| pr == pa) {
            p.add(
                key,
                format!(
                    "port {pa} is RabbitMQ's {r} port on {}, where HAProxy runs; choose another",
                    h.name
                ),
            );
            continue;
        }
        if let Some((b, _)) = named[i + 1..].iter().find(|(_, pb)| pb == pa) {
            p.add(
                format!("load_balancer.ports.{b}"),
                format!(
                    "port {pa} is also the balancer's {a} port; give each frontend its own port"
                ),
            );
        }
    }
    Some(LoadBalancer { host, ports })
}

/// The balancer's frontends, as (protocol name, port): AMQP always, MQTT and
/// management where the cluster runs their plugins.
pub fn frontend_ports(inv: &Inventory) -> Vec<(&'static str, u16)> {
    let Some(lb) = inv.load_balancer.as_ref() else {
        return Vec::new();
    };
    let has = |p: &str| inv.cluster.plugins.iter().any(|x| x == p);
    let mut out = vec![("amqp", lb.ports.amqp)];
    if has("rabbitmq_mqtt") {
        out.push(("mqtt", lb.ports.mqtt));
    }
    if has("rabbitmq_management") {
        out.push(("management", lb.ports.management));
    }
    out
}

/// What the balancer's backends speak: the members' listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Plain,
    /// Every member listens with TLS only: HAProxy passes TLS through.
    Tls,
    /// Some members with TLS only, some with plain listeners: one frontend leads to
    /// both, and no client can speak to every backend.
    Mixed,
}

/// What the cluster's members listen with, as the balancer's backends meet them.
pub fn wire(inv: &Inventory) -> Wire {
    let tls_only: Vec<bool> = inv
        .hosts
        .iter()
        .enumerate()
        .filter(|(i, _)| inv.is_member(*i))
        .map(|(_, h)| h.tls_only())
        .collect();
    match (tls_only.iter().all(|t| *t), tls_only.iter().any(|t| *t)) {
        (true, true) => Wire::Tls,
        (_, false) => Wire::Plain,
        _ => Wire::Mixed,
    }
}
