//! `warren plan` (and `apply --dry-run`): gather every host's facts and print what
//! `apply` would do. Holds only read-only handles to the hosts.

use crate::cli::Outcome;
use crate::inventory::{self, Inventory};
use crate::plan::{self, Plan};
use crate::platform::Transport;
use crate::render;
use anyhow::{bail, Result};
use std::path::Path;
use std::time::Instant;

/// Everything a plan needs, with the connections kept for `apply`.
pub struct Planned {
    pub inv: Inventory,
    pub conns: Vec<Box<dyn Transport>>,
    pub plan: Plan,
    pub timings: Vec<(String, f64)>,
}

pub fn prepare(path: &Path, force: bool) -> Result<Planned> {
    prepare_with(
        path,
        plan::Options {
            force,
            ..Default::default()
        },
        false,
    )
}

/// `prepare`, recording the SSH host keys of hosts not yet in known_hosts when
/// `accept_new_host_keys`.
pub fn prepare_with(
    path: &Path,
    opts: plan::Options,
    accept_new_host_keys: bool,
) -> Result<Planned> {
    let mut timings = Vec::new();
    let t0 = Instant::now();
    let mut inv = inventory::load(path, inventory::Needs::Hosts)?;
    for h in &mut inv.hosts {
        h.accept_new_host_key = accept_new_host_keys;
    }
    let rendered = render::render(&inv, None)?;
    timings.push((
        "inventory and render".to_string(),
        t0.elapsed().as_secs_f64(),
    ));
    let t0 = Instant::now();
    let mut conns = Vec::new();
    let mut unreachable = Vec::new();
    for r in crate::facts::connect_all(&inv) {
        match r {
            Ok(c) => conns.push(c),
            Err(e) => unreachable.push(format!("{e:#}")),
        }
    }
    if !unreachable.is_empty() {
        bail!(
            "{}\nno host was changed; when every host answers, rerun",
            unreachable.join("\n")
        );
    }
    timings.push(("connect".to_string(), t0.elapsed().as_secs_f64()));
    let t0 = Instant::now();
    let facts = crate::facts::gather(&inv, &rendered.hosts, &mut crate::facts::probes(&mut conns))
        .map_err(|e| anyhow::anyhow!("{e:#}\nno host was changed; fix this and rerun"))?;
    timings.push(("facts".to_string(), t0.elapsed().as_secs_f64()));
    let t0 = Instant::now();
    let plan = plan::plan(&inv, &rendered.hosts, &facts, opts);
    timings.push(("plan".to_string(), t0.elapsed().as_secs_f64()));
    Ok(Planned {
        inv,
        conns,
        plan,
        timings,
    })
}

pub fn print_timings(timings: &[(String, f64)]) {
    let total: f64 = timings.iter().map(|(_, s)| s).sum();
    eprintln!("timings:");
    for (phase, secs) in timings {
        eprintln!(
            "  {phase:<32} {secs:>7.2} s  {:>5.1}%",
            100.0 * secs / total.max(1e-9)
        );
    }
    eprintln!("  {:<32} {total:>7.2} s", "total");
}

pub fn run(path: &Path, exit_code: bool, timings: bool) -> Result<Outcome> {
    let p = prepare(path, false)?;
    print!("{}", plan::view::text(&p.plan));
    if timings {
        print_timings(&p.timings);
    }
    if exit_code && p.plan.has_changes() {
        return Ok(Outcome::Changes);
    }
    Ok(Outcome::Success)
}
