//! `warren apply`: the plan, then (after a confirmation, or --yes) its execution, then
//! the summary of what changed.

use super::Outcome;
use crate::plan::{self, ClusterPlan};
use crate::ui::Progress;
use anyhow::{bail, Result};
use std::path::Path;
use std::time::Instant;

pub struct Flags {
    pub yes: bool,
    pub dry_run: bool,
    pub force: bool,
    pub timings: bool,
    pub accept_new_host_keys: bool,
    pub allow_disruptive: bool,
    pub break_lock: bool,
}

pub fn run(path: &Path, flags: Flags) -> Result<Outcome> {
    if flags.dry_run {
        return super::plan::run(path, false, flags.timings, None);
    }
    let opts = crate::plan::Options {
        force: flags.force,
        allow_disruptive: flags.allow_disruptive,
    };
    let locking = super::plan::Locking {
        command: "apply",
        break_lock: flags.break_lock,
    };
    super::plan::locked(path, opts, flags.accept_new_host_keys, locking, |p| {
        apply(p, &flags)
    })
}

/// Everything after the plan, while this run holds the lock.
fn apply(p: &mut super::plan::Planned, flags: &Flags) -> Result<Outcome> {
    print!("{}", plan::view::text(&p.plan));
    let mut blocked: Vec<String> = p
        .plan
        .blockers
        .iter()
        .map(|b| format!("{}: {}", b.host, b.message))
        .collect();
    if let ClusterPlan::Known { blockers, .. } = &p.plan.cluster {
        blocked.extend(blockers.iter().cloned());
    }
    for l in &p.plan.links {
        if let ClusterPlan::Known { blockers, .. } = &l.plan {
            blocked.extend(blockers.iter().map(|b| format!("{}: {b}", l.host)));
        }
    }
    if !blocked.is_empty() {
        bail!("{}\nnothing was changed", blocked.join("\n"));
    }
    if !p.plan.has_changes() {
        if flags.timings {
            super::plan::print_timings(&p.timings);
        }
        return Ok(Outcome::Success);
    }
    if !flags.yes {
        super::confirm("Apply this plan?", "apply this plan")?;
    }
    let steps = crate::apply::work(&p.plan);
    let names: Vec<String> = p.inv.hosts.iter().map(|h| h.name.clone()).collect();
    let progress = Progress::new(&names, steps);
    let t0 = Instant::now();
    let result = crate::apply::execute(&p.inv, &p.plan, &mut p.conns, &progress, flags.force);
    progress.finish();
    match result {
        Ok(report) => {
            println!();
            println!(
                "Applied: {} change(s); restarted {}; joined {}; {} cluster change(s). ({:.1} s)",
                report.done.len(),
                list(&report.restarted),
                list(&report.joined),
                report.cluster_changes,
                t0.elapsed().as_secs_f64()
            );
            // The cluster as a whole, as `warren verify` sees it.
            let t0 = Instant::now();
            let rendered = crate::render::render(&p.inv, None)?;
            let checks = crate::verify::run(&p.inv, &rendered);
            let mut timings = report.timings;
            timings.push(("verify".into(), t0.elapsed().as_secs_f64()));
            if flags.timings {
                let mut all = p.timings.clone();
                all.extend(timings);
                super::plan::print_timings(&all);
            }
            let failed: Vec<&crate::verify::Check> = checks.iter().filter(|c| !c.ok).collect();
            if failed.is_empty() {
                println!("Verified: all {} checks pass.", checks.len());
                return Ok(Outcome::Success);
            }
            let lines: Vec<String> = failed
                .iter()
                .map(|c| format!("{} on {}: {}", c.name, c.host, c.detail))
                .collect();
            bail!(
                "applied, but verify fails:\n{}\n`warren verify` shows every check with its hint",
                lines.join("\n")
            )
        }
        Err(failed) => Err(anyhow::anyhow!("{failed}")),
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
