//! `warren drill SITE`: refuses unless the cluster is exactly what the inventory says
//! (a rehearsal on a drifted cluster proves nothing and risks more), says what it will
//! do, asks, then runs the drill and prints what it saw.

use super::Outcome;
use crate::drill::Drill;
use crate::ui::Progress;
use anyhow::{anyhow, bail, Result};
use std::path::Path;

pub fn run(
    path: &Path,
    site: &str,
    messages: usize,
    yes: bool,
    break_lock: bool,
) -> Result<Outcome> {
    let locking = super::plan::Locking {
        command: "drill",
        break_lock,
    };
    super::plan::locked(path, Default::default(), false, locking, |p| {
        drill(p, path, site, messages, yes)
    })
}

fn drill(
    p: &mut super::plan::Planned,
    path: &Path,
    site: &str,
    messages: usize,
    yes: bool,
) -> Result<Outcome> {
    let inv = &p.inv;
    let Some(s) = inv.sites.iter().find(|s| inv.hosts[s.host].name == site) else {
        let names: Vec<&str> = inv
            .sites
            .iter()
            .map(|s| inv.hosts[s.host].name.as_str())
            .collect();
        bail!(
            "{}: no site host is called {site}; the sites are {}",
            path.display(),
            names.join(", ")
        );
    };
    let stopped: Vec<&str> = p
        .plan
        .hosts
        .iter()
        .filter(|h| h.service != crate::plan::Service::Leave)
        .map(|h| h.host.as_str())
        .collect();
    if !stopped.is_empty() {
        bail!(
            "RabbitMQ is not running as the inventory says on {}; `warren apply` first, then drill",
            stopped.join(", ")
        );
    }
    if p.plan.has_changes() {
        print!("{}", crate::plan::view::text(&p.plan));
        bail!("the cluster differs from the inventory (the plan above); `warren apply` first, then drill");
    }
    let manager = p.plan.hosts[s.host].manager;
    let names = vec![
        inv.hosts[s.host].name.clone(),
        inv.hosts[inv.central_index()].name.clone(),
    ];
    let progress = Progress::new(&names, 8);
    let drill = Drill {
        inv,
        conns: &mut p.conns,
        site: s,
        manager,
        messages,
        progress: &progress,
    };
    print!("{}", drill.describe());
    if !yes {
        super::confirm("Run the drill?", "run the drill")?;
    }
    let result = drill.run();
    progress.finish();
    match result {
        Ok(r) => {
            println!();
            println!(
                "Drill passed on {site}: {messages} confirmed messages were all on {} within {:.1} s of stopping {site}, and {site}'s copy was back in sync within {:.1} s of starting it.",
                r.promoted, r.promoted_after, r.resynced_after
            );
            Ok(Outcome::Success)
        }
        Err(failed) => Err(anyhow!("{failed}")),
    }
}
