//! Nodes into and out of the cluster: a join, with the name and port checks between
//! the joining host and the seed, and a departure.

use super::{Ctx, Executor, WEIGHT_JOIN};
use crate::facts;
use crate::inventory::{Host, JoinMethod};
use crate::platform::{Probe, Transport};
use anyhow::{bail, Result};
use std::time::Duration;

impl<'a> Ctx<'a> {
    /// Joins host `i` to the central node, deciding membership from the node's own
    /// lists right before. The central side of the checks (that the central host
    /// resolves this host's name) is `resolves`, done before.
    pub(super) fn join(&self, i: usize, t: &mut dyn Transport) -> Result<()> {
        let inv = self.inv;
        let h = &inv.hosts[i];
        let central = inv.central();
        let seed = central.node_name();
        let host = h.name.as_str();
        // Decided now, from the node's own lists: its management API when it
        // answers (no Erlang VM to start), else one `rabbitmqctl eval`.
        let creds = facts::credentials(inv);
        let port = h.ports.management;
        let (m, messages) = match facts::api_membership(t, port, &creds, &h.node_name()) {
            Some((m, c)) => {
                let n = facts::api_local_messages(t, port, &c, &h.node_name());
                (m, n)
            }
            None => {
                let (m, n) = facts::node_state(t, h)?;
                (m, Some(n))
            }
        };
        if m.nodes.contains(&seed) {
            self.did(
                host,
                format!("already a member of {seed}'s cluster"),
                WEIGHT_JOIN,
            );
            return Ok(());
        }
        if !self.force {
            let messages = match messages {
                Some(n) => n,
                None => facts::local_messages(t, h)?,
            };
            if let Some(why) = crate::plan::reset_refusal(&m, messages) {
                bail!("{}: {why}", h.name);
            }
        }
        resolves(t, h, central)?;
        reaches(t, h, central)?;
        self.progress.host(host, &format!("joining {seed}"));
        let by_config = inv.cluster.join == JoinMethod::Config;
        let mut retries = 0;
        crate::platform::join(
            t,
            &seed,
            h.node_type == crate::inventory::NodeType::Ram,
            by_config,
            &mut |attempt, e| {
                retries = attempt;
                let reason = format!("{e:#}").replace('\n', " ");
                self.progress.done_weighted(
                    host,
                    &format!(
                        "joining {seed} failed ({reason}); the node holds nothing once reset, so it is reset and joined again (attempt {} of {})",
                        attempt + 1,
                        crate::platform::JOIN_ATTEMPTS
                    ),
                    0,
                );
            },
        )?;
        let after = match facts::api_membership(t, port, &creds, &h.node_name()) {
            Some((m, _)) if m.nodes.contains(&seed) => m,
            _ => facts::node_state(t, h)?.0,
        };
        if !after.nodes.contains(&seed) {
            bail!(
                "{}: {} did not join {seed}{}: its cluster_status lists {}; check its log in the RabbitMQ log folder",
                host,
                h.node_name(),
                if by_config { " by peer discovery" } else { "" },
                after.nodes.join(", ")
            );
        }
        self.report.lock().unwrap().joined.push(host.to_string());
        let tries = match retries {
            0 => String::new(),
            n => format!(" (on attempt {})", n + 1),
        };
        self.did(host, format!("joined {seed}'s cluster{tries}"), WEIGHT_JOIN);
        Ok(())
    }
}

/// On host `who` (connection `t`), the name of `target` resolves to the inventory's
/// address: Erlang distribution reaches nodes by name.
pub(super) fn resolves(t: &mut dyn Probe, who: &Host, target: &Host) -> Result<()> {
    let q = t.platform().resolve(&target.name);
    let out = t.query(&q, Duration::from_secs(60))?;
    let addrs: Vec<&str> = out.stdout.split_whitespace().collect();
    if addrs.is_empty() {
        bail!(
            "{}: the name {} does not resolve there, so node {} cannot be reached; set hosts_file = true in the inventory or add it to DNS, then rerun",
            who.name, target.name, target.node_name()
        );
    }
    if target.address.parse::<std::net::IpAddr>().is_ok()
        && !addrs.contains(&target.address.as_str())
    {
        bail!(
            "{}: the name {} resolves to {} there, but the inventory says {}; names must resolve the same way everywhere: fix DNS or the hosts file, then rerun",
            who.name, target.name, addrs.join(", "), target.address
        );
    }
    Ok(())
}

/// The joining host `h` reaches the seed's epmd and distribution port.
fn reaches(t: &mut dyn Probe, h: &Host, c: &Host) -> Result<()> {
    let ports = [4369, c.ports.dist];
    let targets: Vec<(String, u16)> = ports.iter().map(|&p| (c.address.clone(), p)).collect();
    let q = t.platform().probe_ports(&targets);
    let out = t.query(&q, Duration::from_secs(60))?;
    for (k, port) in ports.iter().enumerate() {
        if !out.stdout.lines().any(|l| l.trim() == format!("open {k}")) {
            bail!(
                "{}: cannot reach {} port {port} ({}) on {}; open it in the firewall between the hosts, then rerun",
                h.name,
                if *port == 4369 { "epmd" } else { "Erlang distribution" },
                c.name,
                c.address
            );
        }
    }
    Ok(())
}

impl<'a> Executor<'a> {
    /// Joins `host` to the central node: the central host's side of the checks,
    /// then the join.
    pub fn join(&mut self, host: &str) -> Result<()> {
        let inv = self.inv;
        let i = inv
            .hosts
            .iter()
            .position(|h| h.name == host)
            .expect("plan host");
        let ci = inv.central_index();
        resolves(&mut *self.conns[ci], inv.central(), &inv.hosts[i])?;
        let ctx = Ctx {
            inv: self.inv,
            progress: self.progress,
            force: self.force,
            report: &self.report,
        };
        ctx.join(i, &mut *self.conns[i])
    }

    /// Removes a node the inventory no longer lists, as the plan says: masters moved
    /// to their synchronised copies, quorum members deleted, the node stopped (through
    /// the central node's CLI: warren has no way into that host any more) and forgotten.
    pub(super) fn depart(&mut self, d: &crate::plan::Departure) -> Result<()> {
        let (ci, port, creds) = self.api()?;
        let central = self.inv.hosts[ci].name.clone();
        for (queue, to) in &d.moves {
            self.move_master(ci, port, &creds, queue, to)?;
            self.did(&central, format!("moved the master of {queue} to {to}"));
        }
        for queue in &d.members {
            self.member(ci, queue, &d.node, false)?;
            self.did(
                &central,
                format!("deleted {}'s member of quorum queue {queue}", d.node),
            );
        }
        if d.running {
            self.progress
                .host(&central, &format!("stopping {}", d.node));
            crate::platform::remote_node(&mut *self.conns[ci], &d.node, "stop")?;
            self.did(&central, format!("stopped {}", d.node));
        }
        self.progress
            .host(&central, &format!("forgetting {}", d.node));
        crate::platform::forget(&mut *self.conns[ci], &d.node)?;
        self.did(
            &central,
            format!("forgot {} (its files stay on its host)", d.node),
        );
        Ok(())
    }
}
