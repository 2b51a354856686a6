//! `warren status [--json]`: nodes and queues as the cluster sees them now, read from
//! the management API of the first node that answers (the central node first).

use crate::cli::Outcome;
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
    pub consumers: u64,
}

#[derive(Serialize)]
pub struct Mirror {
    pub node: String,
    pub synchronised: bool,
}

/// Connects to the hosts in order (central first) until one's management API answers.
pub fn reach_api(inv: &Inventory) -> Result<(Box<dyn Transport>, u16, Credentials, String)> {
    let order = inv.central_first().into_iter().map(|i| &inv.hosts[i]);
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
            QueueStatus {
                name: q.name.clone(),
                site,
                kind: q.kind.clone(),
                master: q.master().map(str::to_string),
                mirrors,
                messages: q.messages.unwrap_or(0),
                consumers: q.consumers.unwrap_or(0),
            }
        })
        .collect();
    qs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Status {
        cluster: inv.cluster.name.clone(),
        via,
        nodes: ns,
        queues: qs,
    })
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
        "{:<22} {:<10} {:<8} {:<5} {:>9}  alarms",
        "node", "host", "state", "type", "uptime"
    );
    for n in &s.nodes {
        println!(
            "{:<22} {:<10} {} {:<5} {:>9}  {}",
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
            if n.alarms.is_empty() {
                "none".to_string()
            } else {
                paint(&n.alarms.join(","), false)
            }
        );
    }
    println!();
    println!(
        "{:<24} {:<8} {:<7} {:<16} {:>8} {:>9}  copies",
        "queue", "site", "type", "master", "messages", "consumers"
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
            "{:<24} {:<8} {:<7} {} {:>8} {:>9}  {}",
            q.name,
            q.site.as_deref().unwrap_or("-"),
            q.kind,
            paint(&format!("{:<16}", q.master.as_deref().unwrap_or("-")), home),
            q.messages,
            q.consumers,
            if copies.is_empty() {
                "none".to_string()
            } else {
                copies.join(", ")
            }
        );
    }
    Ok(Outcome::Success)
}
