//! The plan: desired state (the render) minus actual state (the facts), as ordered
//! steps with reasons. `plan()` does no I/O; the executor runs exactly these steps.
//! Here: the plan's types and `plan()`, which puts its parts together; a host's steps,
//! the waves, the joins, the refusals, the cluster's resources, the balancer, an
//! upgrade and a departure each have a file.

pub mod backup;
pub mod balancer;
pub mod cluster;
pub mod departure;
mod host;
mod joins;
mod refusals;
pub mod upgrade;
pub mod view;
mod waves;

use crate::facts::Facts;
use crate::inventory::{Broker, Inventory, ServiceManager};
use crate::platform::Setting;
use crate::render::{Content, Effect, HostRender, RenderedFile};
pub use cluster::{ClusterPlan, Resource, ResourceChange};
pub use departure::Departure;
use host::mark_drained;
pub use host::{host_plan, merge_block};
pub use joins::{reset_refusal, Join};
use refusals::{disruptive_cookie, restart_refusals};
pub use refusals::{host_warnings, windows_openssh_version};
pub use waves::{is_fresh, Wave, WaveKind};

/// What a step does, shown as a symbol: `+` create, `~` change, `-` remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
        }
    }
}

/// A file to write.
#[derive(Debug, Clone)]
pub struct FileChange {
    pub path: String,
    pub action: Action,
    /// The whole file as it will be written (for a block: the host's file with the
    /// block put in place).
    pub content: Content,
    pub owner: Option<String>,
    pub mode: Option<u32>,
    pub in_place: bool,
    /// A unified diff; for a secret only "(sensitive value) changed".
    pub diff: String,
    /// Why writing it does or does not need a restart.
    pub effect: Effect,
    pub restarts: bool,
    pub why: String,
}

/// Stopping and starting RabbitMQ on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// Running, and nothing it reads changed.
    Leave,
    /// Not running: start it (after writing files, if any).
    Start,
    /// Stop, write the files, (daemon-reload,) start.
    Restart {
        reasons: Vec<String>,
        daemon_reload: bool,
    },
    /// Still booting (a start an interrupted run began): wait for it, with a bound.
    AwaitBoot,
    /// The Erlang VM runs with the rabbit application stopped (a join interrupted
    /// between `stop_app` and `start_app`): `rabbitmqctl start_app`.
    StartApp,
}

impl HostPlan {
    /// Whether systemd must reread the unit before RabbitMQ starts: a drop-in is
    /// written, whether the node restarts or is down (a start without the reload
    /// would run the unit as it was, and systemd only warns).
    pub fn daemon_reload(&self) -> bool {
        self.files
            .iter()
            .any(|c| c.effect == Effect::DaemonReloadRestart)
    }
}

#[derive(Debug, Clone)]
pub struct HostPlan {
    pub host: String,
    pub node: String,
    pub manager: ServiceManager,
    pub files: Vec<FileChange>,
    pub service: Service,
    /// Declared plugins to start again on a node that keeps running (enabled, but
    /// stopped); a restart starts them anyway.
    pub start_plugins: Vec<String>,
    /// Host settings to make (Windows: RABBITMQ_BASE, firewall rules), before the
    /// files and the service.
    pub settings: Vec<SettingChange>,
    /// Why the service is reinstalled (stop, remove, install, start) instead of
    /// started: it reads its environment only when installed. Empty: no reinstall.
    pub reinstall: Vec<String>,
    /// Every no-op with its reason, e.g. "rabbitmq.conf: already up to date".
    pub unchanged: Vec<String>,
    /// Temporary files an interrupted upload left, deleted first.
    pub leftovers: Vec<String>,
    /// The node's upgrade to the inventory's pinned versions, in the upgrade wave
    /// (or, for a node that is down, before it starts).
    pub upgrade: Option<upgrade::NodeUpgrade>,
    /// The node is in maintenance mode (an upgrade interrupted between its drain and
    /// its revive): revive it.
    pub revive: bool,
}

/// A host setting that differs.
#[derive(Debug, Clone)]
pub struct SettingChange {
    pub setting: Setting,
    /// The value now; `None` when it is not set at all.
    pub now: Option<String>,
}

impl HostPlan {
    pub fn changes(&self) -> bool {
        !self.files.is_empty()
            || !self.leftovers.is_empty()
            || self.service != Service::Leave
            || !self.start_plugins.is_empty()
            || !self.settings.is_empty()
            || self.upgrade.is_some()
            || self.revive
    }
}

/// A change warren will not make without `--force`, or cannot make at all.
#[derive(Debug, Clone)]
pub struct Blocker {
    pub host: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub cluster_name: String,
    pub hosts: Vec<HostPlan>,
    pub joins: Vec<Join>,
    /// The order `apply` takes the hosts in: waves, each parallel or one at a time.
    pub waves: Vec<Wave>,
    /// Nodes the inventory no longer lists, removed first.
    pub departures: Vec<Departure>,
    pub cluster: ClusterPlan,
    /// Each linked site's standalone broker: its exchange, queue, users and link.
    pub links: Vec<LinkPlan>,
    pub blockers: Vec<Blocker>,
    /// What an operator should know before applying, that does not stop it.
    pub warnings: Vec<String>,
    /// HAProxy on the `[load_balancer]` host, started or reloaded last.
    pub balancer: Option<balancer::BalancerPlan>,
    /// The rolling upgrade to the inventory's pinned versions.
    pub upgrade: upgrade::UpgradePlan,
}

/// The plan for a linked site's standalone broker.
#[derive(Debug, Clone)]
pub struct LinkPlan {
    /// Index into `Inventory::sites`.
    pub site: usize,
    pub host: String,
    pub plan: ClusterPlan,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.hosts.iter().any(HostPlan::changes)
            || !self.joins.is_empty()
            || !self.departures.is_empty()
            || self.cluster.has_changes()
            || self.links.iter().any(|l| l.plan.has_changes())
            || self
                .balancer
                .as_ref()
                .is_some_and(|b| b.action != balancer::Action::Leave)
            || self.upgrade.has_changes()
    }
    pub fn restarts(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| matches!(h.service, Service::Restart { .. }))
            .count()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Allow resetting nodes that are in another cluster or hold messages, restarting
    /// the only disc node, and restarts that take a quorum queue below its majority.
    pub force: bool,
    /// Allow a change that disrupts the whole cluster at once (a new cookie on
    /// every member).
    pub allow_disruptive: bool,
}

/// The desired files of a host, as its service manager needs them (no systemd
/// drop-in where systemd does not run RabbitMQ).
pub fn files_for(r: &HostRender, m: ServiceManager) -> impl Iterator<Item = &RenderedFile> {
    r.files
        .iter()
        .filter(move |f| f.effect != Effect::DaemonReloadRestart || m == ServiceManager::Systemd)
}

pub fn plan(inv: &Inventory, desired: &[HostRender], facts: &Facts, opts: Options) -> Plan {
    let mut blockers = Vec::new();
    let mut hosts: Vec<HostPlan> = inv
        .hosts
        .iter()
        .zip(desired)
        .zip(&facts.hosts)
        .map(|((h, d), f)| host_plan(h, d, f))
        .collect();
    let mut warnings = Vec::new();
    let upgrade = upgrade::plan(inv, facts, &mut hosts, &mut blockers, &mut warnings);
    mark_drained(inv, facts, &mut hosts);
    let joins = joins::joins(inv, facts, opts, &mut blockers);
    let departures = departure::departures(inv, facts, opts.force, &mut blockers);
    if let Some(b) = disruptive_cookie(inv, facts, &hosts, opts) {
        blockers.push(b);
    }
    if !opts.force {
        restart_refusals(facts, &hosts, &mut blockers);
    }
    let cluster = cluster::plan(inv, Broker::Cluster, &facts.cluster);
    let links = inv
        .brokers()
        .into_iter()
        .filter_map(|b| match b {
            Broker::Site(si) => Some(LinkPlan {
                site: si,
                host: inv.hosts[inv.sites[si].host].name.clone(),
                plan: cluster::plan(inv, b, facts.broker(b)),
            }),
            Broker::Cluster => None,
        })
        .collect();
    for (h, f) in inv.hosts.iter().zip(&facts.hosts) {
        host_warnings(h, f, &mut warnings, &mut blockers);
    }
    let balancer = balancer::plan(inv, &hosts, facts.balancer.as_ref(), &mut blockers);
    let mut waves = waves::waves(inv, facts, &hosts, &joins);
    for w in waves.iter_mut().filter(|w| w.kind == WaveKind::Upgrade) {
        // The upgrade's own order: sites first, the central node last.
        w.hosts
            .sort_by_key(|i| upgrade.order.iter().position(|x| x == i));
    }
    Plan {
        cluster_name: inv.cluster.name.clone(),
        hosts,
        joins,
        waves,
        departures,
        cluster,
        links,
        blockers,
        warnings,
        balancer,
        upgrade,
    }
}
