//! `warren drill SITE`: a rehearsal of the failure the mirroring is for, on a queue of
//! warren's own placed exactly like the site's queue. N persistent messages are
//! published with publisher confirms through the site's node, RabbitMQ is stopped on
//! the site host, the copy on another node must take over with all N, the site host
//! is started again and its copy must be back in sync. Then the drill queue goes and
//! the site's own queue is put back on its site node.
//!
//! Every message is read back with RabbitMQ's `get` and requeued, so each count below
//! is a count of real messages, not of statistics.

use crate::apply::Executor;
use crate::inventory::{Host, Inventory, Replication, ServiceManager, Site};
use crate::platform::Transport;
use crate::rabbitmq::api::{self, enc, Credentials, QueueInfo};
use crate::ui::Progress;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::time::{Duration, Instant};

/// The drill queue's name for a site.
pub fn queue_name(site: &str) -> String {
    format!("warren.drill.{site}")
}

/// The policy that mirrors the drill queue like the site's queue.
pub fn policy_name(site: &str) -> String {
    format!("warren-drill-{site}")
}

/// How long each wait of the drill may take before it fails.
const WAIT: Duration = Duration::from_secs(120);

pub struct Drill<'a> {
    pub inv: &'a Inventory,
    pub conns: &'a mut [Box<dyn Transport>],
    pub site: &'a Site,
    /// The site host's service manager, as its facts showed it.
    pub manager: ServiceManager,
    pub messages: usize,
    pub progress: &'a Progress,
}

/// What the drill saw, for the summary.
#[derive(Debug, Default)]
pub struct Report {
    pub done: Vec<String>,
    /// The node that held the queue while the site was down.
    pub promoted: String,
    pub promoted_after: f64,
    pub resynced_after: f64,
}

/// A failed drill: the cause, what was done, and what the drill put back.
#[derive(Debug)]
pub struct Failed {
    pub error: anyhow::Error,
    pub done: Vec<String>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "the drill failed: {:#}", self.error)?;
        writeln!(f, "done:")?;
        for d in &self.done {
            writeln!(f, "  {d}")?;
        }
        write!(
            f,
            "`warren verify` shows where the cluster stands; `warren apply` puts the site's queue back, and the next drill removes a drill queue left behind"
        )
    }
}

impl std::error::Error for Failed {}

impl Drill<'_> {
    fn host(&self) -> &Host {
        &self.inv.hosts[self.site.host]
    }

    fn central(&self) -> usize {
        self.inv.central_index()
    }

    /// The nodes that hold a copy besides the site's node.
    fn copies(&self) -> Vec<String> {
        self.inv.copy_nodes(self.site)
    }

    fn mirrored(&self) -> bool {
        self.inv.cluster.replication == Replication::Mirrored
    }

    /// What the drill is about to do, for the operator to confirm.
    pub fn describe(&self) -> String {
        let h = self.host();
        format!(
            "The drill on {site}:\n\
             \x20 declare {q} on {node} with copies on {copies}, like {real}\n\
             \x20 publish {n} persistent messages to it through {node}, each confirmed\n\
             \x20 STOP RabbitMQ on {site}: its clients are disconnected, and {real} fails over to {copies}\n\
             \x20 read all {n} messages through {central}\n\
             \x20 start RabbitMQ on {site} and wait until its copy is synchronised again\n\
             \x20 delete {q}, and move {real}'s master back to {node}\n",
            site = h.name,
            q = queue_name(&h.name),
            node = h.node_name(),
            copies = self.copies().join(", "),
            real = self.site.queue,
            n = self.messages,
            central = self.inv.hosts[self.central()].node_name(),
        )
    }

    fn did(&self, report: &mut Report, host: &str, what: String) {
        self.progress.done(host, &what);
        report.done.push(format!("{host}: {what}"));
    }

    /// Runs the drill. Whatever fails, the site host is started again if the drill
    /// stopped it, and the drill queue is removed.
    pub fn run(mut self) -> std::result::Result<Report, Failed> {
        let mut report = Report::default();
        let mut stopped = false;
        let result = self.steps(&mut report, &mut stopped);
        let name = self.host().name.clone();
        let mut tail: Result<()> = Ok(());
        if stopped {
            self.progress.host(&name, "starting RabbitMQ again");
            tail = crate::platform::start(&mut *self.conns[self.site.host], self.manager, false);
            if tail.is_ok() {
                self.did(&mut report, &name, "started RabbitMQ again".into());
            }
        }
        let cleaned = self.cleanup(&mut report);
        match result.and(tail).and(cleaned) {
            Ok(()) => Ok(report),
            Err(error) => Err(Failed {
                error,
                done: report.done,
            }),
        }
    }

    fn steps(&mut self, report: &mut Report, stopped: &mut bool) -> Result<()> {
        let h = self.host().clone();
        let node = h.node_name();
        let q = queue_name(&h.name);
        let ci = self.central();
        let central = self.inv.hosts[ci].name.clone();
        let (cport, ccred) = self.api(ci)?;
        let (sport, scred) = self.api(self.site.host)?;

        if self.queue(ci, cport, &ccred)?.is_some() {
            self.delete_queue(ci, cport, &ccred)?;
            self.did(
                report,
                &central,
                format!("removed {q}, left by an earlier drill"),
            );
        }
        self.declare(ci, cport, &ccred)?;
        let copies = self.copies();
        self.wait(ci, cport, &ccred, "placed on its nodes", |d, q| {
            q.master() == Some(node.as_str()) && d.copies_in_sync(q, &copies)
        })?;
        self.did(
            report,
            &h.name,
            format!(
                "declared {q} on {node}, copies on {} in sync",
                copies.join(", ")
            ),
        );

        // Publish through the site's node, each message confirmed and routed.
        self.progress
            .host(&h.name, &format!("publishing {} messages", self.messages));
        let vh = enc(&self.inv.cluster.vhost);
        for i in 1..=self.messages {
            let r = self.conns[self.site.host].http(
                sport,
                "POST",
                &format!("/api/exchanges/{vh}/amq.default/publish"),
                Some((&scred.user, scred.password.expose())),
                Some(
                    &json!({
                        "properties": {"delivery_mode": 2},
                        "routing_key": q,
                        "payload": payload(&h.name, i, self.messages),
                        "payload_encoding": "string"
                    })
                    .to_string(),
                ),
            )?;
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
            if v["routed"] != json!(true) {
                bail!(
                    "message {i} published through {node} was not confirmed and routed: HTTP {} {}",
                    r.status,
                    r.body.trim()
                );
            }
        }
        let n = self.read_all(ci, cport, &ccred)?;
        self.did(
            report,
            &h.name,
            format!(
                "published {} messages through {node}, all confirmed; {n} in {q}",
                self.messages
            ),
        );

        // The failure: RabbitMQ stops on the site host.
        self.progress.host(&h.name, "stopping RabbitMQ");
        *stopped = true;
        let t_stop = Instant::now();
        crate::platform::stop(&mut *self.conns[self.site.host], self.manager)?;
        self.did(report, &h.name, "stopped RabbitMQ".into());
        let q_after = self.wait(ci, cport, &ccred, "taken over by a copy", |_, q| {
            q.master()
                .is_some_and(|m| m != node && copies.iter().any(|c| c == m))
        })?;
        report.promoted = q_after.master().unwrap_or_default().to_string();
        report.promoted_after = t_stop.elapsed().as_secs_f64();
        let n = self.read_all(ci, cport, &ccred)?;
        self.did(
            report,
            &central,
            format!(
                "{q} taken over by {} within {:.1} s of the stop, with all {n} messages",
                report.promoted, report.promoted_after
            ),
        );

        self.through_balancer(report, &ccred, false)?;

        // The site host returns; its copy must catch up.
        self.progress.host(&h.name, "starting RabbitMQ");
        let t_start = Instant::now();
        crate::platform::start(&mut *self.conns[self.site.host], self.manager, false)?;
        *stopped = false;
        self.did(report, &h.name, "started RabbitMQ".into());
        let mirrored = self.mirrored();
        self.wait(
            ci,
            cport,
            &ccred,
            "in sync on the site node again",
            |_, q| {
                if mirrored {
                    q.synchronised_slave_nodes.contains(&node) || q.master() == Some(node.as_str())
                } else {
                    q.online.contains(&node)
                }
            },
        )?;
        report.resynced_after = t_start.elapsed().as_secs_f64();
        self.through_balancer(report, &ccred, true)?;
        let n = self.read_all(ci, cport, &ccred)?;
        self.did(
            report,
            &h.name,
            format!(
                "copy on {node} {} within {:.1} s of the start (its boot included); {n} messages kept",
                if mirrored { "synchronised" } else { "online" },
                report.resynced_after
            ),
        );
        Ok(())
    }

    /// Removes the drill queue and its policy, and puts the site's own queue back on
    /// its site node.
    fn cleanup(&mut self, report: &mut Report) -> Result<()> {
        let ci = self.central();
        let central = self.inv.hosts[ci].name.clone();
        let (cport, ccred) = self.api(ci)?;
        let q = queue_name(&self.host().name);
        self.delete_queue(ci, cport, &ccred)?;
        if self.mirrored() {
            let path = format!(
                "/api/policies/{}/{}",
                enc(&self.inv.cluster.vhost),
                policy_name(&self.host().name)
            );
            api::delete(&mut *self.conns[ci], cport, &ccred, &path)?;
        }
        self.did(report, &central, format!("deleted {q} and its policy"));
        let real = self.site.queue.clone();
        let inv = self.inv;
        let progress = self.progress;
        let done = Executor::new(inv, self.conns, progress).restore_placement(&real)?;
        report.done.extend(done);
        Ok(())
    }

    /// With a `[load_balancer]`: waits (up to `WAIT`) until HAProxy's checks have
    /// taken the site's node out (`back`: put it back), then connects through every
    /// frontend as a client would, and fails unless each connection is answered, by
    /// the other nodes only while the site is down.
    fn through_balancer(
        &mut self,
        report: &mut Report,
        cred: &Credentials,
        back: bool,
    ) -> Result<()> {
        let Some(lb) = self.inv.load_balancer.clone() else {
            return Ok(());
        };
        let h = self.host().clone();
        let lb_name = self.inv.hosts[lb.host].name.clone();
        let members: Vec<String> = self
            .inv
            .hosts
            .iter()
            .enumerate()
            .filter(|(i, _)| self.inv.is_member(*i))
            .map(|(_, x)| x.node_name())
            .collect();
        let t0 = Instant::now();
        let backends = crate::render::balancer::backends(self.inv).len();
        self.progress.host(
            &lb_name,
            &format!(
                "waiting: HAProxy's checks {} {}",
                if back { "putting back" } else { "taking out" },
                h.name
            ),
        );
        loop {
            let rows = crate::facts::balancer::stats(self.inv, &mut *self.conns[lb.host])
                .map_err(|e| anyhow::anyhow!(e))?;
            let up = rows.iter().filter(|r| r.server == h.name && r.up()).count();
            if (back && up == backends) || (!back && up == 0) {
                break;
            }
            if t0.elapsed() > WAIT {
                bail!(
                    "HAProxy on {lb_name} did not {} {} within {} s",
                    if back { "put back" } else { "take out" },
                    h.name,
                    WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let took = t0.elapsed().as_secs_f64();
        let mut line = format!(
            "HAProxy {} {} within {took:.1} s",
            if back { "put back" } else { "took out" },
            h.name
        );
        let has_management = self
            .inv
            .cluster
            .plugins
            .iter()
            .any(|p| p == "rabbitmq_management");
        let seen = crate::facts::balancer::through(
            self.inv,
            &mut *self.conns[lb.host],
            has_management.then_some(cred),
            2 * members.len(),
        );
        let node = h.node_name();
        if let Some((nodes, tried)) = &seen.management {
            let want: std::collections::BTreeSet<String> = members
                .iter()
                .filter(|m| back || **m != node)
                .cloned()
                .collect();
            if nodes != &want {
                bail!(
                    "through the balancer on {lb_name}, {tried} management requests were answered by {} rather than {}",
                    nodes.iter().cloned().collect::<Vec<_>>().join(", "),
                    want.iter().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            line.push_str(&format!(
                "; through it, management answered from {}",
                nodes.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for (label, port, ok, tried) in &seen.connections {
            if ok != tried {
                bail!(
                    "through the balancer on {lb_name}, {ok} of {tried} {label} connections (port {port}) were answered while {} was {}",
                    h.name,
                    if back { "back" } else { "down" }
                );
            }
            line.push_str(&format!(", {ok} of {tried} {label} connections answered"));
        }
        self.did(report, &lb_name, line);
        Ok(())
    }

    fn api(&mut self, i: usize) -> Result<(u16, Credentials)> {
        crate::facts::node_api(&mut *self.conns[i], self.inv, i)
    }

    fn qpath(&self) -> String {
        format!(
            "/api/queues/{}/{}",
            enc(&self.inv.cluster.vhost),
            enc(&queue_name(&self.host().name))
        )
    }

    fn queue(&mut self, ci: usize, port: u16, c: &Credentials) -> Result<Option<QueueInfo>> {
        let path = self.qpath();
        api::get_opt(&mut *self.conns[ci], port, c, &path)
    }

    fn delete_queue(&mut self, ci: usize, port: u16, c: &Credentials) -> Result<()> {
        let path = self.qpath();
        api::delete(&mut *self.conns[ci], port, c, &path)
    }

    /// The drill queue, placed like the site's queue: mirrored by a policy that lists
    /// the same nodes, or a quorum queue with the same members.
    fn declare(&mut self, ci: usize, port: u16, c: &Credentials) -> Result<()> {
        let h = self.host().clone();
        let vh = enc(&self.inv.cluster.vhost);
        let q = queue_name(&h.name);
        let mut nodes = vec![h.node_name()];
        nodes.extend(self.copies());
        let mut args = serde_json::Map::new();
        if self.mirrored() {
            api::send(
                &mut *self.conns[ci],
                port,
                c,
                "PUT",
                &format!("/api/policies/{vh}/{}", policy_name(&h.name)),
                &json!({
                    "pattern": format!("^{}$", crate::util::regex_escape(&q)),
                    "definition": crate::render::definitions::mirror_definition(self.inv, self.site),
                    "priority": 100,
                    "apply-to": "queues"
                }),
            )?;
        } else {
            args.insert("x-queue-type".into(), json!("quorum"));
        }
        let path = self.qpath();
        api::send(
            &mut *self.conns[ci],
            port,
            c,
            "PUT",
            &path,
            &json!({"durable": true, "auto_delete": false, "arguments": args, "node": h.node_name()}),
        )?;
        if !self.mirrored() {
            let inv = self.inv;
            let progress = self.progress;
            Executor::new(inv, self.conns, progress).fix_members(ci, port, c, &q, &nodes)?;
        }
        Ok(())
    }

    fn copies_in_sync(&self, q: &QueueInfo, copies: &[String]) -> bool {
        if self.mirrored() {
            copies
                .iter()
                .all(|c| q.synchronised_slave_nodes.contains(c))
        } else {
            copies.iter().all(|c| q.online.contains(c))
        }
    }

    /// Polls the drill queue until `done` holds.
    fn wait(
        &mut self,
        ci: usize,
        port: u16,
        c: &Credentials,
        what: &str,
        done: impl Fn(&Self, &QueueInfo) -> bool,
    ) -> Result<QueueInfo> {
        let q = queue_name(&self.host().name);
        let deadline = Instant::now() + WAIT;
        let central = self.inv.hosts[ci].name.clone();
        self.progress
            .host(&central, &format!("waiting: {q} {what}"));
        loop {
            let info = self.queue(ci, port, c)?;
            match &info {
                Some(i) if done(self, i) => return Ok(info.expect("matched")),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!(
                    "{q} was not {what} within {} s: {}",
                    WAIT.as_secs(),
                    match info {
                        None => "the queue does not exist".to_string(),
                        Some(i) => format!(
                            "master {}, copies {} (in sync: {})",
                            i.master().unwrap_or("none"),
                            i.slave_nodes.join(", "),
                            i.synchronised_slave_nodes.join(", ")
                        ),
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Reads every message of the drill queue through the central node and puts it
    /// back; fails unless exactly the N published messages are there.
    fn read_all(&mut self, ci: usize, port: u16, c: &Credentials) -> Result<usize> {
        let site = self.host().name.clone();
        let q = queue_name(&site);
        let r = self.conns[ci].http(
            port,
            "POST",
            &format!("{}/get", self.qpath()),
            Some((&c.user, c.password.expose())),
            Some(
                &json!({"count": self.messages + 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
                    .to_string(),
            ),
        )?;
        if r.status != 200 {
            bail!("reading {q}: HTTP {} {}", r.status, r.body.trim());
        }
        let got: Vec<serde_json::Value> =
            api::parse(&r.body).with_context(|| format!("reading {q}"))?;
        let mut payloads: Vec<String> = got
            .iter()
            .filter_map(|m| m["payload"].as_str().map(str::to_string))
            .collect();
        payloads.sort();
        let mut want: Vec<String> = (1..=self.messages)
            .map(|i| payload(&site, i, self.messages))
            .collect();
        want.sort();
        if payloads != want {
            let missing = want.iter().filter(|w| !payloads.contains(w)).count();
            bail!(
                "{q} holds {} message(s), not the {} published: {missing} missing",
                payloads.len(),
                self.messages
            );
        }
        Ok(payloads.len())
    }
}

fn payload(site: &str, i: usize, n: usize) -> String {
    format!("warren drill {site} {i}/{n}")
}
