//! HAProxy started or reloaded as the plan says, last in `apply` (`plan/balancer.rs`
//! says why last), and waited for until every frontend listens.

use crate::inventory::balancer::frontend_ports;
use crate::inventory::{Inventory, ServiceManager};
use crate::plan::balancer::{Action, BalancerPlan};
use crate::platform::balancer::CONFIG;
use crate::platform::Transport;
use anyhow::{anyhow, bail, Result};
use std::time::{Duration, Instant};

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
