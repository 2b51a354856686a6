//! Nodes into and out of the cluster: a join, with the name and port checks between
//! the joining host and the seed, and a departure.

use super::{Ctx, Executor, WEIGHT_JOIN};
use crate::facts;
use crate::inventory::{Host, JoinMethod};
use crate::platform::{Probe, Transport};
use anyhow::{bail, Result};
use std::time::Duration;

/// How many times a join is tried in all.
const JOIN_ATTEMPTS: u32 = 3;
/// The pause before a join is tried again.
const JOIN_PAUSE: Duration = Duration::from_secs(3);

impl<'a> Ctx<'a> {
    /// Host `i`'s node's membership and the messages in its own queues, from the
    /// node's own lists: its management API when it answers (no Erlang VM to start),
    /// else one `rabbitmqctl eval`.
    fn membership(
        &self,
        i: usize,
        t: &mut dyn Transport,
    ) -> Result<(facts::Membership, Option<u64>)> {
        let h = &self.inv.hosts[i];
        let creds = facts::credentials(self.inv);
        let port = h.ports.management;
        Ok(
            match facts::api_membership(t, port, &creds, &h.node_name()) {
                Some((m, c)) => {
                    let n = facts::api_local_messages(t, port, &c, &h.node_name());
                    (m, n)
                }
                None => {
                    let (m, n) = facts::node_state(t, h)?;
                    (m, Some(n))
                }
            },
        )
    }

    /// Whether host `i`'s node holds nothing now: in no cluster, no message in its
    /// queues. Read right before its database is deleted.
    pub(super) fn holds_nothing(&self, i: usize, t: &mut dyn Transport) -> Result<bool> {
        let (m, messages) = self.membership(i, t)?;
        let messages = match messages {
            Some(n) => n,
            None => facts::local_messages(t, &self.inv.hosts[i])?,
        };
        Ok(m.nodes.iter().all(|n| *n == m.node) && messages == 0)
    }

    /// Joins host `i` to the central node, deciding membership from the node's own
    /// lists right before. The central side of the checks (that the central host
    /// resolves this host's name) is `resolves`, done before. `booted_blank`: the
    /// node was just booted with an empty database, for peer discovery to join it.
    pub(super) fn join(&self, i: usize, t: &mut dyn Transport, booted_blank: bool) -> Result<()> {
        let inv = self.inv;
        let h = &inv.hosts[i];
        let central = inv.central();
        let seed = central.node_name();
        let host = h.name.as_str();
        let (m, messages) = self.membership(i, t)?;
        if m.nodes.contains(&seed) {
            if booted_blank {
                self.report.lock().unwrap().joined.push(host.to_string());
                self.did(
                    host,
                    format!("joined {seed}'s cluster at its first boot (peer discovery)"),
                    WEIGHT_JOIN,
                );
            } else {
                self.did(
                    host,
                    format!("already a member of {seed}'s cluster"),
                    WEIGHT_JOIN,
                );
            }
            return Ok(());
        }
        // A node booted blank a moment ago holds nothing warren must keep, even where
        // peer discovery put it elsewhere.
        if !self.force && !booted_blank {
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
        let ram = h.node_type == crate::inventory::NodeType::Ram;
        let how = if by_config { " by peer discovery" } else { "" };
        let creds = facts::credentials(inv);
        // Nodes joining at once now and then fail in the reset, the join or the
        // start after it (RabbitMQ's own parallel test clusters do: rabbitmq-server
        // pull request 15502 added retries to rabbit_mnesia for it), and peer
        // discovery may leave a node standalone. A joining node holds nothing once
        // reset, so those steps are tried again from the reset. A failed first
        // `stop_app` is not: the CLI cannot reach the node, which a try won't change.
        crate::platform::stop_app_to_join(t)?;
        let mut retries = 0;
        loop {
            let r = crate::platform::join_steps(t, &seed, ram, by_config).and_then(|_| {
                let after =
                    match facts::api_membership(t, h.ports.management, &creds, &h.node_name()) {
                        Some((m, _)) if m.nodes.contains(&seed) => m,
                        _ => facts::node_state(t, h)?.0,
                    };
                if after.nodes.contains(&seed) {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "{host}: {} did not join {seed}{how}: its cluster_status lists {}; check its log in the RabbitMQ log folder",
                        h.node_name(),
                        after.nodes.join(", ")
                    ))
                }
            });
            match r {
                Ok(()) => break,
                Err(e) if retries + 1 < JOIN_ATTEMPTS => {
                    retries += 1;
                    let reason = format!("{e:#}").replace('\n', " ");
                    self.progress.done_weighted(
                        host,
                        &format!(
                            "joining {seed} failed ({reason}); the node holds nothing once reset, so it is reset and joined again (attempt {} of {})",
                            retries + 1,
                            JOIN_ATTEMPTS
                        ),
                        0,
                    );
                    std::thread::sleep(JOIN_PAUSE);
                    crate::platform::stop_app_again(t);
                }
                Err(e) => return crate::platform::explained(t, Err(e)),
            }
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
        let i = self
            .inv
            .hosts
            .iter()
            .position(|h| h.name == host)
            .expect("plan host");
        self.join_after(i, None)
    }

    /// A fresh node's whole part, one host alone: the central host's side of the
    /// checks, its host steps (`Ctx::fresh_node`: booted blank where it can), and its
    /// join. The seed runs already.
    pub fn fresh(&mut self, i: usize, hp: &crate::plan::HostPlan) -> Result<()> {
        self.join_after(i, Some(hp))
    }

    /// The central host's side of the checks, then (for a fresh node) its host
    /// steps, then its join.
    fn join_after(&mut self, i: usize, fresh: Option<&crate::plan::HostPlan>) -> Result<()> {
        let inv = self.inv;
        let ci = inv.central_index();
        resolves(&mut *self.conns[ci], inv.central(), &inv.hosts[i])?;
        let ctx = Ctx {
            inv: self.inv,
            progress: self.progress,
            force: self.force,
            report: &self.report,
        };
        let t = &mut *self.conns[i];
        let blank = match fresh {
            Some(hp) => ctx.fresh_node(i, t, hp, &|| Ok(()))?,
            None => false,
        };
        ctx.join(i, t, blank)
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
