//! `warren render`: write every host's files locally, touching no host.

use super::Outcome;
use crate::{inventory, render};
use anyhow::{bail, Result};
use std::path::Path;

pub fn run(path: &Path, out: &Path, host: Option<&str>) -> Result<Outcome> {
    let inv = inventory::load(path, inventory::Needs::Render)?;
    if let Some(name) = host {
        if inv.host(name).is_none() {
            let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
            bail!(
                "--host {name}: no such host in {}; use one of {}",
                path.display(),
                names.join(", ")
            );
        }
    }
    let r = render::render(&inv, host)?;
    for (name, file) in &r.overridden {
        eprintln!("template {name}: using {}", file.display());
    }
    let written = render::write_tree(out, &r, host.is_none())?;
    for p in &written {
        println!("{}", p.display());
    }
    Ok(Outcome::Success)
}
