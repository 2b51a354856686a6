//! Where the site queues live: masters moved, quorum members made the inventory's,
//! copies waited for, and the placement read back.

use super::Executor;
use crate::inventory::{Broker, Host, Inventory, Replication};
use crate::plan::cluster::{self as cplan, Op};
use crate::rabbitmq::api::{self, enc, Credentials};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::time::{Duration, Instant};

impl<'a> Executor<'a> {
    /// Puts a site queue back where the inventory places it, and nothing else: the
    /// master moves and syncs of a fresh plan for `queue`, then the read-back.
    pub fn restore_placement(&mut self, queue: &str) -> Result<Vec<String>> {
        self.cluster_ops(
            Broker::Cluster,
            &|op, _| match op {
                Op::MoveMaster { queue: q, .. } | Op::SyncQueue { queue: q } => q == queue,
                _ => false,
            },
            true,
        )?;
        Ok(self.take_done())
    }

    /// Moves a classic queue's master to `to`, RabbitMQ's way: a policy of higher
    /// priority that lists only `to` makes RabbitMQ promote the synchronised copy
    /// there (it never drops a master without a synchronised copy); then the
    /// temporary policy goes and the queue's own policy adds its mirrors back.
    pub(super) fn move_master(
        &mut self,
        ci: usize,
        port: u16,
        creds: &Credentials,
        queue: &str,
        to: &str,
    ) -> Result<()> {
        let inv = self.inv;
        let vh = enc(&inv.cluster.vhost);
        let qpath = format!("/api/queues/{vh}/{}", enc(queue));
        let wait = |ex: &mut Self,
                    what: &str,
                    done: &dyn Fn(&api::QueueInfo) -> bool|
         -> Result<()> {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let q: api::QueueInfo = api::get(&mut *ex.conns[ci], port, creds, &qpath)?;
                if done(&q) {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!("queue {queue}: {what} did not happen within 120 s (master {}, synchronised copies {})", q.master().unwrap_or("none"), q.synchronised_slave_nodes.join(", "));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        };
        self.progress.host(
            &inv.hosts[ci].name,
            &format!("moving the master of {queue} to {to}"),
        );
        wait(self, &format!("a synchronised copy on {to}"), &|q| {
            q.synchronised_slave_nodes.iter().any(|n| n == to) || q.master() == Some(to)
        })?;
        let temp = format!("{}{}", cplan::MOVE_POLICY_PREFIX, enc(queue));
        api::send(
            &mut *self.conns[ci],
            port,
            creds,
            "PUT",
            &format!("/api/policies/{vh}/{temp}"),
            &json!({
                "pattern": format!("^{}$", crate::util::regex_escape(queue)),
                "definition": {"ha-mode": "nodes", "ha-params": [to], "ha-sync-mode": "automatic"},
                "priority": 1000,
                "apply-to": "queues"
            }),
        )?;
        let moved = wait(self, &format!("the move of its master to {to}"), &|q| {
            q.master() == Some(to)
        });
        // The temporary policy goes whether or not the move finished in time.
        let removed = api::send(
            &mut *self.conns[ci],
            port,
            creds,
            "DELETE",
            &format!("/api/policies/{vh}/{temp}"),
            &json!({}),
        );
        moved?;
        removed
    }

    /// A new quorum queue gets the members RabbitMQ picks; make them the inventory's.
    pub fn fix_members(
        &mut self,
        ci: usize,
        port: u16,
        creds: &Credentials,
        queue: &str,
        want: &[String],
    ) -> Result<()> {
        let path = format!(
            "/api/queues/{}/{}",
            enc(&self.inv.cluster.vhost),
            enc(queue)
        );
        let q: api::QueueInfo = api::get(&mut *self.conns[ci], port, creds, &path)?;
        for m in want.iter().filter(|m| !q.members.contains(m)) {
            self.member(ci, queue, m, true)?;
        }
        for m in q.members.iter().filter(|m| !want.contains(m)) {
            self.member(ci, queue, m, false)?;
        }
        Ok(())
    }

    pub(super) fn member(&mut self, ci: usize, queue: &str, node: &str, add: bool) -> Result<()> {
        crate::platform::queue_member(
            &mut *self.conns[ci],
            &self.inv.cluster.vhost,
            queue,
            node,
            add,
        )
    }

    /// Waits until every existing site queue's copies are synchronised (quorum: every
    /// member online). Skipped while the central node's API cannot be reached yet
    /// (a bootstrap, before any queue exists).
    pub(super) fn await_copies(&mut self) -> Result<()> {
        let Ok((ci, port, creds)) = self.api() else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let queues: Vec<api::QueueInfo> =
                api::get(&mut *self.conns[ci], port, &creds, "/api/queues")?;
            let waiting: Vec<String> = placement_problems(self.inv, &queues)
                .into_iter()
                .filter(|p| p.copies)
                .map(|p| p.text)
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            crate::interrupt::checkpoint()?;
            if Instant::now() > deadline {
                bail!(
                    "copies not synchronised after 300 s: {}",
                    waiting.join("; ")
                );
            }
            self.progress.host(
                &self.inv.hosts[ci].name,
                &format!("waiting for copies: {}", waiting[0]),
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Reads back from RabbitMQ where every site queue lives, until each master (or
    /// leader) is on its site's node and every copy is in place and synchronised.
    pub(super) fn await_placement(
        &mut self,
        ci: usize,
        port: u16,
        creds: &Credentials,
    ) -> Result<()> {
        let inv = self.inv;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let queues: Vec<api::QueueInfo> =
                api::get(&mut *self.conns[ci], port, creds, "/api/queues")
                    .context("reading the queues back")?;
            let problems: Vec<String> = placement_problems(inv, &queues)
                .into_iter()
                .map(|p| p.text)
                .collect();
            if problems.is_empty() {
                self.did(
                    &inv.hosts[ci].name,
                    format!(
                        "read back: {} site queue(s) placed and synchronised",
                        inv.sites.len()
                    ),
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("after 120 s: {}", problems.join("; "));
            }
            crate::interrupt::checkpoint()?;
            self.progress
                .host(&inv.hosts[ci].name, &format!("waiting: {}", problems[0]));
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// One way a site queue differs from the inventory's placement.
pub struct PlacementProblem {
    pub text: String,
    /// About a copy (mirror or member) rather than where the master is.
    pub copies: bool,
}

/// What differs between the queues RabbitMQ reports and the inventory's placement.
pub fn placement_problems(inv: &Inventory, queues: &[api::QueueInfo]) -> Vec<PlacementProblem> {
    let mut out = Vec::new();
    let mut add = |text: String, copies: bool| out.push(PlacementProblem { text, copies });
    // A linked site's queue has no placement to keep: one node, no copies.
    for s in inv.sites.iter().filter(|s| !s.linked()) {
        let site: &Host = &inv.hosts[s.host];
        let node = site.node_name();
        let copies = inv.copy_nodes(s);
        let Some(q) = queues
            .iter()
            .find(|q| q.name == s.queue && q.vhost == inv.cluster.vhost)
        else {
            add(format!("queue {} does not exist", s.queue), false);
            continue;
        };
        match inv.cluster.replication {
            Replication::Mirrored => {
                if q.master() != Some(node.as_str()) {
                    add(
                        format!(
                            "queue {}: master on {}, not {node}",
                            s.queue,
                            q.master().unwrap_or("no node")
                        ),
                        false,
                    );
                }
                // Every copy the queue has must be synchronised, and the inventory's
                // copies must exist (the master aside, which may sit on one of them).
                for c in copies.iter().filter(|c| q.master() != Some(c.as_str())) {
                    if !q.slave_nodes.contains(c) {
                        add(format!("queue {}: no mirror on {c}", s.queue), true);
                    }
                }
                for c in &q.slave_nodes {
                    if !q.synchronised_slave_nodes.contains(c) {
                        add(
                            format!("queue {}: mirror on {c} not synchronised", s.queue),
                            true,
                        );
                    }
                }
            }
            Replication::Quorum => {
                // A quorum queue is declared with its leader on the site's node, but
                // after a restart the members elect whichever is available; 3.10 has
                // no command to hand the leadership back, and any leader serves the
                // same log. So a leader must exist; where it is, is not a fault.
                if q.master().is_none() {
                    add(format!("queue {}: no leader", s.queue), false);
                }
                let mut want = copies.clone();
                want.push(node.clone());
                want.sort();
                let mut have = q.members.clone();
                have.sort();
                if have != want {
                    add(
                        format!(
                            "queue {}: members {}, not {}",
                            s.queue,
                            have.join(", "),
                            want.join(", ")
                        ),
                        false,
                    );
                }
                for m in &have {
                    if !q.online.contains(m) {
                        add(format!("queue {}: member {m} not online", s.queue), true);
                    }
                }
            }
        }
    }
    out
}
