//! `warren verify [--json]`: the live cluster checked against the inventory; exit 1
//! when any check fails.

use super::Outcome;
use crate::{inventory, render, verify};
use anyhow::{bail, Result};
use std::path::Path;

pub fn run(path: &Path, json: bool) -> Result<Outcome> {
    let inv = inventory::load(path, inventory::Needs::Hosts)?;
    let rendered = render::render(&inv, None)?;
    let (checks, holder) = verify::run_reading_lock(&inv, &rendered);
    let failed = checks.iter().filter(|c| !c.ok).count();
    let in_progress = holder.as_ref().map(crate::lock::in_progress);
    if let Some(note) = &in_progress {
        eprintln!("note: {note}");
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"ok": failed == 0, "checks": checks, "run_in_progress": in_progress})
            )?
        );
    } else {
        for c in &checks {
            println!(
                "{} {:<22} {:<9} {}",
                crate::ui::paint(if c.ok { "ok  " } else { "FAIL" }, c.ok),
                c.name,
                c.host,
                c.detail
            );
            if let Some(h) = &c.hint {
                println!("     {:<22} {:<9} hint: {h}", "", "");
            }
        }
        println!();
        println!("{} checks, {} failed", checks.len(), failed);
    }
    if failed > 0 {
        let names: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} on {}", c.name, c.host))
            .collect();
        bail!("verify failed: {}", names.join(", "));
    }
    Ok(Outcome::Success)
}
