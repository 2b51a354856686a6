//! Rolling upgrades: where a host's installed RabbitMQ or Erlang differs from the
//! version the inventory pins, an upgrade of that node, one node at a time, each
//! checked first against RabbitMQ's upgrade rules (`crate::versions`): no skipped
//! release series, no downgrade, an Erlang the target runs on, every stable feature
//! flag enabled before a new series; then, after the last node, every stable feature
//! flag enabled. Pure, like the rest of the plan.

use super::{Blocker, HostPlan, Service};
use crate::facts::{ClusterFacts, Facts, HostFacts, NodeState, Unreadable};
use crate::inventory::{Broker, Host, Inventory, Os, Role};
use crate::platform::Install;
use crate::versions::{self, debian_cmp, debian_upstream, Path, Version};

/// One node's upgrade: what it runs now, what it will run, what is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUpgrade {
    /// `RabbitMQ 3.10.8 -> 3.11.28`, `Erlang 25.2.3 (1:25.2.3+dfsg-1+deb12u4) -> ...`:
    /// one line per component that changes, for the plan.
    pub changes: Vec<String>,
    /// What is installed while the node is stopped; empty when the packages are in
    /// place already and only the node still runs the old version (an interrupted
    /// run): then a restart finishes it.
    pub install: Install,
    /// Whether this step takes the node to a new release series (the feature flag
    /// check was made for it).
    pub new_series: bool,
}

/// The cluster's upgrade as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradePlan {
    /// The hosts to upgrade, in the order apply takes them (one at a time).
    pub order: Vec<usize>,
    /// The brokers (the cluster, linked sites) whose stable feature flags are enabled
    /// once every node runs its new version: each by its host's index.
    pub enable_flags: Vec<usize>,
    /// Why each broker's flags are enabled (for the plan), parallel to `enable_flags`.
    pub flag_reasons: Vec<String>,
    /// Nodes already at the pinned version while others are not: an interrupted run.
    pub resumed: Vec<String>,
}

impl UpgradePlan {
    pub fn has_changes(&self) -> bool {
        !self.order.is_empty() || !self.enable_flags.is_empty()
    }
}

/// What a host runs and has installed, as its facts show it.
struct Installed {
    /// RabbitMQ's version as installed (the package's upstream version, the
    /// installer's), else as the running node reports it.
    rabbitmq: Option<Version>,
    erlang: Option<Version>,
    /// The package versions (Linux), for comparing with the inventory's.
    rabbitmq_package: Option<String>,
    erlang_package: Option<String>,
    /// The running node's own versions.
    running_rabbitmq: Option<Version>,
    running_erlang: Option<Version>,
}

fn installed(h: &Host, f: &HostFacts) -> Installed {
    let parse = |v: Option<&String>| v.and_then(|v| Version::parse(v));
    let (rp, ep) = match h.os {
        Os::Linux => (
            f.packages.get("rabbitmq-server").cloned(),
            f.packages.get("erlang-base").cloned(),
        ),
        Os::Windows => (None, None),
    };
    let (r, e) = match h.os {
        Os::Linux => (
            rp.as_deref()
                .and_then(|v| Version::parse(debian_upstream(v))),
            ep.as_deref()
                .and_then(|v| Version::parse(debian_upstream(v))),
        ),
        Os::Windows => (
            parse(f.packages.get("rabbitmq")),
            parse(f.packages.get("erlang")),
        ),
    };
    let running_rabbitmq = parse(f.node.rabbitmq_version.as_ref());
    let running_erlang = parse(f.node.erlang_version.as_ref());
    Installed {
        rabbitmq: r.or_else(|| running_rabbitmq.clone()),
        erlang: e.or_else(|| running_erlang.clone()),
        rabbitmq_package: rp,
        erlang_package: ep,
        running_rabbitmq,
        running_erlang,
    }
}

/// Whether `have` is the pinned `want` (a pin of fewer parts, `25.2`, takes any
/// `25.2.x`).
fn matches(have: &Version, want: &Version) -> bool {
    have.0.len() >= want.0.len() && have.0[..want.0.len()] == want.0[..]
}

/// Every node's upgrade, the order, the refusals and the feature-flag step. Sets
/// `upgrade` on the host plans it concerns.
pub fn plan(
    inv: &Inventory,
    facts: &Facts,
    hosts: &mut [HostPlan],
    blockers: &mut Vec<Blocker>,
    warnings: &mut Vec<String>,
) -> UpgradePlan {
    let mut out = UpgradePlan::default();
    let mut at_target = Vec::new();
    // Sites in the inventory's order, the central node last: each site's drain hands
    // its masters to their mirror on the central node, which keeps the old version
    // (and warren's reading of the cluster) steady until the sites are done.
    let mut order: Vec<usize> = (0..inv.hosts.len())
        .filter(|&i| inv.hosts[i].role != Role::Central)
        .collect();
    order.push(inv.central_index());
    for i in order {
        let h = &inv.hosts[i];
        let f = &facts.hosts[i];
        if !h.versions.pinned() {
            continue;
        }
        match node_upgrade(inv, i, h, f, facts, blockers) {
            Some(up) => {
                match f.node.state {
                    NodeState::Booting | NodeState::AppStopped => {
                        warnings.push(format!(
                            "{}: {} is not fully up, so it is brought up first and upgraded ({}) by the next run",
                            h.name,
                            h.node_name(),
                            up.changes.join(", ")
                        ));
                        continue;
                    }
                    _ => {}
                }
                hosts[i].upgrade = Some(up);
                out.order.push(i);
            }
            None => at_target.push(h.node_name()),
        }
    }
    if !out.order.is_empty() && !at_target.is_empty() {
        // Some nodes run the pinned version and others not: an interrupted upgrade,
        // or a node added on the new version.
        out.resumed = at_target;
    }
    // After the last node: every stable flag, on each broker whose nodes are
    // upgraded now, or (an interrupted run, or an upgrade made by hand) whose
    // pinned versions run everywhere while a stable flag is still disabled.
    for b in inv.brokers() {
        let bh = inv.broker_host(b);
        let members: Vec<usize> = (0..inv.hosts.len())
            .filter(|&i| match b {
                Broker::Cluster => inv.is_member(i),
                Broker::Site(si) => inv.sites[si].host == i,
            })
            .collect();
        if !members.iter().any(|&i| inv.hosts[i].versions.pinned()) {
            continue;
        }
        let upgrading = members.iter().any(|i| out.order.contains(i));
        let disabled = match facts.broker(b) {
            Ok(cf) => disabled_flags(cf),
            Err(_) => Vec::new(),
        };
        if upgrading {
            out.enable_flags.push(bh);
            out.flag_reasons
                .push("after the last node's upgrade, as RabbitMQ's upgrade guide asks".into());
        } else if !disabled.is_empty() {
            out.enable_flags.push(bh);
            out.flag_reasons.push(format!(
                "every node runs its pinned version, and {} {} disabled",
                disabled.join(", "),
                if disabled.len() == 1 { "is" } else { "are" }
            ));
        }
    }
    out
}

/// The stable feature flags a broker has disabled (not `unavailable`: a flag some
/// node does not know yet, in a mixed-version cluster, cannot be enabled).
pub fn disabled_flags(cf: &ClusterFacts) -> Vec<String> {
    cf.feature_flags
        .iter()
        .filter(|f| f.stability != "experimental" && f.state == "disabled")
        .map(|f| f.name.clone())
        .collect()
}

/// The upgrade host `i` needs, if any, with every refusal RabbitMQ's rules make
/// pushed to `blockers`.
fn node_upgrade(
    inv: &Inventory,
    i: usize,
    h: &Host,
    f: &HostFacts,
    facts: &Facts,
    blockers: &mut Vec<Blocker>,
) -> Option<NodeUpgrade> {
    let v = &h.versions;
    let have = installed(h, f);
    let block = |blockers: &mut Vec<Blocker>, message: String| {
        blockers.push(Blocker {
            host: h.name.clone(),
            message,
        })
    };
    let mut install = Install::default();
    let mut changes = Vec::new();
    // RabbitMQ.
    let mut target_r = have.rabbitmq.clone();
    if let Some(want) = &v.rabbitmq {
        let Some(now) = &have.rabbitmq else {
            block(
                blockers,
                format!(
                    "cannot read which RabbitMQ version {} has installed ({}), so the pinned {want} cannot be checked; install RabbitMQ from its package or installer, then rerun",
                    h.name,
                    match h.os {
                        Os::Linux => "dpkg lists no rabbitmq-server and the node does not answer",
                        Os::Windows => "no RabbitMQ entry under the registry's Uninstall keys",
                    }
                ),
            );
            return None;
        };
        let package_differs = match (&v.rabbitmq_package, &have.rabbitmq_package) {
            (Some(p), Some(q)) => p != q,
            _ => false,
        };
        if !matches(now, want) || package_differs {
            match h.os {
                Os::Linux => match &v.rabbitmq_package {
                    Some(p) => install.rabbitmq = Some(p.clone()),
                    None => {
                        block(blockers, format!(
                            "{} has RabbitMQ {now} and the inventory pins {want}: name apt's package version to install with rabbitmq_package (`apt-cache policy rabbitmq-server` on {} lists them)",
                            h.name, h.name
                        ));
                        return None;
                    }
                },
                Os::Windows => match &v.rabbitmq_installer {
                    Some(p) => install.rabbitmq = Some(p.clone()),
                    None => {
                        block(blockers, format!(
                            "{} has RabbitMQ {now} and the inventory pins {want}: name the installer (a path on the host or a URL) with rabbitmq_installer",
                            h.name
                        ));
                        return None;
                    }
                },
            }
            changes.push(format!(
                "RabbitMQ {}{} -> {want}{}",
                now,
                have.rabbitmq_package
                    .as_ref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default(),
                v.rabbitmq_package
                    .as_ref()
                    .filter(|_| h.os == Os::Linux)
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ));
        } else if have
            .running_rabbitmq
            .as_ref()
            .is_some_and(|r| !matches(r, want))
        {
            // Installed, but the node still runs the old version: a run that was
            // interrupted after the install.
            changes.push(format!(
                "RabbitMQ {} -> {want} (installed already; the node still runs the old version)",
                have.running_rabbitmq
                    .as_ref()
                    .map(Version::to_string)
                    .unwrap_or_default()
            ));
        }
        target_r = Some(want.clone());
    }
    // Erlang.
    let mut target_e = have.erlang.clone();
    if let Some(want) = &v.erlang {
        let now = have.erlang.clone();
        let package_differs = match (&v.erlang_package, &have.erlang_package) {
            (Some(p), Some(q)) => p != q,
            _ => false,
        };
        let differs = now.as_ref().is_none_or(|n| !matches(n, want)) || package_differs;
        if differs {
            let source = match h.os {
                Os::Linux => v.erlang_package.clone(),
                Os::Windows => v.erlang_installer.clone(),
            };
            let Some(source) = source else {
                let (key, how) = match h.os {
                    Os::Linux => (
                        "erlang_package",
                        "apt's version of erlang-base (`apt-cache policy erlang-base` lists them)",
                    ),
                    Os::Windows => (
                        "erlang_installer",
                        "the Erlang/OTP installer (a path on the host or a URL)",
                    ),
                };
                block(
                    blockers,
                    format!(
                        "{} has Erlang {} and the inventory pins {want}: name {how} with {key}",
                        h.name,
                        now.as_ref()
                            .map(Version::to_string)
                            .unwrap_or_else(|| "(not read)".into())
                    ),
                );
                return None;
            };
            if let (Some(p), Some(q)) = (&v.erlang_package, &have.erlang_package) {
                if debian_cmp(p, q).is_lt() {
                    // Not forbidden (the Erlang version stays in range, checked
                    // below), but worth seeing.
                    changes.push(format!("Erlang package {q} -> {p} (an older package)"));
                } else {
                    changes.push(format!(
                        "Erlang {} ({q}) -> {want} ({p})",
                        now.clone().map(|n| n.to_string()).unwrap_or_default()
                    ));
                }
            } else {
                changes.push(format!(
                    "Erlang {} -> {want}",
                    now.as_ref()
                        .map(Version::to_string)
                        .unwrap_or_else(|| "(not read)".into())
                ));
            }
            install.erlang = Some(source);
        } else if have
            .running_erlang
            .as_ref()
            .is_some_and(|r| !matches(r, want))
        {
            changes.push(format!(
                "Erlang {} -> {want} (installed already; the node still runs the old version)",
                have.running_erlang
                    .as_ref()
                    .map(Version::to_string)
                    .unwrap_or_default()
            ));
        }
        target_e = Some(want.clone());
    }
    if changes.is_empty() {
        return None;
    }
    // The checks, before anything: the series path, the feature flags, Erlang.
    let mut new_series = false;
    if let (Some(from), Some(to)) = (
        have.running_rabbitmq.as_ref().or(have.rabbitmq.as_ref()),
        &target_r,
    ) {
        match versions::upgrade_path(from, to) {
            Path::Refused(why) => {
                block(blockers, format!("{}: {why}", h.node_name()));
                return None;
            }
            Path::NextSeries => {
                new_series = true;
                let b = if inv.is_linked(i) {
                    inv.sites
                        .iter()
                        .position(|s| s.host == i)
                        .map(Broker::Site)
                        .unwrap_or(Broker::Cluster)
                } else {
                    Broker::Cluster
                };
                match facts.broker(b) {
                    Ok(cf) => {
                        let off = disabled_flags(cf);
                        if !off.is_empty() {
                            block(blockers, format!(
                                "{} -> RabbitMQ {to}: every stable feature flag must be enabled before a new release series (RabbitMQ's upgrade guide), and {} {} not; run `rabbitmqctl enable_feature_flag all` on {} (warren does it after every upgrade), then rerun",
                                h.node_name(),
                                off.join(", "),
                                if off.len() == 1 { "is" } else { "are" },
                                inv.hosts[inv.broker_host(b)].name
                            ));
                            return None;
                        }
                    }
                    Err(Unreadable(why)) => {
                        block(blockers, format!(
                            "{} -> RabbitMQ {to} needs every stable feature flag enabled first, and they cannot be read ({why}); rerun once the cluster answers",
                            h.node_name()
                        ));
                        return None;
                    }
                }
            }
            Path::Same | Path::Patch => {}
        }
    }
    match (&target_r, &target_e) {
        (Some(r), Some(e)) => {
            if let Some(why) = versions::erlang_refusal(r, e) {
                block(blockers, format!("{}: {why}; pin an Erlang version in that range (erlang_version)", h.node_name()));
                return None;
            }
        }
        (Some(r), None) => block(blockers, format!(
            "{}: cannot read its Erlang version, so whether RabbitMQ {r} runs on it cannot be checked; pin erlang_version (and its package or installer), or rerun once the node's management API answers",
            h.node_name()
        )),
        _ => {}
    }
    Some(NodeUpgrade {
        changes,
        install,
        new_series,
    })
}

/// Where the upgrade of a host that is down goes: it is installed before the node
/// starts (nothing runs there to drain).
pub fn brought_up_with_upgrade(hp: &HostPlan) -> bool {
    hp.upgrade.is_some() && hp.service == Service::Start
}
