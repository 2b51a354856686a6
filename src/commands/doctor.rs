//! `warren doctor [--json] [--host NAME]...`: every assumption warren makes about each
//! host, checked read-only; one line per check; exit 1 when any check fails.

use super::Outcome;
use crate::doctor::{self, Status};
use crate::{inventory, render};
use anyhow::{bail, Result};
use std::path::Path;

pub fn run(path: &Path, json: bool, hosts: &[String]) -> Result<Outcome> {
    let inv = inventory::load(path, inventory::Needs::Hosts)?;
    for name in hosts {
        if !inv.hosts.iter().any(|h| &h.name == name) {
            let known: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
            bail!(
                "--host {name}: {} has no host named {name}; give one of {}",
                path.display(),
                known.join(", ")
            );
        }
    }
    let rendered = render::render(&inv, None)?;
    let lines = doctor::run(&inv, &rendered, hosts);
    let count = |s: Status| lines.iter().filter(|l| l.status == s).count();
    let (warn, fail) = (count(Status::Warn), count(Status::Fail));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": fail == 0, "checks": lines}))?
        );
    } else {
        let host_width = lines.iter().map(|l| l.host.len()).max().unwrap_or(4);
        for l in &lines {
            let word = format!("{:<4}", l.status.word());
            let word = match l.status {
                Status::Ok => crate::ui::paint(&word, true),
                Status::Fail => crate::ui::paint(&word, false),
                Status::Warn => crate::ui::warn(&word),
            };
            let fix = l
                .fix
                .as_deref()
                .map(|f| format!(" -> {f}"))
                .unwrap_or_default();
            println!(
                "{word} {:<host_width$} {:<15} {}{fix}",
                l.host, l.check, l.found
            );
        }
        println!();
        println!("{} checks: {} warn, {} fail", lines.len(), warn, fail);
    }
    if fail > 0 {
        let failed: Vec<String> = lines
            .iter()
            .filter(|l| l.status == Status::Fail)
            .map(|l| format!("{} on {}", l.check, l.host))
            .collect();
        let checks = if fail == 1 { "check" } else { "checks" };
        bail!(
            "doctor found {fail} failing {checks}: {}",
            failed.join(", ")
        );
    }
    Ok(Outcome::Success)
}
