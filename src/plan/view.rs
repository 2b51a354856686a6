//! The plan as a person reads it: per host its file diffs (secrets redacted) and what
//! happens to RabbitMQ, then the joins, then the cluster's resources; "No changes."
//! said plainly.

use super::{ClusterPlan, Plan, Service};
use std::fmt::Write;

pub fn text(p: &Plan) -> String {
    let mut s = String::new();
    for h in &p.hosts {
        let _ = writeln!(s, "{} ({}, {}):", h.host, h.node, h.manager);
        if !h.changes() {
            let _ = writeln!(
                s,
                "  = no changes ({} up to date, RabbitMQ running)",
                h.unchanged.len()
            );
            continue;
        }
        for c in &h.settings {
            let _ = writeln!(
                s,
                "  {} setting {}: {} -> {}{}",
                if c.now.is_none() { "+" } else { "~" },
                c.setting.key,
                c.now.as_deref().unwrap_or("(not set)"),
                c.setting.value,
                if c.setting.reinstall {
                    "  (read at service install: reinstall the service)"
                } else {
                    "  (no restart)"
                }
            );
        }
        for l in &h.leftovers {
            let _ = writeln!(
                s,
                "  - {l}  (the temporary file of an upload an interrupted run left: deleted)"
            );
        }
        for f in &h.files {
            let _ = writeln!(s, "  {} {}  ({})", f.action.symbol(), f.path, f.why);
            for line in f.diff.lines() {
                let _ = writeln!(s, "      {line}");
            }
        }
        match &h.service {
            Service::Leave if h.upgrade.is_some() => {}
            Service::Leave => {
                let _ = writeln!(s, "  = RabbitMQ keeps running: nothing it reads changed");
            }
            Service::Start if !h.reinstall.is_empty() => {
                let _ = writeln!(
                    s,
                    "  > reinstall and start the RabbitMQ service (stop, remove, install, start): {}",
                    h.reinstall.join(", ")
                );
            }
            Service::Start => {
                let _ = writeln!(
                    s,
                    "  > start RabbitMQ{}: it is not running",
                    if h.daemon_reload() {
                        " (after systemctl daemon-reload)"
                    } else {
                        ""
                    }
                );
            }
            Service::AwaitBoot => {
                let _ = writeln!(
                    s,
                    "  > wait for RabbitMQ to finish booting (up to {} s): it is starting now",
                    crate::platform::START_TIMEOUT.as_secs()
                );
            }
            Service::StartApp => {
                let _ = writeln!(
                    s,
                    "  > start the rabbit application: the Erlang VM runs with it stopped (`rabbitmqctl stop_app`, or a join that was interrupted)"
                );
            }
            Service::Restart { reasons, .. } if !h.reinstall.is_empty() => {
                let _ = writeln!(
                    s,
                    "  ! reinstall the RabbitMQ service (stop, remove, install, start; a restart would not reread its environment): {}",
                    reasons.join(", ")
                );
            }
            Service::Restart {
                reasons,
                daemon_reload,
            } => {
                let _ = writeln!(
                    s,
                    "  ! restart RabbitMQ{}: {}",
                    if *daemon_reload {
                        " (after systemctl daemon-reload)"
                    } else {
                        ""
                    },
                    reasons.join(", ")
                );
            }
        }
        if let Some(up) = &h.upgrade {
            let _ = writeln!(s, "  ^ upgrade: {}", up.changes.join("; "));
            let _ = writeln!(s, "      {}", upgrade_steps(h));
        }
        if h.revive {
            let _ = writeln!(
                s,
                "  ~ revive {} (rabbitmq-upgrade revive): it is in maintenance mode, as an interrupted upgrade left it",
                h.node
            );
        }
        if !h.start_plugins.is_empty() {
            let _ = writeln!(
                s,
                "  ~ start plugins {}: enabled, but not running (a plugin that crashed stays stopped until it is enabled again)",
                h.start_plugins.join(", ")
            );
        }
    }
    if !p.joins.is_empty() || !p.departures.is_empty() {
        let _ = writeln!(s, "cluster membership:");
        for d in &p.departures {
            let _ = writeln!(
                s,
                "  - remove {} (not in the inventory), first: {}",
                d.node,
                d.describe()
            );
        }
        for j in &p.joins {
            let _ = writeln!(
                s,
                "  + join {} to {} as a {} node, by {} ({})",
                j.node,
                j.seed,
                if j.ram { "ram" } else { "disc" },
                match j.method {
                    crate::inventory::JoinMethod::Cli => "rabbitmqctl join_cluster",
                    crate::inventory::JoinMethod::Config => "peer discovery",
                },
                j.why
            );
        }
    }
    if !p.waves.is_empty() {
        let _ = writeln!(s, "order (apply takes the hosts in waves):");
        for (n, w) in p.waves.iter().enumerate() {
            let names: Vec<&str> = w.hosts.iter().map(|&i| p.hosts[i].host.as_str()).collect();
            let how = match (names.len(), w.parallel()) {
                (1, _) => "alone",
                (_, true) => "together",
                _ => "one at a time",
            };
            let _ = writeln!(
                s,
                "  {}. {} ({how}): {}; {}",
                n + 1,
                wave_label(w.kind),
                names.join(", "),
                w.why()
            );
        }
    }
    if p.upgrade.has_changes() {
        let _ = writeln!(s, "upgrade:");
        if !p.upgrade.resumed.is_empty() {
            let _ = writeln!(
                s,
                "  resuming an interrupted upgrade: {} already run(s) the pinned versions",
                p.upgrade.resumed.join(", ")
            );
        }
        if !p.upgrade.order.is_empty() {
            let names: Vec<&str> = p
                .upgrade
                .order
                .iter()
                .map(|&i| p.hosts[i].host.as_str())
                .collect();
            let _ = writeln!(s, "  one node at a time: {}", names.join(", "));
        }
        for (&b, why) in p.upgrade.enable_flags.iter().zip(&p.upgrade.flag_reasons) {
            let _ = writeln!(
                s,
                "  + enable every stable feature flag through {} (rabbitmqctl enable_feature_flag all): {why}",
                p.hosts[b].host
            );
        }
    }
    let _ = writeln!(s, "cluster resources:");
    broker_section(&mut s, &p.cluster);
    for l in &p.links {
        let _ = writeln!(
            s,
            "site broker {} (standalone, linked to the cluster):",
            l.host
        );
        broker_section(&mut s, &l.plan);
    }
    if let Some(b) = &p.balancer {
        let _ = writeln!(s, "load balancer (HAProxy on {}):", b.host);
        let mark = match b.action {
            super::balancer::Action::Leave => "=",
            super::balancer::Action::Start => "+",
            super::balancer::Action::Reload => "~",
        };
        let _ = writeln!(s, "  {mark} {}", b.why);
    }
    for b in &p.blockers {
        let _ = writeln!(s, "x {}: {}", b.host, b.message);
    }
    for w in &p.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", summary(p));
    s
}

/// The steps of a host's upgrade, as apply takes them.
fn upgrade_steps(h: &super::HostPlan) -> String {
    let Some(up) = &h.upgrade else {
        return String::new();
    };
    let windows = h.manager == crate::inventory::ServiceManager::Windows;
    let mut what = Vec::new();
    if windows {
        // Erlang's installer first: the new RabbitMQ may need it.
        if let Some(e) = &up.install.erlang {
            what.push(format!("the Erlang installer {e}"));
        }
        if let Some(r) = &up.install.rabbitmq {
            what.push(format!("the RabbitMQ installer {r}"));
        }
    } else {
        if let Some(r) = &up.install.rabbitmq {
            what.push(format!("rabbitmq-server={r}"));
        }
        if let Some(e) = &up.install.erlang {
            what.push(format!("every installed erlang-* package ={e}"));
        }
    }
    let install = match (what.is_empty(), windows) {
        (true, _) => "(installed already)".to_string(),
        (false, true) => format!("run {} (silently, /S)", what.join(", then ")),
        (false, false) => format!("install {} (apt-get)", what.join(" and ")),
    };
    let start = if windows {
        "reinstall the service (the new version's, reading rabbitmq-env-conf.bat) and start"
    } else {
        "start"
    };
    if h.service == Service::Start {
        format!("it is down: {install}, write its files, {start}")
    } else {
        format!("drain (maintenance mode: clients disconnected, masters and leaders handed to other nodes), stop, write its files, {install}, {start}, revive, give its masters back, wait until every queue copy is back")
    }
}

/// What one broker's plan changes: the cluster's, or a linked site's.
fn broker_section(s: &mut String, plan: &ClusterPlan) {
    match plan {
        ClusterPlan::Unknown { reason, changes } => {
            let _ = writeln!(
                s,
                "  ? cannot be read yet: {reason}; after the steps above, apply reads them and makes sure of:"
            );
            for c in changes {
                let _ = writeln!(s, "    {} {}: {}", c.resource.label(), c.name, c.detail);
            }
        }
        ClusterPlan::Known {
            changes,
            unchanged,
            blockers,
            notes,
        } => {
            for c in changes {
                let _ = writeln!(
                    s,
                    "  {} {} {}: {}",
                    c.action.symbol(),
                    c.resource.label(),
                    c.name,
                    c.detail
                );
            }
            if changes.is_empty() {
                let _ = writeln!(s, "  = no changes ({unchanged} up to date)");
            }
            for b in blockers {
                let _ = writeln!(s, "  x {b}");
            }
            for n in notes {
                let _ = writeln!(s, "  note: {n}");
            }
        }
    }
}

/// A wave's name, as the plan, the progress and `--timings` say it.
pub fn wave_label(k: super::WaveKind) -> &'static str {
    use super::WaveKind::*;
    match k {
        BringUp => "bring up",
        NoRestart => "no restart",
        Seed => "seed",
        Fresh => "fresh nodes",
        Standalone => "standalone brokers",
        Rolling => "rolling restart",
        Upgrade => "rolling upgrade",
        Joins => "joins",
    }
}

pub fn summary(p: &Plan) -> String {
    if !p.has_changes() && p.blockers.is_empty() {
        return "No changes. The cluster matches the inventory.".to_string();
    }
    let files: usize = p.hosts.iter().map(|h| h.files.len()).sum();
    let settings: usize = p.hosts.iter().map(|h| h.settings.len()).sum();
    let hosts = p.hosts.iter().filter(|h| !h.files.is_empty()).count();
    let starts = p
        .hosts
        .iter()
        .filter(|h| {
            matches!(
                h.service,
                Service::Start | Service::AwaitBoot | Service::StartApp
            )
        })
        .count();
    let mut parts = vec![
        format!("{files} file(s) on {hosts} host(s)"),
        format!("{} restart(s)", p.restarts()),
    ];
    if starts > 0 {
        parts.push(format!("{starts} start(s)"));
    }
    let reinstalls = p.hosts.iter().filter(|h| !h.reinstall.is_empty()).count();
    if reinstalls > 0 {
        parts.push(format!("{reinstalls} service reinstall(s)"));
    }
    if settings > 0 {
        parts.push(format!("{settings} host setting(s)"));
    }
    let plugins = p
        .hosts
        .iter()
        .filter(|h| !h.start_plugins.is_empty())
        .count();
    if plugins > 0 {
        parts.push(format!("plugins started again on {plugins} host(s)"));
    }
    if !p.upgrade.order.is_empty() {
        parts.push(format!("{} node upgrade(s)", p.upgrade.order.len()));
    }
    parts.push(format!("{} join(s)", p.joins.len()));
    if !p.departures.is_empty() {
        parts.push(format!("{} node(s) removed", p.departures.len()));
    }
    match &p.cluster {
        ClusterPlan::Unknown { .. } => {
            parts.push("cluster resources ensured after the node steps".into())
        }
        ClusterPlan::Known { changes, .. } => {
            parts.push(format!("{} cluster change(s)", changes.len()))
        }
    }
    if !p.links.is_empty() {
        let n: usize = p.links.iter().map(|l| l.plan.changes().len()).sum();
        parts.push(format!("{n} change(s) on linked sites' brokers"));
    }
    let mut s = format!("Plan: {}.", parts.join(", "));
    if !p.blockers.is_empty() {
        s.push_str(&format!(" {} blocked (marked x).", p.blockers.len()));
    }
    s
}

/// The live cluster against a backup (`plan --backup FILE`): what it lacks (`-`), has
/// in addition (`+`) or has changed (`~`), each changed property as `backup -> now`,
/// and how to restore. Nothing here is done by `apply`.
pub fn backup_text(c: &super::backup::Comparison) -> String {
    use super::backup::Change;
    let mut s = String::new();
    let mut about = vec![c.file.clone()];
    if let Some(t) = &c.taken {
        about.push(format!("taken {t}"));
    }
    if let Some(v) = &c.version {
        about.push(format!("RabbitMQ {v}"));
    }
    let _ = writeln!(
        s,
        "the cluster now against backup {} (a change reads backup -> now):",
        about.join(", ")
    );
    if !c.differs() {
        let _ = writeln!(s, "  = no differences ({} definitions the same)", c.same);
    }
    for d in &c.differences {
        let what = match d.change {
            Change::Missing => "missing now, in the backup",
            Change::Added => "not in the backup, added since",
            Change::Changed => "changed since the backup",
        };
        let _ = writeln!(
            s,
            "  {} {} {}: {what}{}{}",
            d.change.symbol(),
            d.kind.label(),
            d.name,
            if d.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", d.detail)
            },
            if d.inventory && d.change != Change::Added {
                "  (the inventory's: apply puts it back)"
            } else {
                ""
            }
        );
    }
    if c.count(Change::Missing) + c.count(Change::Changed) > 0 {
        let _ = writeln!(
            s,
            "  note: to restore, `warren apply` first: it puts back what the inventory declares, each site queue through its own site's node; then import the backup for the rest, from here: `curl -u ADMIN -H 'content-type: application/json' --data-binary @{} {}/api/definitions`, or on a cluster node: `rabbitmqctl import_definitions FILE`; then `warren apply` again",
            c.file, c.api
        );
        let _ = writeln!(
            s,
            "  note: an import adds and updates, never deletes; it declares queues through the node it runs on, and sets the backup's shovels and federation upstreams with their password masked (the second apply puts warren's links' back; give a link of your own its URI again)"
        );
    }
    if c.count(Change::Added) > 0 {
        let _ = writeln!(
            s,
            "  note: an import does not remove what was added since: delete it by hand if it was the mistake"
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{}",
        if c.differs() {
            format!(
                "Backup: {} missing, {} added, {} changed, {} the same.",
                c.count(Change::Missing),
                c.count(Change::Added),
                c.count(Change::Changed),
                c.same
            )
        } else {
            "Backup: the cluster holds exactly the backup's definitions.".to_string()
        }
    );
    s
}
