//! `warren status [--json]`: nodes and queues as the cluster sees them now, read from
//! the management API of the first node that answers (the central node first).

use super::Outcome;
use crate::facts;
use crate::inventory::{self, Inventory};
use crate::platform::Transport;
use crate::rabbitmq::api::{self, Credentials};
use crate::ui::paint;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
pub struct Status {
    pub cluster: String,
    /// The node the cluster was read through.
    pub via: String,
    pub nodes: Vec<NodeStatus>,
    pub queues: Vec<QueueStatus>,
    /// The linked sites' shovels and federation links.
    pub links: Vec<LinkStatus>,
    /// HAProxy's view of the nodes, where the inventory has a `[load_balancer]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balancer: Option<BalancerStatus>,
}

#[derive(Serialize)]
pub struct BalancerStatus {
    pub host: String,
    /// The frontends clients connect to on the balancer's host.
    pub frontends: Vec<Frontend>,
    /// Each backend's servers as HAProxy's health checks see them.
    pub servers: Vec<crate::facts::balancer::ServerState>,
    /// Why HAProxy's statistics could not be read (HAProxy not running, the host
    /// unreachable); `servers` is then empty.
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct Frontend {
    pub name: String,
    pub port: u16,
}

#[derive(Serialize)]
pub struct LinkStatus {
    pub site: String,
    /// "shovel" or "federation".
    pub link: String,
    pub name: String,
    pub running: bool,
    /// RabbitMQ's state, with its reason when not running; or why it could not be read.
    pub state: String,
    /// Messages waiting on the site's broker for the link to carry them (the site's
    /// queue for a shovel, the link's upstream queue for federation).
    pub backlog: Option<u64>,
}

#[derive(Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub host: Option<String>,
    pub running: bool,
    #[serde(rename = "type")]
    pub node_type: String,
    pub uptime_s: Option<u64>,
    pub alarms: Vec<String>,
    pub mem_alarm: bool,
    pub disk_free_alarm: bool,
    /// Bytes; `None` where the node's statistics lack them (a node that is down).
    pub mem_used: Option<u64>,
    pub mem_limit: Option<u64>,
    pub disk_free: Option<u64>,
    pub disk_free_limit: Option<u64>,
}

#[derive(Serialize)]
pub struct QueueStatus {
    pub name: String,
    pub site: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub master: Option<String>,
    pub mirrors: Vec<Mirror>,
    pub messages: u64,
    pub messages_ready: u64,
    pub messages_unacknowledged: u64,
    pub consumers: u64,
    /// Messages published into the queue and delivered from it (to consumers and
    /// `basic.get`), per second over the management plugin's last sample (5 s).
    pub publish_rate: f64,
    pub deliver_rate: f64,
    /// The same as counts since the queue's statistics began (its master's start).
    pub published: u64,
    pub delivered: u64,
}

#[derive(Serialize)]
pub struct Mirror {
    pub node: String,
    pub synchronised: bool,
}

/// Connects to the hosts in order (central first) until one's management API answers.
pub fn reach_api(inv: &Inventory) -> Result<(Box<dyn Transport>, u16, Credentials, String)> {
    // A linked site's broker is not the cluster: it cannot speak for it.
    let order = inv
        .central_first()
        .into_iter()
        .filter(|&i| inv.is_member(i))
        .map(|i| &inv.hosts[i]);
    let mut tried = Vec::new();
    for h in order {
        let mut t = match facts::connect(h) {
            Ok(t) => t,
            Err(e) => {
                tried.push(format!("{e:#}"));
                continue;
            }
        };
        match api::accepted(&mut *t, h.ports.management, &facts::credentials(inv)) {
            Ok(Some(c)) => return Ok((t, h.ports.management, c, h.name.clone())),
            Ok(None) => tried.push(format!(
                "{}: the management API refuses the inventory's administrator and guest",
                h.name
            )),
            Err(e) => tried.push(format!("{e}")),
        }
    }
    bail!(
        "no node's management API answered:\n{}\nis RabbitMQ running, and has `warren apply` enabled the management plugin?",
        tried.join("\n")
    )
}

pub fn read(inv: &Inventory) -> Result<Status> {
    let (mut t, port, c, via) = reach_api(inv)?;
    let nodes: Vec<api::NodeInfo> = api::get(&mut *t, port, &c, "/api/nodes")?;
    let queues: Vec<api::QueueInfo> = api::get(&mut *t, port, &c, "/api/queues")?;
    let host_of = |node: &str| {
        inv.hosts
            .iter()
            .find(|h| h.node_name() == node)
            .map(|h| h.name.clone())
    };
    let mut ns: Vec<NodeStatus> = nodes
        .iter()
        .map(|n| NodeStatus {
            name: n.name.clone(),
            host: host_of(&n.name),
            running: n.running,
            node_type: n.node_type.clone(),
            uptime_s: n.uptime.map(|ms| ms / 1000),
            alarms: [(n.mem_alarm, "memory"), (n.disk_free_alarm, "disk")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, what)| what.to_string())
                .collect(),
            mem_alarm: n.mem_alarm,
            disk_free_alarm: n.disk_free_alarm,
            mem_used: n.mem_used,
            mem_limit: n.mem_limit,
            disk_free: n.disk_free,
            disk_free_limit: n.disk_free_limit,
        })
        .collect();
    ns.sort_by(|a, b| a.name.cmp(&b.name));
    let mut qs: Vec<QueueStatus> = queues
        .iter()
        .filter(|q| q.vhost == inv.cluster.vhost)
        .map(|q| {
            let site = inv
                .sites
                .iter()
                .find(|s| s.queue == q.name)
                .map(|s| inv.hosts[s.host].name.clone());
            let mirrors = if q.kind == "quorum" {
                q.members
                    .iter()
                    .filter(|m| Some(m.as_str()) != q.master())
                    .map(|m| Mirror {
                        node: m.clone(),
                        synchronised: q.online.contains(m),
                    })
                    .collect()
            } else {
                q.slave_nodes
                    .iter()
                    .map(|m| Mirror {
                        node: m.clone(),
                        synchronised: q.synchronised_slave_nodes.contains(m),
                    })
                    .collect()
            };
            let stats = q.message_stats.clone().unwrap_or_default();
            QueueStatus {
                name: q.name.clone(),
                site,
                kind: q.kind.clone(),
                master: q.master().map(str::to_string),
                mirrors,
                messages: q.messages.unwrap_or(0),
                messages_ready: q.messages_ready.unwrap_or(0),
                messages_unacknowledged: q.messages_unacknowledged.unwrap_or(0),
                consumers: q.consumers.unwrap_or(0),
                publish_rate: stats.publish_details.rate,
                deliver_rate: stats.deliver_get_details.rate,
                published: stats.publish,
                delivered: stats.deliver_get,
            }
        })
        .collect();
    qs.sort_by(|a, b| a.name.cmp(&b.name));
    let balancer = balancer(inv, &via, &mut *t);
    Ok(Status {
        cluster: inv.cluster.name.clone(),
        via,
        nodes: ns,
        queues: qs,
        links: links(inv),
        balancer,
    })
}

/// HAProxy's statistics, read on the balancer's host: through `t`, the connection
/// to `via`, when that is the host (the central host, in most layouts).
fn balancer(inv: &Inventory, via: &str, t: &mut dyn Transport) -> Option<BalancerStatus> {
    let lb = inv.load_balancer.as_ref()?;
    let h = &inv.hosts[lb.host];
    let read = if h.name == via {
        crate::facts::balancer::stats(inv, t)
    } else {
        facts::connect(h)
            .map_err(|e| format!("{e:#}"))
            .and_then(|mut t| crate::facts::balancer::stats(inv, &mut *t))
    };
    let (servers, error) = match read {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    Some(BalancerStatus {
        host: h.name.clone(),
        frontends: crate::inventory::balancer::frontend_ports(inv)
            .into_iter()
            .map(|(name, port)| Frontend {
                name: name.to_string(),
                port,
            })
            .collect(),
        servers,
        error,
    })
}

/// Each linked site's link, read through the broker that runs it, and the site's
/// backlog through the site's own broker.
fn links(inv: &Inventory) -> Vec<LinkStatus> {
    let mut out = Vec::new();
    for b in inv.brokers() {
        let inventory::Broker::Site(si) = b else {
            continue;
        };
        let site = &inv.sites[si];
        let sh = &inv.hosts[site.host];
        let runner = crate::apply::link_runner(inv, si);
        let state = facts::connect(&inv.hosts[runner])
            .and_then(|mut t| crate::apply::link_state(inv, si, &mut *t));
        let backlog = facts::connect(sh).ok().and_then(|mut t| {
            let (port, c) = facts::node_api(&mut *t, inv, site.host).ok()?;
            let queues: Vec<api::QueueInfo> = api::get(&mut *t, port, &c, "/api/queues").ok()?;
            let upstream = format!("federation: {} ", site.exchange);
            Some(
                queues
                    .iter()
                    .filter(|q| q.vhost == inv.cluster.vhost)
                    .filter(|q| match site.link {
                        inventory::Link::Shovel => q.name == site.queue,
                        _ => q.name.starts_with(&upstream),
                    })
                    .map(|q| q.messages.unwrap_or(0))
                    .sum(),
            )
        });
        out.push(match state {
            Ok(s) => LinkStatus {
                site: sh.name.clone(),
                link: site.link.to_string(),
                name: s.name,
                running: s.running,
                state: s.text,
                backlog,
            },
            Err(e) => LinkStatus {
                site: sh.name.clone(),
                link: site.link.to_string(),
                name: inventory::link_name(&sh.name),
                running: false,
                state: format!("unreadable: {e:#}"),
                backlog,
            },
        });
    }
    out
}

pub fn run(path: &Path, json: bool) -> Result<Outcome> {
    let inv = inventory::load(path, inventory::Needs::Hosts)?;
    let s = read(&inv)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(Outcome::Success);
    }
    println!("cluster {} (read through {})", s.cluster, s.via);
    println!(
        "{:<22} {:<10} {:<8} {:<5} {:>9} {:>13} {:>13}  alarms",
        "node", "host", "state", "type", "uptime", "memory/limit", "disk/limit"
    );
    for n in &s.nodes {
        println!(
            "{:<22} {:<10} {} {:<5} {:>9} {} {}  {}",
            n.name,
            n.host.as_deref().unwrap_or("-"),
            paint(
                &format!("{:<8}", if n.running { "running" } else { "DOWN" }),
                n.running
            ),
            n.node_type,
            n.uptime_s
                .map(|u| format!("{u}s"))
                .unwrap_or_else(|| "-".into()),
            paint(
                &format!("{:>13}", of_limit(n.mem_used, n.mem_limit)),
                !n.mem_alarm
            ),
            paint(
                &format!("{:>13}", of_limit(n.disk_free, n.disk_free_limit)),
                !n.disk_free_alarm
            ),
            if n.alarms.is_empty() {
                "none".to_string()
            } else {
                paint(&n.alarms.join(","), false)
            }
        );
    }
    println!();
    println!(
        "{:<24} {:<8} {:<7} {:<16} {:>8} {:>7} {:>7} {:>9} {:>9} {:>9}  copies",
        "queue",
        "site",
        "type",
        "master",
        "messages",
        "ready",
        "unacked",
        "publish/s",
        "deliver/s",
        "consumers"
    );
    for q in &s.queues {
        let copies: Vec<String> = q
            .mirrors
            .iter()
            .map(|m| {
                if m.synchronised {
                    paint(&m.node, true)
                } else {
                    paint(&format!("{} (NOT synchronised)", m.node), false)
                }
            })
            .collect();
        // A site queue's master belongs on its site's node.
        let home = match (&q.site, &q.master) {
            (Some(site), Some(m)) => inv.host(site).is_some_and(|h| &h.node_name() == m),
            (None, m) => m.is_some(),
            _ => false,
        };
        println!(
            "{:<24} {:<8} {:<7} {} {:>8} {:>7} {:>7} {:>9.1} {:>9.1} {:>9}  {}",
            q.name,
            q.site.as_deref().unwrap_or("-"),
            q.kind,
            paint(&format!("{:<16}", q.master.as_deref().unwrap_or("-")), home),
            q.messages,
            q.messages_ready,
            q.messages_unacknowledged,
            q.publish_rate,
            q.deliver_rate,
            q.consumers,
            if copies.is_empty() {
                "none".to_string()
            } else {
                copies.join(", ")
            }
        );
    }
    if !s.links.is_empty() {
        println!();
        println!(
            "{:<10} {:<11} {:<18} {:>8}  state",
            "site", "link", "name", "backlog"
        );
        for l in &s.links {
            println!(
                "{:<10} {:<11} {:<18} {:>8}  {}",
                l.site,
                l.link,
                l.name,
                l.backlog
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
                paint(&l.state, l.running)
            );
        }
    }
    if let Some(b) = &s.balancer {
        let frontends: Vec<String> = b
            .frontends
            .iter()
            .map(|f| format!("{} :{}", f.name, f.port))
            .collect();
        println!();
        println!("balancer HAProxy on {}: {}", b.host, frontends.join(", "));
        match &b.error {
            Some(e) => println!("  {}", paint(e, false)),
            None => {
                println!(
                    "{:<12} {:<10} {:<10} {:>11}",
                    "backend", "host", "check", "connections"
                );
                for r in &b.servers {
                    println!(
                        "{:<12} {:<10} {} {:>11}",
                        r.backend,
                        r.server,
                        paint(&format!("{:<10}", r.status), r.up()),
                        r.sessions
                    );
                }
            }
        }
    }
    Ok(Outcome::Success)
}

/// "USED/LIMIT" in binary units, as an operator compares them at a glance.
fn of_limit(used: Option<u64>, limit: Option<u64>) -> String {
    match (used, limit) {
        (Some(u), Some(l)) => format!("{}/{}", human_bytes(u), human_bytes(l)),
        _ => "-".into(),
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v >= 10.0 {
        format!("{v:.0}{}", UNITS[unit])
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_at_a_glance() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(130 * 1024 * 1024), "130M");
        assert_eq!(human_bytes(1717986918), "1.6G");
        assert_eq!(of_limit(Some(50 << 20), Some(50 << 20)), "50M/50M");
        assert_eq!(of_limit(None, Some(1)), "-");
    }
}
