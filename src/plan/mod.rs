//! The plan: desired state (the render) minus actual state (the facts), as ordered
//! steps with reasons. `plan()` does no I/O; the executor runs exactly these steps.

pub mod backup;
pub mod balancer;
pub mod cluster;
pub mod departure;
pub mod upgrade;
pub mod view;

use crate::facts::{manager, Facts, FileState, HostFacts};
use crate::inventory::{Broker, Host, Inventory, JoinMethod, NodeType, Role, ServiceManager};
use crate::platform::Setting;
use crate::render::{Content, Effect, HostRender, Ownership, RenderedFile};
use crate::util::{file_name, sha256_hex};
pub use cluster::{ClusterPlan, Resource, ResourceChange};
pub use departure::Departure;

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

#[derive(Debug, Clone)]
pub struct Join {
    pub host: String,
    pub node: String,
    pub seed: String,
    pub method: JoinMethod,
    pub ram: bool,
    /// Why it joins ("standalone", "not running: checked when started").
    pub why: String,
}

/// A change warren will not make without `--force`, or cannot make at all.
#[derive(Debug, Clone)]
pub struct Blocker {
    pub host: String,
    pub message: String,
}

/// How a group of hosts goes through `apply`, and so why they may go together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveKind {
    /// Nodes that are down or coming up (an interrupted run leaves them so): brought
    /// up together, first, so that no restart ever takes a second node down. Nodes of
    /// a stopped cluster must start together anyway: each waits for its peers' tables.
    BringUp,
    /// Everything that needs no restart (files, host settings, leftovers, plugins
    /// started again): every host at once.
    NoRestart,
    /// The central node, on its own: the seed every other node joins must run first.
    Seed,
    /// Nodes that hold no messages and belong to no cluster (a fresh install, a node
    /// being added): nothing on them can be lost or disrupted, so their files,
    /// restarts and joins all run at once, against the running seed.
    Fresh,
    /// Linked sites' standalone brokers that restart: each is a broker of its own
    /// (its link buffers while it is down), so they restart side by side.
    Standalone,
    /// Members of the running cluster: one at a time, each after every queue copy is
    /// back, so that RabbitMQ can always promote a synchronised copy.
    Rolling,
    /// Nodes upgraded to the inventory's pinned versions: one at a time, sites first,
    /// each drained (maintenance mode) before it stops and revived after, its
    /// masters given back, every copy back before the next.
    Upgrade,
    /// Joins of nodes whose state could not be read as fresh (not running at plan
    /// time, or reset by --force): one at a time, membership read right before.
    Joins,
}

/// A group of hosts that `apply` takes through one kind of step.
#[derive(Debug, Clone)]
pub struct Wave {
    pub kind: WaveKind,
    /// Indexes into the inventory's hosts, in the order they start.
    pub hosts: Vec<usize>,
}

impl Wave {
    /// Whether the hosts of this wave run side by side.
    pub fn parallel(&self) -> bool {
        matches!(
            self.kind,
            WaveKind::BringUp | WaveKind::NoRestart | WaveKind::Fresh | WaveKind::Standalone
        )
    }

    /// Why these hosts go this way, for the plan.
    pub fn why(&self) -> &'static str {
        match self.kind {
            WaveKind::BringUp => "down or coming up: brought up together before anything restarts",
            WaveKind::NoRestart => "nothing they change needs a restart: all at once, before any restart",
            WaveKind::Seed => "the seed: it runs before any node joins it",
            WaveKind::Fresh => "no messages and in no cluster: files and restarts all at once (beside the seed's, when it restarts too), each joining the seed once it runs",
            WaveKind::Standalone => "linked sites' standalone brokers, no cluster members: restarted side by side (each link resumes when its ends are back)",
            WaveKind::Rolling => "members of the running cluster: one at a time, each after every queue copy is back",
            WaveKind::Upgrade => "upgraded one at a time, sites first and the central node last: each drained before it stops and revived after, its masters given back, every queue copy back before the next",
            WaveKind::Joins => "not read as fresh: joined one at a time, membership read right before",
        }
    }
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
    let joins = joins(inv, facts, opts, &mut blockers);
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
    let mut waves = waves(inv, facts, &hosts, &joins);
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

/// Running nodes their broker lists as in maintenance mode, with no upgrade of
/// their own to revive them: an upgrade that was interrupted after its drain. (3.10's
/// node list does not say; there a node's restart revives it, RabbitMQ's
/// `rabbit_maintenance:boot` step.)
fn mark_drained(inv: &Inventory, facts: &Facts, hosts: &mut [HostPlan]) {
    for (i, hp) in hosts.iter_mut().enumerate() {
        if hp.upgrade.is_some() || facts.hosts[i].node.state != crate::facts::NodeState::Running {
            continue;
        }
        let b = inv
            .sites
            .iter()
            .position(|s| s.host == i && s.linked())
            .map(Broker::Site)
            .unwrap_or(Broker::Cluster);
        if let Ok(cf) = facts.broker(b) {
            hp.revive = cf
                .nodes
                .iter()
                .any(|n| n.name == hp.node && n.being_drained);
        }
    }
}

/// Whether the facts show a node that nothing can be lost on: running, standalone (a
/// member of no cluster but its own) and holding no messages. Only such a node is
/// restarted and joined side by side with others.
pub fn is_fresh(f: &HostFacts) -> bool {
    f.node.state == crate::facts::NodeState::Running
        && f.node
            .membership
            .as_ref()
            .is_some_and(|m| m.nodes == [m.node.clone()])
        && f.node.messages == Some(0)
}

/// The waves: nodes down or coming up first, all at once; then every change that
/// needs no restart, on all hosts at once; then the seed alone when it is not yet a
/// member of a cluster with others; then every fresh node at once (files, restart,
/// join); then the running members that restart, one at a time; then the joins of
/// nodes that could not be read as fresh, one at a time.
fn waves(inv: &Inventory, facts: &Facts, hosts: &[HostPlan], joins: &[Join]) -> Vec<Wave> {
    let ci = inv.central_index();
    let joining = |i: usize| joins.iter().any(|j| j.host == inv.hosts[i].name);
    let central_alone = facts.hosts[ci]
        .node
        .membership
        .as_ref()
        .is_none_or(|m| m.nodes.iter().all(|n| *n == m.node));
    let mut by_kind: Vec<(WaveKind, Vec<usize>)> = [
        WaveKind::BringUp,
        WaveKind::NoRestart,
        WaveKind::Seed,
        WaveKind::Fresh,
        WaveKind::Standalone,
        WaveKind::Rolling,
        WaveKind::Upgrade,
        WaveKind::Joins,
    ]
    .into_iter()
    .map(|k| (k, Vec::new()))
    .collect();
    let mut put = |k: WaveKind, i: usize| {
        if let Some((_, v)) = by_kind.iter_mut().find(|(kind, _)| *kind == k) {
            v.push(i);
        }
    };
    for i in inv.central_first() {
        let (hp, f) = (&hosts[i], &facts.hosts[i]);
        let upgrading = hp.upgrade.is_some() && hp.service != Service::Start;
        let fresh = i != ci && joining(i) && is_fresh(f) && !upgrading;
        match hp.service {
            // A node that is down is upgraded before it starts; one that runs, in
            // the upgrade wave (its files written while it is stopped there).
            _ if upgrading => put(WaveKind::Upgrade, i),
            Service::Start | Service::AwaitBoot | Service::StartApp => put(WaveKind::BringUp, i),
            _ if fresh => put(WaveKind::Fresh, i),
            Service::Restart { .. } if i == ci && central_alone => put(WaveKind::Seed, i),
            Service::Restart { .. } if inv.is_linked(i) => put(WaveKind::Standalone, i),
            Service::Restart { .. } => put(WaveKind::Rolling, i),
            Service::Leave if hp.changes() => put(WaveKind::NoRestart, i),
            Service::Leave => {}
        }
        if joining(i) && !fresh {
            put(WaveKind::Joins, i);
        }
    }
    by_kind
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(kind, hosts)| Wave { kind, hosts })
        .collect()
}

/// A new cookie for more than one running member of the cluster: each node restarted
/// with it can no longer talk to those not restarted yet, so the cluster is split
/// until the last one has restarted. Refused unless `--allow-disruptive`.
fn disruptive_cookie(
    inv: &Inventory,
    facts: &Facts,
    hosts: &[HostPlan],
    opts: Options,
) -> Option<Blocker> {
    if opts.allow_disruptive {
        return None;
    }
    let seed = inv.central().node_name();
    let members: Vec<&str> = hosts
        .iter()
        .zip(&facts.hosts)
        .filter(|(_, f)| {
            f.running()
                && f.node
                    .membership
                    .as_ref()
                    .is_some_and(|m| m.nodes.contains(&seed))
        })
        .filter(|(hp, f)| {
            hp.files.iter().any(|c| {
                (c.content.is_secret() && c.effect == Effect::StopWriteStart && c.restarts)
                    || switches_tls_distribution(c, f)
            })
        })
        .map(|(hp, _)| hp.host.as_str())
        .collect();
    (members.len() > 1).then(|| Blocker {
        host: inv.central().name.clone(),
        message: format!(
            "the cookie or TLS distribution changes on {} running members ({}): each node restarted with the change cannot reach those not restarted yet, so the cluster stays split until the last restart; rerun with --allow-disruptive in a quiet hour",
            members.len(),
            members.join(", ")
        ),
    })
}

/// Whether writing `c` switches the node's distribution between plain TCP and TLS
/// (its environment file gains or loses `-proto_dist inet_tls`).
fn switches_tls_distribution(c: &FileChange, f: &HostFacts) -> bool {
    if c.effect == Effect::None || c.content.is_secret() {
        return false;
    }
    let tls = |b: &[u8]| String::from_utf8_lossy(b).contains("-proto_dist inet_tls");
    let now = match f.files.get(&c.path) {
        Some(FileState::Text { content, .. }) => tls(content),
        _ => false,
    };
    c.restarts && tls(c.content.bytes()) != now
}

/// Restarts that would hurt a running cluster, refused unless `--force`: the only disc
/// node of a cluster with RAM nodes (they keep no state of their own), and a node whose
/// restart takes a quorum queue below its majority (it stops taking messages until the
/// node is back). Restarts run one at a time, each after every copy is back, so one
/// node down at a time is what is weighed.
fn restart_refusals(facts: &Facts, hosts: &[HostPlan], blockers: &mut Vec<Blocker>) {
    for (hp, f) in hosts.iter().zip(&facts.hosts) {
        if !matches!(hp.service, Service::Restart { .. }) {
            continue;
        }
        let node = &hp.node;
        if let Some(m) = &f.node.membership {
            let disc: Vec<&String> = m.nodes.iter().filter(|n| !m.ram.contains(n)).collect();
            if m.nodes.len() > 1 && disc == [node] {
                blockers.push(Blocker {
                    host: hp.host.clone(),
                    message: format!(
                        "{node} is the cluster's only disc node: while it restarts the RAM nodes ({}) hold the cluster's state in memory only; make another node a disc node (node_type = \"disc\") first, or rerun with --force",
                        m.ram.join(", ")
                    ),
                });
            }
        }
        let Ok(cf) = &facts.cluster else { continue };
        for q in cf.queues.iter().filter(|q| q.members.contains(node)) {
            let majority = q.members.len() / 2 + 1;
            let online = q.online.iter().filter(|n| *n != node).count();
            if online < majority {
                blockers.push(Blocker {
                    host: hp.host.clone(),
                    message: format!(
                        "restarting {node} takes quorum queue {} below its majority ({online} of its {} members online, {majority} needed): it takes no messages until {node} is back; give it another member first, or rerun with --force in a quiet hour",
                        q.name,
                        q.members.len()
                    ),
                });
            }
        }
    }
}

/// The version in an OpenSSH for Windows banner (`SSH-2.0-OpenSSH_for_Windows_7.7`).
pub fn windows_openssh_version(banner: &str) -> Option<(u32, u32)> {
    let v = banner.split("OpenSSH_for_Windows_").nth(1)?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What the facts show about a host that the operator should hear of before apply.
fn host_warnings(h: &Host, f: &HostFacts, warnings: &mut Vec<String>, blockers: &mut Vec<Blocker>) {
    if h.transport == crate::inventory::TransportKind::Winrm && h.winrm.https && h.winrm.insecure {
        warnings.push(format!(
            "{}: WinRM over HTTPS without checking the listener's certificate (winrm.insecure_skip_verify = true): anyone in between can read the session, passwords included; give winrm.ca_file instead",
            h.name
        ));
    }
    if let Some(name) = &f.hostname {
        let short = name.split('.').next().unwrap_or(name);
        if !short.eq_ignore_ascii_case(&h.name) {
            warnings.push(format!(
                "{}: the host calls itself {name}, the inventory {}: node {} works only while every host resolves {} to {} (hosts_file = true does that); rename the host or its inventory entry to make them one",
                h.name, h.name, h.node_name(), h.name, h.address
            ));
        }
    }
    let Some(version) = f.server.as_deref().and_then(windows_openssh_version) else {
        return;
    };
    if version >= (7, 9) {
        return;
    }
    let banner = f.server.as_deref().unwrap_or("");
    match &f.ssh_shell {
        // Before 7.9 a DefaultShell other than cmd.exe gets commands quoted wrongly
        // (Win32-OpenSSH #1082, fixed in v7.9.0.0p1-Beta).
        Some(shell) if !shell.to_ascii_lowercase().ends_with("cmd.exe") => blockers.push(Blocker {
            host: h.name.clone(),
            message: format!(
                "{banner} with DefaultShell {shell}: OpenSSH for Windows before 7.9 mangles the quoting of commands run through another shell than cmd.exe (Win32-OpenSSH #1082); remove HKLM:\\SOFTWARE\\OpenSSH DefaultShell, or install the current Win32-OpenSSH release"
            ),
        }),
        _ => warnings.push(format!(
            "{}: {banner} is Windows Server 2019's own OpenSSH; warren works with it (commands through cmd.exe, files by SFTP in small writes), but it has known bugs fixed since (SFTP writes over 100 KB, Win32-OpenSSH #1395, fixed in 8.6; a DefaultShell other than cmd.exe, #1082): install the current Win32-OpenSSH release when you can",
            h.name
        )),
    }
}

fn host_plan(h: &Host, d: &HostRender, f: &HostFacts) -> HostPlan {
    let m = manager(h, f);
    let mut files = Vec::new();
    let mut unchanged = Vec::new();
    for rf in files_for(d, m) {
        match file_change(rf, crate::facts::file_state(f, rf)) {
            Some(c) => files.push(c),
            None => unchanged.push(format!("{}: already up to date", rf.path)),
        }
    }
    let mut settings = Vec::new();
    for s in &d.settings {
        let now = f.settings.get(&s.key);
        if now == Some(&s.value) {
            unchanged.push(format!("{}: already set", s.key));
        } else {
            settings.push(SettingChange {
                setting: s.clone(),
                now: now.cloned(),
            });
        }
    }
    let mut reasons: Vec<String> = Vec::new();
    for c in files.iter().filter(|c| c.restarts) {
        let r = format!("{} changed", file_name(&c.path));
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    // The service reads its environment at install only: reinstall it when that
    // changes, and when the last install was from another environment file (an
    // interrupted run wrote the file but did not reinstall).
    let mut reinstall: Vec<String> = files
        .iter()
        .filter(|c| c.restarts && c.effect == Effect::ReinstallService)
        .map(|c| format!("{} changed", file_name(&c.path)))
        .collect();
    for c in settings.iter().filter(|c| c.setting.reinstall) {
        reinstall.push(format!("{} changes", c.setting.key));
    }
    if let Some(want) = &d.service_stamp {
        let env_changes = files.iter().any(|c| c.effect == Effect::ReinstallService);
        match &f.service_stamp {
            _ if env_changes => {}
            None => reinstall.push("the service was not installed by warren".into()),
            Some(have) if have != want => reinstall
                .push("the service was installed from another rabbitmq-env-conf.bat".into()),
            Some(_) => {}
        }
    }
    for r in &reinstall {
        if !reasons.contains(r) {
            reasons.push(r.clone());
        }
    }
    use crate::facts::NodeState;
    let service = match f.node.state {
        NodeState::Stopped => Service::Start,
        _ if !reasons.is_empty() => Service::Restart {
            daemon_reload: files
                .iter()
                .any(|c| c.effect == Effect::DaemonReloadRestart),
            reasons,
        },
        NodeState::Booting => Service::AwaitBoot,
        NodeState::AppStopped => Service::StartApp,
        NodeState::Running => Service::Leave,
    };
    let start_plugins = if service == Service::Leave {
        f.stopped_plugins.clone()
    } else {
        Vec::new()
    };
    HostPlan {
        host: h.name.clone(),
        node: h.node_name(),
        manager: m,
        files,
        service,
        start_plugins,
        settings,
        reinstall,
        unchanged,
        leftovers: f.leftovers.clone(),
        upgrade: None,
        revive: false,
    }
}

/// Puts `block` (from its begin marker to its end marker) into `current`, replacing
/// the block already there or appending it.
pub fn merge_block(current: &str, block: &str, begin: &str, end: &str) -> String {
    // Keep the file's own line ending (CRLF in a Windows hosts file).
    let nl = if current.contains("\r\n") || (current.is_empty() && block.contains("\r\n")) {
        "\r\n"
    } else {
        "\n"
    };
    let lines: Vec<&str> = current.lines().collect();
    let start = lines.iter().position(|l| l.starts_with(begin));
    let stop = start.and_then(|s| {
        lines[s..]
            .iter()
            .position(|l| l.starts_with(end))
            .map(|e| s + e)
    });
    let block: Vec<&str> = block.trim_end_matches(['\r', '\n']).lines().collect();
    let block = block.join(nl);
    let mut out = String::new();
    match (start, stop) {
        (Some(s), Some(e)) => {
            for l in &lines[..s] {
                out.push_str(l);
                out.push_str(nl);
            }
            out.push_str(&block);
            out.push_str(nl);
            for l in &lines[e + 1..] {
                out.push_str(l);
                out.push_str(nl);
            }
        }
        _ => {
            out.push_str(current);
            if !current.is_empty() && !current.ends_with('\n') {
                out.push_str(nl);
            }
            out.push_str(&block);
            out.push_str(nl);
        }
    }
    out
}

/// Lines a running member does not need to reread: the peer-discovery node list is
/// read by a blank node at its first boot only.
fn restart_relevant(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("cluster_formation.classic_config.nodes.")
                && !t.starts_with("{cluster_nodes,")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn file_change(rf: &RenderedFile, current: &FileState) -> Option<FileChange> {
    let (cur_mode, cur_owner) = match current {
        FileState::Missing => (None, None),
        FileState::Text { mode, owner, .. } | FileState::Hash { mode, owner, .. } => {
            (Some(*mode), Some(owner.as_str()))
        }
    };
    let content = match (&rf.ownership, current) {
        (Ownership::Block { begin, end }, FileState::Text { content, .. }) => {
            Content::Text(merge_block(
                &String::from_utf8_lossy(content),
                &text_of(&rf.content),
                begin,
                end,
            ))
        }
        _ => rf.content.clone(),
    };
    let same_content = match current {
        FileState::Missing => false,
        FileState::Text { content: c, .. } => c.as_slice() == content.bytes(),
        FileState::Hash { sha256, .. } => *sha256 == sha256_hex(content.bytes()),
    };
    let same_meta = rf.mode.is_none_or(|m| cur_mode == Some(m))
        && rf.owner.as_deref().is_none_or(|o| cur_owner == Some(o));
    if same_content && same_meta {
        return None;
    }
    let action = if matches!(current, FileState::Missing) {
        Action::Create
    } else {
        Action::Update
    };
    let diff = if content.is_secret() {
        match current {
            FileState::Missing => "(sensitive value) will be written".to_string(),
            _ if same_content => "(sensitive value) unchanged; owner or mode corrected".to_string(),
            _ => "(sensitive value) changed".to_string(),
        }
    } else {
        let old = match current {
            FileState::Text { content, .. } => String::from_utf8_lossy(content).into_owned(),
            _ => String::new(),
        };
        let new = text_of(&content);
        let mut d = if same_content {
            String::new()
        } else {
            similar::TextDiff::from_lines(&old, &new)
                .unified_diff()
                .context_radius(2)
                .header(
                    &format!("{} (now)", rf.path),
                    &format!("{} (after apply)", rf.path),
                )
                .to_string()
        };
        if !same_meta && !matches!(current, FileState::Missing) {
            d.push_str(&format!(
                "owner/mode: {}:{:o} -> {}:{:o}\n",
                cur_owner.unwrap_or("-"),
                cur_mode.unwrap_or(0),
                rf.owner.as_deref().unwrap_or("-"),
                rf.mode.unwrap_or(0)
            ));
        }
        d
    };
    let (restarts, why) = match rf.effect {
        Effect::None => (false, "read when used; no restart".to_string()),
        Effect::ReloadBalancer => (
            false,
            "HAProxy reads it: reloaded once the cluster is done; RabbitMQ is not restarted"
                .to_string(),
        ),
        _ if same_content => (false, "owner or mode only; no restart".to_string()),
        Effect::Restart | Effect::DaemonReloadRestart | Effect::ReinstallService
            if !same_content && only_node_list_changed(current, &content) =>
        {
            (
                false,
                "only the peer-discovery node list changed, which a member never rereads; no restart"
                    .to_string(),
            )
        }
        Effect::Restart => (true, "RabbitMQ reads it at start: restart".to_string()),
        Effect::DaemonReloadRestart => (true, "systemd reads it: daemon-reload and restart".to_string()),
        Effect::ReinstallService => (true, "read at service install: reinstall the service".to_string()),
        Effect::StopWriteStart => (
            true,
            "the node and its CLI read it: stop RabbitMQ, write, start".to_string(),
        ),
    };
    Some(FileChange {
        path: rf.path.clone(),
        action,
        content,
        owner: rf.owner.clone(),
        mode: rf.mode,
        in_place: matches!(rf.ownership, Ownership::Block { .. }),
        diff,
        effect: rf.effect,
        restarts,
        why,
    })
}

fn only_node_list_changed(current: &FileState, new: &Content) -> bool {
    match current {
        FileState::Text { content, .. } => {
            restart_relevant(&String::from_utf8_lossy(content)) == restart_relevant(&text_of(new))
        }
        _ => false,
    }
}

fn text_of(c: &Content) -> String {
    String::from_utf8_lossy(c.bytes()).into_owned()
}

/// Why joining (which resets the node) would lose something, if it would: the node
/// belongs to another cluster, or its queues hold messages. Both need `--force`.
pub fn reset_refusal(m: &crate::facts::Membership, messages: u64) -> Option<String> {
    let others: Vec<&str> = m
        .nodes
        .iter()
        .filter(|n| **n != m.node)
        .map(String::as_str)
        .collect();
    if !others.is_empty() {
        Some(format!(
            "{} belongs to another cluster (with {}); warren does not reset a cluster member: remove it from that cluster, or rerun with --force to reset it",
            m.node,
            others.join(", ")
        ))
    } else if messages > 0 {
        Some(format!(
            "{} holds {messages} messages that joining would delete (join resets the node); drain them, or rerun with --force",
            m.node
        ))
    } else {
        None
    }
}

/// Which nodes join the seed (the central node), decided from RabbitMQ's node lists.
fn joins(inv: &Inventory, facts: &Facts, opts: Options, blockers: &mut Vec<Blocker>) -> Vec<Join> {
    let central = inv.central();
    let seed = central.node_name();
    let mut out = Vec::new();
    for (i, (h, f)) in inv.hosts.iter().zip(&facts.hosts).enumerate() {
        if h.role == Role::Central {
            continue;
        }
        if inv.is_linked(i) {
            // A linked site's broker stays standalone: one that is a member of a
            // cluster now is not taken out by warren (that resets it).
            if let Some(m) = f.node.membership.as_ref().filter(|m| m.nodes.len() > 1) {
                let link = inv.site_of(h).map(|s| s.link.as_str()).unwrap_or("");
                blockers.push(Blocker {
                    host: h.name.clone(),
                    message: format!(
                        "{} is a member of a cluster ({}), but the inventory links its site by {link} as a standalone broker: move its queues' messages away, take it out (rabbitmqctl stop_app, reset, start_app on {}), then rerun; or set link = \"cluster\"",
                        m.node,
                        m.nodes.join(", "),
                        h.name
                    ),
                });
            }
            continue;
        }
        let join = |why: String| Join {
            host: h.name.clone(),
            node: h.node_name(),
            seed: seed.clone(),
            method: inv.cluster.join,
            ram: h.node_type == NodeType::Ram,
            why,
        };
        let Some(m) = &f.node.membership else {
            out.push(join(
                "not answering as a member now: joins if it is not a member once started".into(),
            ));
            continue;
        };
        if m.nodes.contains(&seed) {
            continue;
        }
        let others = m.nodes.iter().any(|n| *n != m.node);
        if !opts.force {
            if let Some(message) = reset_refusal(m, f.node.messages.unwrap_or(0)) {
                blockers.push(Blocker {
                    host: h.name.clone(),
                    message,
                });
                continue;
            }
        }
        out.push(join(if !others {
            "standalone".to_string()
        } else {
            "in another cluster; reset by --force".to_string()
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_is_appended_then_replaced_in_place() {
        let begin = "# BEGIN warren cluster x";
        let end = "# END warren cluster x";
        let block = format!("{begin}: managed\n10.0.0.1 a\n{end}\n");
        let host = "127.0.0.1 localhost\n::1 localhost\n";
        let once = merge_block(host, &block, begin, end);
        assert_eq!(once, format!("{host}{block}"));
        assert_eq!(merge_block(&once, &block, begin, end), once);
        let block2 = format!("{begin}: managed\n10.0.0.1 a\n10.0.0.2 b\n{end}\n");
        let edited = format!("{once}10.9.9.9 mine\n");
        let twice = merge_block(&edited, &block2, begin, end);
        assert_eq!(twice, format!("{host}{block2}10.9.9.9 mine\n"));
    }

    #[test]
    fn a_windows_hosts_file_keeps_its_crlf() {
        let begin = "# BEGIN warren cluster x";
        let end = "# END warren cluster x";
        let block = format!("{begin}: managed\r\n10.0.0.1 a\r\n{end}\r\n");
        let host = "# Copyright\r\n127.0.0.1 localhost\r\n";
        let once = merge_block(host, &block, begin, end);
        assert_eq!(once, format!("{host}{block}"));
        assert_eq!(merge_block(&once, &block, begin, end), once);
    }

    #[test]
    fn node_list_lines_do_not_need_a_restart() {
        let a = "cluster_name = x\ncluster_formation.classic_config.nodes.1 = rabbit@a\n";
        let b = "cluster_name = x\ncluster_formation.classic_config.nodes.1 = rabbit@a\ncluster_formation.classic_config.nodes.2 = rabbit@b\n";
        assert_eq!(restart_relevant(a), restart_relevant(b));
        assert_ne!(restart_relevant(a), restart_relevant("cluster_name = y\n"));
    }
}
