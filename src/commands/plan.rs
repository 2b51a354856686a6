//! `warren plan` (and `apply --dry-run`): gather every host's facts and print what
//! `apply` would do. Holds only read-only handles to the hosts.

use super::Outcome;
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
    /// The lock this run holds on the central host (`apply`, `drill`).
    pub lock: Option<crate::lock::Lock>,
}

/// Which lock a command takes before it reads the hosts.
#[derive(Debug, Clone, Copy)]
pub struct Locking {
    /// `apply` or `drill`.
    pub command: &'static str,
    /// `--break-lock`: take over a lock held by a run that is not provably gone.
    pub break_lock: bool,
}

impl Planned {
    /// Releases the lock, if this run holds one; a failure to release is said, not
    /// fatal (the next run on this machine takes a lock left behind over).
    pub fn release(&mut self) {
        if let Some(l) = self.lock.take() {
            let ci = self.inv.central_index();
            if let Err(e) = crate::lock::release(&mut *self.conns[ci], &l) {
                eprintln!("warning: {e:#}");
            }
        }
    }
}

pub fn prepare(path: &Path, force: bool) -> Result<Planned> {
    prepare_with(
        path,
        plan::Options {
            force,
            ..Default::default()
        },
        false,
        None,
    )
}

/// A run that changes the cluster (`apply`, `drill`): the plan made under the lock,
/// Ctrl-C handled from then on, `body`, and the lock released however `body` ends.
pub fn locked(
    path: &Path,
    opts: plan::Options,
    accept_new_host_keys: bool,
    locking: Locking,
    body: impl FnOnce(&mut Planned) -> Result<Outcome>,
) -> Result<Outcome> {
    let mut p = prepare_with(path, opts, accept_new_host_keys, Some(locking))?;
    crate::interrupt::install();
    let result = body(&mut p);
    p.release();
    result
}

/// `prepare`, recording the SSH host keys of hosts not yet in known_hosts when
/// `accept_new_host_keys`, and taking the lock first when `locking` says so (else the
/// plan says when another run holds it).
pub fn prepare_with(
    path: &Path,
    opts: plan::Options,
    accept_new_host_keys: bool,
    locking: Option<Locking>,
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
    let ci = inv.central_index();
    let mut in_progress = None;
    let lock = match locking {
        Some(l) => {
            let lock = crate::lock::take(&mut *conns[ci], l.command, l.break_lock)
                .map_err(|e| anyhow::anyhow!("{e:#}\nnothing was changed"))?;
            if let Some(note) = &lock.note {
                eprintln!("note: {note}");
            }
            Some(lock)
        }
        None => {
            in_progress = crate::lock::read(&mut *conns[ci] as &mut dyn crate::platform::Probe)?
                .map(|h| crate::lock::in_progress(&h));
            None
        }
    };
    let t0 = Instant::now();
    let facts = crate::facts::gather(&inv, &rendered.hosts, &mut crate::facts::probes(&mut conns));
    let facts = match facts {
        Ok(f) => f,
        Err(e) => {
            if let Some(l) = &lock {
                let _ = crate::lock::release(&mut *conns[ci], l);
            }
            bail!("{e:#}\nno host was changed; fix this and rerun");
        }
    };
    timings.push(("facts".to_string(), t0.elapsed().as_secs_f64()));
    let t0 = Instant::now();
    let mut plan = plan::plan(&inv, &rendered.hosts, &facts, opts);
    if let Some(note) = in_progress {
        plan.warnings.insert(0, note);
    }
    timings.push(("plan".to_string(), t0.elapsed().as_secs_f64()));
    if !plan.joins.is_empty() {
        // A join needs names and ports both ways: checked now, so that a closed
        // firewall stops the run before anything changes, not halfway.
        let t0 = Instant::now();
        let blockers = crate::doctor::preflight(&inv, &plan, &facts, &mut conns);
        plan.blockers.extend(blockers);
        timings.push(("join preflight".to_string(), t0.elapsed().as_secs_f64()));
    }
    Ok(Planned {
        inv,
        conns,
        plan,
        timings,
        lock,
    })
}

/// Prints the phases with their share of the total. A phase whose name starts with a
/// space is a split of the phase above it (a host of a parallel wave): shown under
/// it, not added to the total.
pub fn print_timings(timings: &[(String, f64)]) {
    let total: f64 = timings
        .iter()
        .filter(|(p, _)| !p.starts_with(' '))
        .map(|(_, s)| s)
        .sum();
    eprintln!("timings:");
    for (phase, secs) in timings {
        if phase.starts_with(' ') {
            eprintln!("  {phase:<40} {secs:>7.2} s");
            continue;
        }
        eprintln!(
            "  {phase:<40} {secs:>7.2} s  {:>5.1}%",
            100.0 * secs / total.max(1e-9)
        );
    }
    eprintln!("  {:<40} {total:>7.2} s", "total");
}

pub fn run(path: &Path, exit_code: bool, timings: bool, backup: Option<&Path>) -> Result<Outcome> {
    // A backup that cannot be compared is refused before any host is contacted.
    let saved = backup.map(read_backup).transpose()?;
    let mut p = prepare(path, false)?;
    print!("{}", plan::view::text(&p.plan));
    let mut differs = false;
    if let (Some(file), Some(saved)) = (backup, saved) {
        let t0 = Instant::now();
        let ci = p.inv.central_index();
        let central = p.inv.hosts[ci].name.clone();
        let probe: &mut dyn crate::platform::Probe = &mut *p.conns[ci];
        let live = crate::facts::node_api(probe, &p.inv, ci)
            .and_then(|(port, c)| super::backup::live(probe, port, &c))
            .map_err(|e| {
                anyhow::anyhow!(
                    "{e:#}\ncannot compare with {}: the cluster's definitions are read through {central}'s management API; when it answers, rerun",
                    file.display()
                )
            })?;
        let c = plan::backup::compare(&p.inv, &file.display().to_string(), &saved, &live);
        println!();
        print!("{}", plan::view::backup_text(&c));
        differs = c.differs();
        p.timings
            .push(("backup compared".to_string(), t0.elapsed().as_secs_f64()));
    }
    if timings {
        print_timings(&p.timings);
    }
    if exit_code && (p.plan.has_changes() || differs) {
        return Ok(Outcome::Changes);
    }
    Ok(Outcome::Success)
}

/// A backup file's definitions (masked), or why it cannot be compared, naming it.
fn read_backup(file: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        anyhow::anyhow!(
            "--backup {}: cannot read it ({e}); name a file `warren backup` wrote",
            file.display()
        )
    })?;
    plan::backup::parse(&text).map_err(|why| {
        anyhow::anyhow!(
            "--backup {}: {why}; name a file `warren backup` wrote",
            file.display()
        )
    })
}
