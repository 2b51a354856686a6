//! HAProxy in the plan: started when it does not run, reloaded when its haproxy.cfg
//! changes, refused where it is not installed; and run so at the very end of `apply`,
//! once every node has joined: a node joining serves, for a moment, an empty broker of
//! its own, which no client should meet.

use super::{Blocker, HostPlan};
use crate::facts::balancer::BalancerFacts;
use crate::inventory::balancer::frontend_ports;
use crate::inventory::{Inventory, ServiceManager};
use crate::platform::balancer::CONFIG;
use crate::platform::Transport;
use anyhow::{anyhow, bail, Result};
use std::time::{Duration, Instant};

/// What apply does with HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Leave,
    Start,
    Reload,
}

#[derive(Debug, Clone)]
pub struct BalancerPlan {
    pub host: String,
    pub action: Action,
    pub why: String,
}

/// Plans HAProxy: started when it does not run, reloaded when its configuration
/// changes, refused (a blocker) where it is not installed.
pub fn plan(
    inv: &Inventory,
    hosts: &[HostPlan],
    facts: Option<&std::result::Result<BalancerFacts, String>>,
    blockers: &mut Vec<Blocker>,
) -> Option<BalancerPlan> {
    let lb = inv.load_balancer.as_ref()?;
    let host = inv.hosts[lb.host].name.clone();
    let f = match facts? {
        Ok(f) => f,
        Err(e) => {
            blockers.push(Blocker {
                host: host.clone(),
                message: e.clone(),
            });
            return None;
        }
    };
    if f.version.is_none() {
        blockers.push(Blocker {
            host: host.clone(),
            message: format!(
                "HAProxy is not installed, and {} names this host in [load_balancer]: install Debian's package (apt-get install haproxy), then rerun",
                inv.path.display()
            ),
        });
        return None;
    }
    let changed = hosts[lb.host].files.iter().any(|c| c.path == CONFIG);
    let (action, why) = match (f.running, changed) {
        (false, _) => (Action::Start, "not running: start it".to_string()),
        (true, true) => (
            Action::Reload,
            "haproxy.cfg changed: reload (open connections stay until they close)".to_string(),
        ),
        (true, false) => (
            Action::Leave,
            "running with the rendered haproxy.cfg".to_string(),
        ),
    };
    Some(BalancerPlan { host, action, why })
}

/// Starts or reloads HAProxy as planned, then waits (up to 10 s) until every
/// frontend accepts connections. Returns what was done.
pub fn apply(
    inv: &Inventory,
    t: &mut dyn Transport,
    m: ServiceManager,
    p: &BalancerPlan,
) -> Result<Option<String>> {
    if p.action == Action::Leave {
        return Ok(None);
    }
    let script = t
        .platform()
        .balancer_reload(m)
        .ok_or_else(|| anyhow!("{}: warren runs HAProxy on Linux hosts only", p.host))?;
    let out = t.run(&script, Duration::from_secs(60))?;
    if !out.ok() {
        bail!(
            "{}: {} HAProxy failed: {} ({CONFIG} is written; the running HAProxy, if any, keeps its old configuration)",
            p.host,
            if p.action == Action::Start { "starting" } else { "reloading" },
            out.stderr.trim().lines().collect::<Vec<_>>().join("; ")
        );
    }
    let ports = frontend_ports(inv);
    let targets: Vec<(String, u16)> = ports
        .iter()
        .map(|&(_, p)| ("127.0.0.1".into(), p))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = t.platform().probe_ports(&targets);
        let open = t.query(&q, Duration::from_secs(30))?;
        let answered = open
            .stdout
            .lines()
            .filter(|l| l.starts_with("open "))
            .count();
        if answered == targets.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{}: HAProxy {} but not every frontend listens after 10 s ({}): see its log",
                p.host,
                if p.action == Action::Start {
                    "started"
                } else {
                    "reloaded"
                },
                ports
                    .iter()
                    .map(|(w, p)| format!("{w} {p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(Some(match p.action {
        Action::Start => "started HAProxy".into(),
        _ => "reloaded HAProxy (haproxy.cfg changed)".into(),
    }))
}
