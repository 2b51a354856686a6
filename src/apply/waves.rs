//! The run's order: departures, then the waves (a parallel wave's hosts side by side,
//! a rolling wave one node at a time, the seed beside the fresh nodes), then feature
//! flags, the cluster's resources, the links, and HAProxy last.

use super::membership::resolves;
use super::report::host_summary;
use super::{Ctx, Executor, Failed, Report};
use crate::inventory::{Broker, Inventory, JoinMethod};
use crate::plan::cluster::{ClusterPlan, Op};
use crate::plan::view::wave_label;
use crate::plan::{Plan, Service, Wave, WaveKind};
use crate::platform::Transport;
use crate::ui::Progress;
use anyhow::{anyhow, bail, Result};
use std::sync::Mutex;
use std::time::Instant;

/// Runs `plan`, wave by wave. On failure, says what was done and what was not.
pub fn execute(
    inv: &Inventory,
    plan: &Plan,
    conns: &mut [Box<dyn Transport>],
    progress: &Progress,
    force: bool,
) -> std::result::Result<Report, Failed> {
    let mut ex = Executor {
        inv,
        conns,
        progress,
        force,
        report: Mutex::new(Report::default()),
    };
    let mut pending: Vec<String> = Vec::new();
    for d in &plan.departures {
        pending.push(format!("remove {}", d.node));
    }
    for w in &plan.waves {
        for &i in &w.hosts {
            let hp = &plan.hosts[i];
            if w.kind == WaveKind::Joins {
                pending.push(format!("join {} to {}", hp.node, inv.central().node_name()));
                continue;
            }
            if hp.changes() {
                pending.push(format!("{}: {}", hp.host, host_summary(hp)));
            }
            if w.kind == WaveKind::Fresh {
                pending.push(format!("join {} to {}", hp.node, inv.central().node_name()));
            }
        }
    }
    for &b in &plan.upgrade.enable_flags {
        pending.push(format!(
            "{}: enable every stable feature flag",
            inv.hosts[b].name
        ));
    }
    pending.push("cluster resources, then placement and sync read back".into());
    for l in &plan.links {
        pending.push(format!(
            "{}: the site's broker and its link, then the link read back",
            l.host
        ));
    }
    if let Some(b) = plan
        .balancer
        .as_ref()
        .filter(|b| b.action != crate::plan::balancer::Action::Leave)
    {
        pending.push(format!(
            "{}: {} HAProxy, last",
            b.host,
            match b.action {
                crate::plan::balancer::Action::Start => "start",
                _ => "reload",
            }
        ));
    }
    // Every host's line says what it waits for until its wave comes.
    for (n, w) in plan.waves.iter().enumerate() {
        for &i in &w.hosts {
            progress.idle(
                &inv.hosts[i].name,
                &format!("waiting for wave {} ({})", n + 1, wave_label(w.kind)),
            );
        }
    }
    for hp in plan.hosts.iter().filter(|h| !h.changes()) {
        if !plan
            .waves
            .iter()
            .any(|w| w.hosts.iter().any(|&i| plan.hosts[i].host == hp.host))
        {
            progress.idle(&hp.host, "no changes");
        }
    }
    let pending = Mutex::new(pending);
    let result = (|| -> Result<()> {
        if !plan.departures.is_empty() {
            let t0 = Instant::now();
            for d in &plan.departures {
                crate::interrupt::checkpoint()?;
                ex.depart(d)?;
                pending.lock().unwrap().remove(0);
            }
            ex.timing("nodes removed".into(), t0.elapsed().as_secs_f64());
        }
        let mut n = 0;
        while n < plan.waves.len() {
            let w = &plan.waves[n];
            crate::interrupt::checkpoint()?;
            if w.kind == WaveKind::Rolling && matches!(plan.cluster, ClusterPlan::Known { .. }) {
                // What needs no restart goes first: the operator's policy or user
                // change should not wait behind a rolling restart.
                let t0 = Instant::now();
                ex.cluster_before_restarts()?;
                ex.timing(
                    "cluster resources (before restarts)".into(),
                    t0.elapsed().as_secs_f64(),
                );
            }
            // The seed restarts beside the fresh nodes (nothing on them waits for
            // it but their joins), so the pair runs as one.
            let with_seed = w.kind == WaveKind::Seed
                && plan
                    .waves
                    .get(n + 1)
                    .is_some_and(|x| x.kind == WaveKind::Fresh);
            let (w, seed) = if with_seed {
                (&plan.waves[n + 1], Some(w.hosts[0]))
            } else {
                (w, None)
            };
            let t0 = Instant::now();
            let names: Vec<&str> = seed
                .iter()
                .chain(&w.hosts)
                .map(|&i| inv.hosts[i].name.as_str())
                .collect();
            let count = names.len();
            // Twenty names make no label: their count does.
            let label = match (seed, count > 5) {
                (Some(_), true) => format!(
                    "waves {}-{}: seed and fresh nodes ({count} hosts)",
                    n + 1,
                    n + 2
                ),
                (Some(_), false) => format!(
                    "waves {}-{}: seed and fresh nodes ({})",
                    n + 1,
                    n + 2,
                    names.join(", ")
                ),
                (None, true) => format!("wave {}: {} ({count} hosts)", n + 1, wave_label(w.kind)),
                (None, false) => format!(
                    "wave {}: {} ({})",
                    n + 1,
                    wave_label(w.kind),
                    names.join(", ")
                ),
            };
            let splits = ex.wave(w, seed, plan, &pending);
            ex.timing(label, t0.elapsed().as_secs_f64());
            let mut errors = Vec::new();
            for (i, r) in splits {
                match r {
                    Ok(secs) => {
                        if count > 1 && (w.parallel() || seed.is_some()) {
                            ex.timing(format!("  {}", inv.hosts[i].name), secs);
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
            if !errors.is_empty() {
                let lines: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
                bail!("{}", lines.join("\n"));
            }
            n += if with_seed { 2 } else { 1 };
        }
        let t0 = Instant::now();
        crate::interrupt::checkpoint()?;
        for &b in &plan.upgrade.enable_flags {
            // After the last node: the features of the new version.
            let name = inv.hosts[b].name.clone();
            progress.host(&name, "enabling every stable feature flag");
            crate::platform::enable_feature_flags(&mut *ex.conns[b])?;
            ex.did(&name, "enabled every stable feature flag".into());
            pending
                .lock()
                .unwrap()
                .retain(|l| *l != format!("{name}: enable every stable feature flag"));
        }
        ex.cluster()?;
        ex.links()?;
        ex.balancer(plan)?;
        progress.idle(&inv.central().name, "done");
        ex.timing(
            "cluster resources and sync".into(),
            t0.elapsed().as_secs_f64(),
        );
        pending.lock().unwrap().clear();
        Ok(())
    })();
    let mut report = ex.report.into_inner().unwrap();
    // Hosts of one wave finish in any order; the summary names them in the inventory's.
    let order = |name: &String| inv.hosts.iter().position(|h| &h.name == name);
    report.restarted.sort_by_key(order);
    report.joined.sort_by_key(order);
    match result {
        Ok(()) => Ok(report),
        Err(error) => Err(Failed {
            error,
            done: report.done,
            not_done: pending.into_inner().unwrap(),
        }),
    }
}

impl<'a> Ctx<'a> {
    /// A fresh node's host steps in its wave; whether it booted blank. With peer
    /// discovery, a fresh node that is restarted anyway boots blank into the cluster:
    /// one start instead of a start and then stop_app, reset, join, start_app. Its
    /// database is deleted while it is stopped, so it must hold nothing right before
    /// (read again now), and it starts once the seed runs (`seed_up`). Otherwise its
    /// steps are the plan's, and it joins after.
    pub(super) fn fresh_node(
        &self,
        i: usize,
        t: &mut dyn Transport,
        hp: &crate::plan::HostPlan,
        seed_up: &dyn Fn() -> Result<()>,
    ) -> Result<bool> {
        let blank = self.inv.cluster.join == JoinMethod::Config
            && matches!(hp.service, Service::Start | Service::Restart { .. })
            && self.holds_nothing(i, t)?;
        if blank {
            let name = &self.inv.hosts[i].name;
            self.host_then(i, t, hp, &mut |t| {
                seed_up()?;
                self.progress.host(
                    name,
                    "emptying the database (the node holds nothing): it boots blank into the cluster",
                );
                crate::platform::empty_database(t)
            })?;
        } else if hp.changes() {
            self.host(i, t, hp)?;
        }
        Ok(blank)
    }
}

impl<'a> Executor<'a> {
    /// Runs one wave (with `seed`: the seed beside a fresh wave, whose joins wait for
    /// it); per host, the seconds its part took or why it failed. A parallel wave
    /// runs every host to the end of its part even when another fails (a node is
    /// never left between a stop and a start); the run stops after the wave.
    fn wave(
        &mut self,
        w: &Wave,
        seed: Option<usize>,
        plan: &Plan,
        pending: &Mutex<Vec<String>>,
    ) -> Vec<(usize, Result<f64>)> {
        let inv = self.inv;
        let seed_node = inv.central().node_name();
        let finished = |i: usize, joined: bool| {
            let hp = &plan.hosts[i];
            let mut p = pending.lock().unwrap();
            p.retain(|l| !l.starts_with(&format!("{}: ", hp.host)));
            if joined {
                p.retain(|l| *l != format!("join {} to {seed_node}", hp.node));
            }
        };
        if !w.parallel() {
            let mut out = Vec::new();
            for (k, &i) in w.hosts.iter().enumerate() {
                for &j in &w.hosts[k + 1..] {
                    self.progress.idle(
                        &inv.hosts[j].name,
                        &format!("waiting: one at a time, after {}", inv.hosts[i].name),
                    );
                }
                let t0 = Instant::now();
                let r = self.sequential(w.kind, i, plan);
                let ok = r.is_ok();
                out.push((i, r.map(|_| t0.elapsed().as_secs_f64())));
                if !ok {
                    break;
                }
                finished(i, w.kind == WaveKind::Joins);
                self.progress.idle(&inv.hosts[i].name, "done");
            }
            return out;
        }
        if w.kind == WaveKind::Fresh {
            // The central host's side of each join's checks, before the wave: the
            // threads each hold only their own host.
            let ci = inv.central_index();
            for &i in &w.hosts {
                if let Err(e) = resolves(&mut *self.conns[ci], inv.central(), &inv.hosts[i]) {
                    return w
                        .hosts
                        .iter()
                        .map(|&i| (i, Err(anyhow!("{e:#}"))))
                        .collect();
                }
            }
        }
        let ctx = Ctx {
            inv,
            progress: self.progress,
            force: self.force,
            report: &self.report,
        };
        let ctx = &ctx;
        let kind = w.kind;
        let seed_node = &seed_node;
        // Whether the seed came up: the fresh nodes' joins wait for it.
        let gate: (Mutex<Option<bool>>, std::sync::Condvar) = (
            Mutex::new(seed.map(|_| None).unwrap_or(Some(true))),
            std::sync::Condvar::new(),
        );
        let gate = &gate;
        let mine: Vec<(usize, &mut Box<dyn Transport>)> = self
            .conns
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| w.hosts.contains(i) || seed == Some(*i))
            .collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = mine
                .into_iter()
                .map(|(i, t)| {
                    let finished = &finished;
                    s.spawn(move || {
                        let t0 = Instant::now();
                        let hp = &plan.hosts[i];
                        let name = &ctx.inv.hosts[i].name;
                        let r = (|| -> Result<()> {
                            if seed == Some(i) {
                                let r = ctx.host(i, &mut **t, hp);
                                *gate.0.lock().unwrap() = Some(r.is_ok());
                                gate.1.notify_all();
                                r?;
                                finished(i, false);
                                return Ok(());
                            }
                            let seed_up = || -> Result<()> {
                                ctx.progress.idle(name, &format!("waiting for {seed_node} (the seed) to run"));
                                let mut up = gate.0.lock().unwrap();
                                while up.is_none() {
                                    up = gate.1.wait(up).unwrap();
                                }
                                if *up != Some(true) {
                                    bail!("{name}: not joined: {seed_node}, the seed, did not come up");
                                }
                                Ok(())
                            };
                            let blank = if kind == WaveKind::Fresh {
                                ctx.fresh_node(i, &mut **t, hp, &seed_up)?
                            } else {
                                if hp.changes() {
                                    ctx.host(i, &mut **t, hp)?;
                                }
                                false
                            };
                            finished(i, false);
                            if kind == WaveKind::Fresh {
                                if !blank {
                                    seed_up()?;
                                }
                                // A safe point: this node runs, standalone or joined.
                                crate::interrupt::checkpoint()?;
                                ctx.join(i, &mut **t, blank)?;
                                finished(i, true);
                            }
                            Ok(())
                        })();
                        ctx.progress
                            .idle(name, if r.is_ok() { "done" } else { "failed" });
                        (i, r.map(|_| t0.elapsed().as_secs_f64()))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|j| {
                    j.join()
                        .unwrap_or_else(|_| (usize::MAX, Err(anyhow!("a host thread panicked"))))
                })
                .collect()
        })
    }

    /// One host of a wave that goes one at a time.
    fn sequential(&mut self, kind: WaveKind, i: usize, plan: &Plan) -> Result<()> {
        crate::interrupt::checkpoint()?;
        let hp = &plan.hosts[i];
        match kind {
            WaveKind::Joins => self.join(&hp.host),
            WaveKind::Rolling => {
                // A run killed after a restart may not have waited for the copies
                // that restart took down: never stop a node before they are back.
                self.await_copies()?;
                self.host(i, hp)?;
                // The next restart may take a master down: only when every copy
                // is synchronised can RabbitMQ promote one without losing messages.
                self.await_copies()
            }
            WaveKind::Upgrade => {
                self.await_copies()?;
                let ctx = Ctx {
                    inv: self.inv,
                    progress: self.progress,
                    force: self.force,
                    report: &self.report,
                };
                ctx.upgrade(i, &mut *self.conns[i], hp)?;
                if self.inv.is_member(i) {
                    // Its drain handed its masters to other nodes: back to their site
                    // node now, before the next node drains.
                    let queues: Vec<String> = self
                        .inv
                        .sites
                        .iter()
                        .filter(|s| s.host == i && !s.linked())
                        .map(|s| s.queue.clone())
                        .collect();
                    if !queues.is_empty() {
                        self.cluster_ops(
                            Broker::Cluster,
                            &|op, _| match op {
                                Op::MoveMaster { queue, .. } | Op::SyncQueue { queue } => {
                                    queues.contains(queue)
                                }
                                _ => false,
                            },
                            true,
                        )?;
                    }
                }
                self.await_copies()
            }
            _ => self.host(i, hp),
        }
    }

    /// HAProxy, last: started or reloaded once every node has joined, so that no
    /// client meets a node still on its way into the cluster.
    fn balancer(&mut self, plan: &Plan) -> Result<()> {
        let (Some(bp), Some(lb)) = (&plan.balancer, &self.inv.load_balancer) else {
            return Ok(());
        };
        crate::interrupt::checkpoint()?;
        let i = lb.host;
        let m = plan.hosts[i].manager;
        if let Some(what) = super::balancer::apply(self.inv, &mut *self.conns[i], m, bp)? {
            self.did(&bp.host, what);
        }
        Ok(())
    }
}
