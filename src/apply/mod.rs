//! The executor: runs exactly the plan's steps, wave by wave (see `plan::Wave`): the
//! hosts of a parallel wave side by side, each on its own connection, a rolling wave
//! one node at a time; then the cluster's resources. It stops after the first wave
//! that fails and says what was done and what was not. Everything it does can be
//! done again: a rerun plans from the facts and picks up where this one stopped.

use crate::facts;
use crate::inventory::{Broker, Host, Inventory, JoinMethod, Replication};
use crate::plan::cluster::{self as cplan, ClusterPlan, Op};
use crate::plan::view::wave_label;
use crate::plan::{HostPlan, Plan, Service, Wave, WaveKind};
use crate::platform::{Probe, Transport};
use crate::rabbitmq::api::{self, enc, Credentials};
use crate::ui::Progress;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Report {
    /// What was done, one line each, in order.
    pub done: Vec<String>,
    pub restarted: Vec<String>,
    pub joined: Vec<String>,
    pub cluster_changes: usize,
    /// (phase, seconds)
    pub timings: Vec<(String, f64)>,
}

/// A failed apply: what failed, what had been done, what was left.
#[derive(Debug)]
pub struct Failed {
    pub error: anyhow::Error,
    pub done: Vec<String>,
    pub not_done: Vec<String>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:#}", self.error)?;
        if self.done.is_empty() {
            writeln!(f, "nothing was changed")?;
        } else {
            writeln!(f, "done before the failure:")?;
            for d in &self.done {
                writeln!(f, "  {d}")?;
            }
        }
        if !self.not_done.is_empty() {
            writeln!(f, "not done:")?;
            for d in &self.not_done {
                writeln!(f, "  {d}")?;
            }
        }
        write!(
            f,
            "fix the cause and rerun `warren apply`: it continues from here"
        )
    }
}

impl std::error::Error for Failed {}

pub struct Executor<'a> {
    inv: &'a Inventory,
    conns: &'a mut [Box<dyn Transport>],
    progress: &'a Progress,
    force: bool,
    report: Mutex<Report>,
}

/// What a host's step needs besides the host's own connection: shared by the threads
/// of a wave, each of which holds only its own host's connection.
struct Ctx<'a> {
    inv: &'a Inventory,
    progress: &'a Progress,
    force: bool,
    report: &'a Mutex<Report>,
}

/// How much of the overall progress bar each kind of step is: the bar moves with
/// the work that takes the time (a node's start or join), not with the count of
/// quick changes.
pub const WEIGHT_NODE: u64 = 10;
pub const WEIGHT_JOIN: u64 = 10;

/// The length of the progress bar for `plan`: what the steps weigh.
pub fn work(plan: &Plan) -> u64 {
    let hosts: u64 = plan
        .hosts
        .iter()
        .filter(|h| h.changes())
        .map(|h| match h.service {
            Service::Leave => 1,
            _ => WEIGHT_NODE,
        })
        .sum();
    hosts
        + WEIGHT_JOIN * plan.joins.len() as u64
        + WEIGHT_NODE * plan.departures.len() as u64
        + plan.cluster.changes().len() as u64
        + plan
            .links
            .iter()
            .map(|l| l.plan.changes().len() as u64 + 1)
            .sum::<u64>()
        + 1
}

/// How long apply waits for a shovel or federation link to run.
const LINK_WAIT_SECS: u64 = 60;
/// How long a migration drains one queue before it stops and says to rerun (the
/// shovel goes on meanwhile).
const DRAIN_SECS: u64 = 600;

/// A site queue's migration to quorum, as the plan's `Op::MigrateQueue` gives it.
struct Migration<'o> {
    def: &'o crate::render::definitions::QueueDef,
    node: &'o str,
    members: &'o [String],
    exchange: &'o str,
    routing_key: &'o str,
    mirror_policy: &'o str,
}

/// What a site's link reports: shovel status on the site's broker, federation link
/// status on the central node.
pub struct LinkState {
    pub name: String,
    pub running: bool,
    /// Its state, and RabbitMQ's reason when it is not running.
    pub text: String,
    /// Who connects to whom (for the fix in a message).
    pub from: String,
    pub to: String,
    pub port: u16,
}

/// The host whose broker runs site `si`'s link: the site for a shovel, the central
/// host for federation (the downstream pulls).
pub fn link_runner(inv: &Inventory, si: usize) -> usize {
    match inv.sites[si].link {
        crate::inventory::Link::Shovel => inv.sites[si].host,
        _ => inv.central_index(),
    }
}

/// Reads the state of site `si`'s link through `p`, the connection to the host
/// that runs it (`link_runner`).
pub fn link_state(inv: &Inventory, si: usize, p: &mut dyn Probe) -> Result<LinkState> {
    let site = &inv.sites[si];
    let sh = &inv.hosts[site.host];
    let central = inv.central();
    let name = crate::inventory::link_name(&sh.name);
    let vhost = &inv.cluster.vhost;
    let describe = |state: &str, why: Option<&serde_json::Value>| match why {
        Some(w) if !w.is_null() => format!(
            "{state}: {}",
            w.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| w.to_string())
        ),
        _ => state.to_string(),
    };
    match site.link {
        crate::inventory::Link::Shovel => {
            let (port, creds) = facts::node_api(p, inv, site.host)?;
            let all: Vec<api::ShovelStatus> = api::get(p, port, &creds, "/api/shovels")?;
            let me = all.iter().find(|x| x.name == name && &x.vhost == vhost);
            Ok(LinkState {
                running: me.is_some_and(|x| x.state == "running"),
                text: me
                    .map(|x| describe(&x.state, x.reason.as_ref()))
                    .unwrap_or_else(|| "not reported".into()),
                name,
                from: sh.name.clone(),
                to: central.name.clone(),
                port: crate::render::definitions::link_port(inv, inv.central_index(), site.host),
            })
        }
        _ => {
            let (port, creds) = facts::node_api(p, inv, inv.central_index())?;
            let all: Vec<api::FederationLink> = api::get(p, port, &creds, "/api/federation-links")?;
            let mine: Vec<&api::FederationLink> = all
                .iter()
                .filter(|x| x.upstream == name && &x.vhost == vhost)
                .filter(|x| x.exchange.as_deref() == Some(site.exchange.as_str()))
                .collect();
            Ok(LinkState {
                running: !mine.is_empty() && mine.iter().all(|x| x.status == "running"),
                text: mine
                    .first()
                    .map(|x| describe(&x.status, x.error.as_ref()))
                    .unwrap_or_else(|| "not reported".into()),
                name,
                from: central.name.clone(),
                to: sh.name.clone(),
                port: crate::render::definitions::link_port(inv, site.host, site.host),
            })
        }
    }
}

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

fn host_summary(hp: &HostPlan) -> String {
    let mut parts = Vec::new();
    if !hp.leftovers.is_empty() {
        parts.push(format!(
            "delete {} file(s) an interrupted run left",
            hp.leftovers.len()
        ));
    }
    if !hp.files.is_empty() {
        parts.push(format!("write {} file(s)", hp.files.len()));
    }
    match &hp.service {
        Service::Restart { .. } => parts.push("restart RabbitMQ".into()),
        Service::Start => parts.push("start RabbitMQ".into()),
        Service::AwaitBoot => parts.push("wait for RabbitMQ to finish booting".into()),
        Service::StartApp => parts.push("start the rabbit application".into()),
        Service::Leave => {}
    }
    if !hp.start_plugins.is_empty() {
        parts.push(format!("start plugins {}", hp.start_plugins.join(", ")));
    }
    if let Some(up) = &hp.upgrade {
        parts.push(format!("upgrade ({})", up.changes.join("; ")));
    }
    if hp.revive {
        parts.push("revive the node from maintenance mode".into());
    }
    parts.join(", ")
}

impl<'a> Ctx<'a> {
    fn did(&self, host: &str, what: String, weight: u64) {
        self.progress.done_weighted(host, &what, weight);
        self.report
            .lock()
            .unwrap()
            .done
            .push(format!("{host}: {what}"));
    }

    fn note(&self, line: String) {
        self.report.lock().unwrap().done.push(line);
    }

    /// One host's files, settings and service, as its plan says.
    fn host(&self, i: usize, t: &mut dyn Transport, hp: &HostPlan) -> Result<()> {
        let h = &self.inv.hosts[i];
        for l in &hp.leftovers {
            let script = t.platform().remove_file(l);
            let out = t.run(&script, Duration::from_secs(30))?;
            if !out.ok() {
                bail!("{}: deleting {l} failed: {}", h.name, out.last_line());
            }
            self.note(format!(
                "{}: deleted {l}, left by an interrupted run",
                h.name
            ));
        }
        for c in &hp.settings {
            self.progress
                .host(&h.name, &format!("setting {}", c.setting.key));
            let script = t.platform().apply_setting(&c.setting);
            let out = t.run(&script, Duration::from_secs(120))?;
            if !out.ok() {
                bail!(
                    "{}: setting {} failed: {}",
                    h.name,
                    c.setting.key,
                    out.last_line()
                );
            }
            self.note(format!("{}: set {}", h.name, c.setting.key));
        }
        if let Service::Restart { reasons, .. } = &hp.service {
            self.progress.host(
                &h.name,
                &format!("stopping RabbitMQ ({})", reasons.join(", ")),
            );
            crate::platform::stop(t, hp.manager)?;
        }
        self.write_files(h, t, hp)?;
        let wrote: Vec<&str> = hp
            .files
            .iter()
            .map(|f| crate::util::file_name(&f.path))
            .collect();
        match &hp.service {
            Service::AwaitBoot => {
                self.progress
                    .host(&h.name, "waiting for RabbitMQ to finish booting");
                crate::platform::await_startup(t, crate::platform::START_TIMEOUT)?;
                self.did(&h.name, "RabbitMQ finished booting".into(), WEIGHT_NODE);
            }
            Service::StartApp => {
                self.progress
                    .host(&h.name, "starting the rabbit application");
                crate::platform::start_app(t)?;
                self.did(
                    &h.name,
                    "started the rabbit application".into(),
                    WEIGHT_NODE,
                );
            }
            Service::Leave if wrote.is_empty() => {}
            Service::Leave => {
                self.did(
                    &h.name,
                    format!("wrote {} (no restart needed)", wrote.join(", ")),
                    1,
                );
            }
            Service::Start | Service::Restart { .. } => {
                let daemon_reload = hp.daemon_reload();
                // Starts are capped over all hosts (see `platform::start_slot`); the
                // seed, which every join waits for, never queues for a slot.
                let _slot = (i != self.inv.central_index()).then(crate::platform::start_slot);
                if let Some(up) = hp.upgrade.as_ref().filter(|_| hp.service == Service::Start) {
                    // A node that is down is upgraded before it starts.
                    self.install(h, t, up)?;
                }
                let verb = if !hp.reinstall.is_empty() || self.reinstalls_after(t, hp) {
                    self.progress.host(
                        &h.name,
                        &format!(
                            "reinstalling the RabbitMQ service ({})",
                            hp.reinstall.join(", ")
                        ),
                    );
                    crate::platform::reinstall(t, hp.manager)?;
                    "reinstalled the service and started"
                } else {
                    self.progress.host(&h.name, "starting RabbitMQ");
                    crate::platform::start(t, hp.manager, daemon_reload)?;
                    if hp.service == Service::Start {
                        "started"
                    } else {
                        "restarted"
                    }
                };
                if hp
                    .files
                    .iter()
                    .any(|f| f.effect == crate::render::Effect::StopWriteStart && f.restarts)
                {
                    // The CLI must read the cookie warren wrote, or every later
                    // command on this host would fail to reach the node.
                    crate::platform::check_cookie_source(t)?;
                }
                if wrote.is_empty() {
                    self.did(&h.name, format!("{verb} RabbitMQ"), WEIGHT_NODE);
                } else {
                    self.did(
                        &h.name,
                        format!("wrote {}; {verb} RabbitMQ", wrote.join(", ")),
                        WEIGHT_NODE,
                    );
                }
                if hp.service != Service::Start {
                    self.report.lock().unwrap().restarted.push(h.name.clone());
                }
            }
        }
        if hp.revive {
            self.progress
                .host(&h.name, "reviving the node from maintenance mode");
            crate::platform::revive(t)?;
            self.did(&h.name, "revived from maintenance mode".into(), 1);
        }
        if !hp.start_plugins.is_empty() {
            let list = hp.start_plugins.join(", ");
            self.progress
                .host(&h.name, &format!("starting plugins {list}"));
            crate::platform::start_plugins(t, &hp.start_plugins)?;
            self.did(&h.name, format!("started plugins {list} again"), 1);
        }
        Ok(())
    }

    /// Writes the host's changed files, as its plan has them.
    fn write_files(&self, h: &Host, t: &mut dyn Transport, hp: &HostPlan) -> Result<()> {
        for f in &hp.files {
            self.progress.host(&h.name, &format!("writing {}", f.path));
            t.upload(
                &f.path,
                f.content.bytes(),
                f.owner.as_deref(),
                f.mode,
                f.in_place,
            )?;
        }
        Ok(())
    }

    /// Installs a node's upgrade (its node stopped).
    fn install(
        &self,
        h: &Host,
        t: &mut dyn Transport,
        up: &crate::plan::upgrade::NodeUpgrade,
    ) -> Result<()> {
        if up.install == crate::platform::Install::default() {
            return Ok(());
        }
        self.progress
            .host(&h.name, &format!("installing ({})", up.changes.join("; ")));
        crate::platform::install(t, &up.install)?;
        self.note(format!("{}: installed {}", h.name, up.changes.join("; ")));
        Ok(())
    }

    /// Whether the node starts through a service reinstall after its upgrade: the
    /// Windows service runs the Erlang and RabbitMQ it was installed with.
    fn reinstalls_after(&self, t: &mut dyn Transport, hp: &HostPlan) -> bool {
        hp.upgrade
            .as_ref()
            .is_some_and(|up| up.install != crate::platform::Install::default())
            && t.platform().reinstall().is_some()
    }

    /// One node's rolling upgrade: drained (maintenance mode), stopped, its files
    /// written, the new versions installed, started (Windows: the service
    /// reinstalled), revived. The caller waits for the queue copies around it and
    /// gives the masters back.
    fn upgrade(&self, i: usize, t: &mut dyn Transport, hp: &HostPlan) -> Result<()> {
        let h = &self.inv.hosts[i];
        let Some(up) = &hp.upgrade else {
            return Ok(());
        };
        self.progress.host(
            &h.name,
            "draining (maintenance mode: clients disconnected, masters handed over)",
        );
        crate::platform::drain(t)?;
        self.note(format!(
            "{}: drained {} (maintenance mode)",
            h.name, hp.node
        ));
        self.progress
            .host(&h.name, "stopping RabbitMQ for its upgrade");
        crate::platform::stop(t, hp.manager)?;
        // From here the node must be started again whatever fails: a rerun finds it
        // down and brings it up (installed or not) before anything else.
        let installed = self
            .write_files(h, t, hp)
            .and_then(|_| self.install(h, t, up));
        let _slot = (i != self.inv.central_index()).then(crate::platform::start_slot);
        if let Err(e) = installed {
            // Not left stopped: started again on what it has (the old version, when
            // apt or the installer failed), and the run stops with the reason.
            self.progress
                .host(&h.name, "starting RabbitMQ again after a failed upgrade");
            let again = if t.platform().reinstall().is_some() {
                crate::platform::reinstall(t, hp.manager)
            } else {
                crate::platform::start(t, hp.manager, hp.daemon_reload())
            };
            let _ = again.and_then(|_| crate::platform::revive(t));
            return Err(e.context(format!(
                "{}: the upgrade was not installed; RabbitMQ was started again on what the host has",
                h.name
            )));
        }
        if !hp.reinstall.is_empty() || self.reinstalls_after(t, hp) {
            self.progress
                .host(&h.name, "reinstalling the RabbitMQ service and starting it");
            crate::platform::reinstall(t, hp.manager)?;
        } else {
            self.progress.host(&h.name, "starting RabbitMQ");
            crate::platform::start(t, hp.manager, hp.daemon_reload())?;
        }
        if hp
            .files
            .iter()
            .any(|f| f.effect == crate::render::Effect::StopWriteStart && f.restarts)
        {
            crate::platform::check_cookie_source(t)?;
        }
        self.progress
            .host(&h.name, "reviving (out of maintenance mode)");
        crate::platform::revive(t)?;
        self.did(
            &h.name,
            format!("upgraded: {}", up.changes.join("; ")),
            WEIGHT_NODE,
        );
        self.report.lock().unwrap().restarted.push(h.name.clone());
        Ok(())
    }

    /// Joins host `i` to the central node, deciding membership from the node's own
    /// lists right before. The central side of the checks (that the central host
    /// resolves this host's name) is `resolves`, done before.
    fn join(&self, i: usize, t: &mut dyn Transport) -> Result<()> {
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
        crate::platform::join(
            t,
            &seed,
            h.node_type == crate::inventory::NodeType::Ram,
            by_config,
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
        self.did(host, format!("joined {seed}'s cluster"), WEIGHT_JOIN);
        Ok(())
    }
}

/// On host `who` (connection `t`), the name of `target` resolves to the inventory's
/// address: Erlang distribution reaches nodes by name.
fn resolves(t: &mut dyn Probe, who: &Host, target: &Host) -> Result<()> {
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
    pub fn new(
        inv: &'a Inventory,
        conns: &'a mut [Box<dyn Transport>],
        progress: &'a Progress,
    ) -> Executor<'a> {
        Executor {
            inv,
            conns,
            progress,
            force: false,
            report: Mutex::new(Report::default()),
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            inv: self.inv,
            progress: self.progress,
            force: self.force,
            report: &self.report,
        }
    }

    fn did(&mut self, host: &str, what: String) {
        self.ctx().did(host, what, 1);
    }

    fn timing(&mut self, phase: String, secs: f64) {
        self.report.get_mut().unwrap().timings.push((phase, secs));
    }

    /// Takes the done lines so far (the drill reports them as its own).
    fn take_done(&mut self) -> Vec<String> {
        std::mem::take(&mut self.report.get_mut().unwrap().done)
    }

    /// One host's step alone (the transcripts drive hosts one by one).
    pub fn host(&mut self, i: usize, hp: &HostPlan) -> Result<()> {
        let ctx = Ctx {
            inv: self.inv,
            progress: self.progress,
            force: self.force,
            report: &self.report,
        };
        ctx.host(i, &mut *self.conns[i], hp)
    }

    /// One host's upgrade step alone (the transcripts drive hosts one by one).
    pub fn upgrade_host(&mut self, i: usize, hp: &HostPlan) -> Result<()> {
        let ctx = Ctx {
            inv: self.inv,
            progress: self.progress,
            force: self.force,
            report: &self.report,
        };
        ctx.upgrade(i, &mut *self.conns[i], hp)
    }

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
                            if hp.changes() {
                                ctx.host(i, &mut **t, hp)?;
                            }
                            finished(i, false);
                            if kind == WaveKind::Fresh {
                                ctx.progress.idle(name, &format!("waiting for {seed_node} (the seed) to run"));
                                let mut up = gate.0.lock().unwrap();
                                while up.is_none() {
                                    up = gate.1.wait(up).unwrap();
                                }
                                if *up != Some(true) {
                                    bail!("{name}: not joined: {seed_node}, the seed, did not come up");
                                }
                                drop(up);
                                // A safe point: this node runs, standalone or joined.
                                crate::interrupt::checkpoint()?;
                                ctx.join(i, &mut **t)?;
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

    /// Removes a node the inventory no longer lists, as the plan says: masters moved
    /// to their synchronised copies, quorum members deleted, the node stopped (through
    /// the central node's CLI: warren has no way into that host any more) and forgotten.
    fn depart(&mut self, d: &crate::plan::Departure) -> Result<()> {
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

    /// The central node's API and credentials that work now.
    pub fn api(&mut self) -> Result<(usize, u16, Credentials)> {
        let ci = self.inv.central_index();
        let (port, c) = facts::node_api(&mut *self.conns[ci], self.inv, ci)?;
        Ok((ci, port, c))
    }

    fn cluster(&mut self) -> Result<()> {
        self.cluster_ops(Broker::Cluster, &|_, _| true, true)
    }

    /// Every linked site's broker (its exchange, queue, users and link), then each
    /// link read back until it runs.
    fn links(&mut self) -> Result<()> {
        let brokers: Vec<Broker> = self
            .inv
            .brokers()
            .into_iter()
            .filter(|b| *b != Broker::Cluster)
            .collect();
        if brokers.is_empty() {
            return Ok(());
        }
        for &b in &brokers {
            crate::interrupt::checkpoint()?;
            self.cluster_ops(b, &|_, _| true, false)?;
        }
        for b in brokers {
            let Broker::Site(si) = b else { continue };
            self.await_link(si)?;
        }
        Ok(())
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
        if let Some(what) = crate::plan::balancer::apply(self.inv, &mut *self.conns[i], m, bp)? {
            self.did(&bp.host, what);
        }
        Ok(())
    }

    /// Waits until the link of site `si` runs (shovel: as its site's broker reports
    /// it; federation: as the central node does).
    fn await_link(&mut self, si: usize) -> Result<()> {
        let inv = self.inv;
        let site = &inv.sites[si];
        let host = inv.hosts[site.host].name.clone();
        let deadline = Instant::now() + Duration::from_secs(LINK_WAIT_SECS);
        loop {
            crate::interrupt::checkpoint()?;
            let runner = link_runner(inv, si);
            let state = link_state(inv, si, &mut *self.conns[runner])?;
            if state.running {
                self.did(&host, format!("{} {} running", site.link, state.name));
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} {} of site {host} is not running after {LINK_WAIT_SECS} s ({}); it is set up and RabbitMQ retries it every {} s: check that {} reaches {} on port {} (AMQP, or AMQPS to a TLS host), then rerun",
                    site.link,
                    state.name,
                    state.text,
                    crate::render::definitions::LINK_RECONNECT_DELAY,
                    state.from,
                    state.to,
                    state.port
                );
            }
            self.progress.host(
                &host,
                &format!("waiting for {} {}: {}", site.link, state.name, state.text),
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Before a rolling restart: the cluster changes that need no restart and no node
    /// that is not running now (definitions, users, policies, queues on running
    /// nodes). Where masters live is left to the pass after the restarts, which
    /// would move them again.
    fn cluster_before_restarts(&mut self) -> Result<()> {
        self.cluster_ops(
            Broker::Cluster,
            &|op, now| {
                let running = |n: &str| now.nodes.iter().any(|x| x.name == n && x.running);
                match op {
                    Op::MoveMaster { .. } | Op::SyncQueue { .. } => false,
                    Op::DeclareQueue { node, members, .. } => {
                        running(node) && members.iter().all(|m| running(m))
                    }
                    Op::AddMember { node, .. } => running(node),
                    _ => true,
                }
            },
            false,
        )
    }

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

    /// The cluster's resources: what a fresh reading shows is left to do, the
    /// operations `keep` lets through, then (with `read_back`) the placement read
    /// back.
    fn cluster_ops(
        &mut self,
        b: Broker,
        keep: &dyn Fn(&Op, &facts::ClusterFacts) -> bool,
        read_back: bool,
    ) -> Result<()> {
        let inv = self.inv;
        let ci = inv.broker_host(b);
        let (port, creds) = facts::node_api(&mut *self.conns[ci], inv, ci)?;
        let central = inv.hosts[ci].name.clone();
        let now = facts::gather_cluster(&mut *self.conns[ci], port, &creds)?;
        // The plan said what to make sure of; what is left to do is read now.
        let fresh = cplan::plan(inv, b, &Ok(now.clone()));
        if let ClusterPlan::Known { blockers, .. } = &fresh {
            if let Some(b) = blockers.first() {
                bail!("{b}");
            }
        }
        let vh = enc(&inv.cluster.vhost);
        for ch in fresh.changes().iter().filter(|ch| keep(&ch.op, &now)) {
            crate::interrupt::checkpoint()?;
            let t = &mut *self.conns[ci];
            match &ch.op {
                Op::PutVhost(v) => api::send(
                    t,
                    port,
                    &creds,
                    "PUT",
                    &format!("/api/vhosts/{}", enc(v)),
                    &json!({}),
                )?,
                Op::PutUser { name, tags } => {
                    let pw = inv
                        .password_of(name)
                        .map_err(|e| anyhow!("user {name}: {e}"))?;
                    api::send(
                        t,
                        port,
                        &creds,
                        "PUT",
                        &format!("/api/users/{}", enc(name)),
                        &json!({"password": pw.expose(), "tags": tags.join(",")}),
                    )?
                }
                Op::PutPermission(p) => api::send(
                    t,
                    port,
                    &creds,
                    "PUT",
                    &format!("/api/permissions/{}/{}", enc(&p.vhost), enc(&p.user)),
                    &json!({"configure": p.configure, "write": p.write, "read": p.read}),
                )?,
                Op::PutPolicy(p) => api::send(
                    t,
                    port,
                    &creds,
                    "PUT",
                    &format!("/api/policies/{}/{}", enc(&p.vhost), enc(&p.name)),
                    &json!({"pattern": p.pattern, "definition": p.definition, "priority": p.priority, "apply-to": p.apply_to}),
                )?,
                Op::PutExchange(e) => api::send(
                    t,
                    port,
                    &creds,
                    "PUT",
                    &format!("/api/exchanges/{vh}/{}", enc(&e.name)),
                    &json!({"type": e.kind, "durable": e.durable, "auto_delete": e.auto_delete, "internal": e.internal, "arguments": e.arguments}),
                )?,
                Op::DeclareQueue { def, node, members } => {
                    api::send(
                        t,
                        port,
                        &creds,
                        "PUT",
                        &format!("/api/queues/{vh}/{}", enc(&def.name)),
                        &json!({"durable": def.durable, "auto_delete": def.auto_delete, "arguments": def.arguments, "node": node}),
                    )?;
                    if !members.is_empty() {
                        self.fix_members(ci, port, &creds, &def.name, members)?;
                    }
                }
                Op::PutBinding(b) => api::send(
                    t,
                    port,
                    &creds,
                    "POST",
                    &format!(
                        "/api/bindings/{vh}/e/{}/q/{}",
                        enc(&b.source),
                        enc(&b.destination)
                    ),
                    &json!({"routing_key": b.routing_key, "arguments": b.arguments}),
                )?,
                Op::PutParameter(p) => {
                    let pw = inv.sites[p.site]
                        .link_password
                        .as_ref()
                        .ok_or_else(|| anyhow!("site {}: no link_password", p.name))?
                        .read_or_create_random()
                        .map_err(|e| anyhow!("{}: link_password: {e}", p.name))?;
                    api::send(
                        t,
                        port,
                        &creds,
                        "PUT",
                        &format!("/api/parameters/{}/{vh}/{}", p.component, enc(&p.name)),
                        &json!({"component": p.component, "vhost": p.vhost, "name": p.name, "value": p.with_password(pw.expose())}),
                    )?
                }
                Op::DeleteParameter { component, name } => api::delete(
                    t,
                    port,
                    &creds,
                    &format!("/api/parameters/{component}/{vh}/{}", enc(name)),
                )?,
                Op::AddMember { queue, node } => self.member(ci, queue, node, true)?,
                Op::DeleteMember { queue, node } => self.member(ci, queue, node, false)?,
                Op::MoveMaster { queue, to, .. } => {
                    self.move_master(ci, port, &creds, queue, to)?
                }
                Op::DeleteUser { name } => {
                    api::delete(t, port, &creds, &format!("/api/users/{}", enc(name)))?
                }
                Op::DeletePolicy { name } => api::delete(
                    t,
                    port,
                    &creds,
                    &format!("/api/policies/{vh}/{}", enc(name)),
                )?,
                Op::DeleteQueue { name, if_empty } => {
                    let path = format!("/api/queues/{vh}/{}", enc(name));
                    if !*if_empty {
                        api::delete(t, port, &creds, &path)?
                    } else if !api::delete_if_empty(t, port, &creds, &path)? {
                        bail!(
                            "queue {name} took messages since the plan, so warren left it: rerun to see what to do with them"
                        )
                    }
                }
                Op::DeleteExchange { name } => api::delete(
                    t,
                    port,
                    &creds,
                    &format!("/api/exchanges/{vh}/{}", enc(name)),
                )?,
                Op::SyncQueue { queue } => api::send(
                    t,
                    port,
                    &creds,
                    "POST",
                    &format!("/api/queues/{vh}/{}/actions", enc(queue)),
                    &json!({"action": "sync"}),
                )?,
                Op::MigrateQueue {
                    def,
                    node,
                    members,
                    exchange,
                    routing_key,
                    mirror_policy,
                } => self.migrate(
                    ci,
                    port,
                    &creds,
                    &Migration {
                        def,
                        node,
                        members,
                        exchange,
                        routing_key,
                        mirror_policy,
                    },
                )?,
            }
            self.report.get_mut().unwrap().cluster_changes += 1;
            let what = format!(
                "{} {} {}: {}",
                ch.action.symbol(),
                ch.resource.label(),
                ch.name,
                ch.detail
            );
            self.did(&central, what);
        }
        if !read_back {
            return Ok(());
        }
        // The credentials that work now: guest may be gone.
        let (ci, port, creds) = self.api()?;
        self.await_placement(ci, port, &creds)
    }

    /// Moves a classic queue's master to `to`, RabbitMQ's way: a policy of higher
    /// priority that lists only `to` makes RabbitMQ promote the synchronised copy
    /// there (it never drops a master without a synchronised copy); then the
    /// temporary policy goes and the queue's own policy adds its mirrors back.
    fn move_master(
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

    /// Migrates a site's classic queue to a quorum queue of the same name, from
    /// wherever the cluster is now (every step checks first, so a rerun after an
    /// interruption goes on). Messages only ever move by a shovel that acknowledges
    /// each one after the destination confirmed it, and a queue is deleted only
    /// when RabbitMQ finds it empty; while the exchange is switched from one queue
    /// to the next both are bound for a moment, so a message published then may
    /// arrive twice, never not at all.
    fn migrate(&mut self, ci: usize, port: u16, creds: &Credentials, m: &Migration) -> Result<()> {
        let inv = self.inv;
        let central = inv.hosts[ci].name.clone();
        let vh = enc(&inv.cluster.vhost);
        let q = &m.def.name;
        let temp = cplan::migration_queue(q);
        let queue = |ex: &mut Self, name: &str| -> Result<Option<api::QueueInfo>> {
            api::get_opt(
                &mut *ex.conns[ci],
                port,
                creds,
                &format!("/api/queues/{vh}/{}", enc(name)),
            )
        };
        let old = queue(self, q)?.filter(|x| x.kind == "classic");
        if old.is_some() {
            self.progress.host(
                &central,
                &format!("migrating {q}: 1/3 {temp} takes {}'s messages", m.exchange),
            );
            api::send(
                &mut *self.conns[ci],
                port,
                creds,
                "PUT",
                &format!("/api/queues/{vh}/{}", enc(&temp)),
                &json!({"durable": true, "auto_delete": false, "arguments": {"x-queue-type": "quorum"}, "node": m.node}),
            )?;
            self.rebind(ci, port, creds, m.exchange, m.routing_key, &temp, q)?;
            self.progress.host(
                &central,
                &format!("migrating {q}: 2/3 draining {q} into {temp} ..."),
            );
            self.drain(ci, port, creds, q, &temp)?;
        }
        if queue(self, q)?.is_none() {
            self.progress.host(
                &central,
                &format!(
                    "migrating {q}: 3/3 {q} declared as a quorum queue on {}",
                    m.node
                ),
            );
            api::send(
                &mut *self.conns[ci],
                port,
                creds,
                "PUT",
                &format!("/api/queues/{vh}/{}", enc(q)),
                &json!({"durable": m.def.durable, "auto_delete": m.def.auto_delete, "arguments": m.def.arguments, "node": m.node}),
            )?;
            self.fix_members(ci, port, creds, q, m.members)?;
        }
        if queue(self, &temp)?.is_some() {
            self.progress.host(
                &central,
                &format!("migrating {q}: 3/3 draining {temp} into {q} ..."),
            );
            self.rebind(ci, port, creds, m.exchange, m.routing_key, q, &temp)?;
            self.drain(ci, port, creds, &temp, q)?;
        }
        api::delete(
            &mut *self.conns[ci],
            port,
            creds,
            &format!("/api/policies/{vh}/{}", enc(m.mirror_policy)),
        )
    }

    /// Binds `exchange` to `to`, then unbinds it from `from` (in that order: a
    /// message published in between goes to both, none to neither).
    #[allow(clippy::too_many_arguments)]
    fn rebind(
        &mut self,
        ci: usize,
        port: u16,
        creds: &Credentials,
        exchange: &str,
        routing_key: &str,
        to: &str,
        from: &str,
    ) -> Result<()> {
        let vh = enc(&self.inv.cluster.vhost);
        let t = &mut *self.conns[ci];
        api::send(
            t,
            port,
            creds,
            "POST",
            &format!("/api/bindings/{vh}/e/{}/q/{}", enc(exchange), enc(to)),
            &json!({"routing_key": routing_key, "arguments": {}}),
        )?;
        let path = format!("/api/bindings/{vh}/e/{}/q/{}", enc(exchange), enc(from));
        let bound: Vec<api::BindingKey> = api::get(t, port, creds, &path)?;
        for b in bound {
            api::delete(
                t,
                port,
                creds,
                &format!("{path}/{}", enc(&b.properties_key)),
            )?;
        }
        Ok(())
    }

    /// Moves every message of `from` into `to` with a dynamic shovel (on-confirm),
    /// then deletes `from` once RabbitMQ finds it empty. Nothing routes to `from`
    /// any more when this runs.
    fn drain(
        &mut self,
        ci: usize,
        port: u16,
        creds: &Credentials,
        from: &str,
        to: &str,
    ) -> Result<()> {
        let vh = enc(&self.inv.cluster.vhost);
        let shovel = format!(
            "/api/parameters/shovel/{vh}/{}",
            enc(&cplan::migration_shovel(from))
        );
        let local = format!("amqp:///{vh}");
        let value = json!({"value": {
            "src-uri": local, "src-queue": from,
            "dest-uri": local, "dest-queue": to,
            "ack-mode": "on-confirm", "src-delete-after": "never",
            "reconnect-delay": 1
        }});
        api::send(&mut *self.conns[ci], port, creds, "PUT", &shovel, &value)?;
        let deadline = Instant::now() + Duration::from_secs(DRAIN_SECS);
        let qpath = format!("/api/queues/{vh}/{}", enc(from));
        loop {
            crate::interrupt::checkpoint()?;
            let q: Option<api::QueueInfo> =
                api::get_opt(&mut *self.conns[ci], port, creds, &qpath)?;
            let Some(q) = q else { break };
            // Empty by its statistics (ready and unacknowledged alike): stop the
            // shovel, which gives back whatever it holds unacknowledged, and ask
            // the queue itself for a message (statistics lag; a `get` does not).
            // Nothing routes to it any more, so empty now is empty for good. A
            // classic queue is deleted only if RabbitMQ finds it empty too (quorum
            // queues do not take that flag).
            if q.messages == Some(0) {
                api::delete(&mut *self.conns[ci], port, creds, &shovel)?;
                let got = api::call(
                    &mut *self.conns[ci],
                    port,
                    creds,
                    "POST",
                    &format!("{qpath}/get"),
                    &json!({"count": 1, "ackmode": "reject_requeue_true", "encoding": "auto"}),
                )?;
                if got.as_array().is_some_and(|a| a.is_empty()) {
                    if q.kind == "quorum" {
                        api::delete(&mut *self.conns[ci], port, creds, &qpath)?;
                        return Ok(());
                    }
                    if api::delete_if_empty(&mut *self.conns[ci], port, creds, &qpath)? {
                        return Ok(());
                    }
                }
                api::send(&mut *self.conns[ci], port, creds, "PUT", &shovel, &value)?;
            }
            if Instant::now() > deadline {
                bail!(
                    "queue {from} still holds {} message(s) after {DRAIN_SECS} s of draining into {to} (the shovel {} keeps going): rerun apply to go on",
                    q.messages.map(|n| n.to_string()).unwrap_or_else(|| "some".into()),
                    cplan::migration_shovel(from)
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        api::delete(&mut *self.conns[ci], port, creds, &shovel)
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

    fn member(&mut self, ci: usize, queue: &str, node: &str, add: bool) -> Result<()> {
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
    fn await_copies(&mut self) -> Result<()> {
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
    fn await_placement(&mut self, ci: usize, port: u16, creds: &Credentials) -> Result<()> {
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

#[cfg(test)]
mod transcripts;
