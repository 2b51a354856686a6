//! `warren backup [--out DIR]`: the cluster's definitions, as the management API
//! exports them, in a dated private file. Reads only; writes nothing on any host.

use super::Outcome;
use crate::inventory;
use crate::plan::backup;
use crate::platform::Probe;
use crate::rabbitmq::api::{self, Credentials};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The cluster's definitions through `p`'s management API (`GET /api/definitions`),
/// with every link password masked.
pub fn live(p: &mut dyn Probe, port: u16, c: &Credentials) -> Result<Value> {
    let mut v: Value = api::get(p, port, c, "/api/definitions")?;
    if !v.is_object() {
        bail!(
            "{}: GET /api/definitions answered something other than definitions",
            p.host()
        );
    }
    backup::mask_secrets(&mut v);
    Ok(v)
}

/// Writes `text` to `dir/name`, private (0600), all at once (a temporary file in
/// `dir`, then linked to its name), never over an existing file. `dir` is made
/// private (0700) when warren creates it.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".definitions-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    let target = dir.join(name);
    match tmp.persist_noclobber(&target) {
        Ok(_) => Ok(target),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists already (a backup taken in the same second); warren never overwrites a backup: rerun",
            target.display()
        ),
        Err(e) => Err(e.error).with_context(|| format!("cannot write {}", target.display())),
    }
}

pub fn run(path: &Path, out: &Path) -> Result<Outcome> {
    let inv = inventory::load(path, inventory::Needs::Hosts)?;
    // Definitions are the cluster's, the same through any member: the central
    // node's, else the first member's that answers. A linked site's broker is not
    // the cluster; what warren puts there is the inventory's to rebuild.
    let (mut t, port, c, via) = super::status::reach_api(&inv)?;
    let defs = live(&mut *t, port, &c)?;
    let mut text = serde_json::to_string_pretty(&defs)?;
    text.push('\n');
    let name = backup::file_name(std::time::SystemTime::now());
    let written = write(out, &name, &text)?;
    let count = |k: &str| defs.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    eprintln!(
        "read through {via}: {} vhost(s), {} user(s) (RabbitMQ's password hashes), {} permission(s), {} policies, {} exchange(s), {} queue(s), {} binding(s), {} parameter(s) (link passwords masked)",
        count("vhosts"),
        count("users"),
        count("permissions"),
        count("policies"),
        count("exchanges"),
        count("queues"),
        count("bindings"),
        count("parameters")
    );
    println!("{}", written.display());
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_backup_is_private_in_a_private_folder_and_never_overwritten() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("backups/cluster");
        let p = write(&dir, "definitions-20261204-213517.json", "{}\n").unwrap();
        assert_eq!(p, dir.join("definitions-20261204-213517.json"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("backups")), 0o700);
        let e = write(&dir, "definitions-20261204-213517.json", "other\n").unwrap_err();
        assert!(format!("{e:#}").contains("never overwrites"), "{e:#}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{}\n");
        // Nothing half-written is left beside it.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
