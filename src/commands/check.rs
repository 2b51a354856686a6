//! `warren check`: validate the inventory, every problem at once, touching no host.

use super::Outcome;
use crate::inventory::{self, SecretRef};
use anyhow::Result;
use std::path::Path;

pub fn run(path: &Path) -> Result<Outcome> {
    let inv = inventory::load(path, inventory::Needs::Hosts)?;
    let sites = inv.sites.len();
    println!(
        "{}: ok: cluster \"{}\", {} hosts ({} site{}), {} replication, join by {}",
        path.display(),
        inv.cluster.name,
        inv.hosts.len(),
        sites,
        if sites == 1 { "" } else { "s" },
        inv.cluster.replication,
        inv.cluster.join,
    );
    for w in inventory::secret_check::key_warnings(&inv) {
        eprintln!("warning: {}: {w}", path.display());
    }
    if let SecretRef::File(f) = &inv.cluster.cookie {
        if !f.exists() {
            println!(
                "note: the cookie file {} does not exist yet; render, plan and apply create it (mode 0600)",
                f.display()
            );
        }
    }
    Ok(Outcome::Success)
}
