//! The inventory's secrets checked: each reference as written (a file or a variable,
//! never the value), every secret a command needs read once before anything runs
//! (`check_secrets`), SSH keys that cannot be read warned of, a cookie Erlang refuses.

use super::model::Inventory;
use super::problem::{resolve_path, Problem, Problems};
use super::raw::RawSecretRef;
use super::secret::SecretRef;
use super::tls::read_pem;
use std::path::Path;

pub(super) fn secret_ref(
    p: &mut Problems,
    key: &str,
    r: &RawSecretRef,
    dir: &Path,
) -> Option<SecretRef> {
    match (&r.file, &r.env) {
        (Some(f), None) if !f.is_empty() => Some(SecretRef::File(resolve_path(dir, f))),
        (None, Some(v)) if !v.is_empty() => Some(SecretRef::Env(v.clone())),
        _ => {
            p.add(
                key,
                "give exactly one of file = \"path\" or env = \"VARIABLE\" (the secret itself never goes in the inventory)",
            );
            None
        }
    }
}

/// What a command needs to read besides the inventory itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// What rendering reads: the cookie and the users' passwords.
    Render,
    /// Also the credentials warren logs in to hosts with: SSH keys, WinRM passwords.
    Hosts,
}

/// Reads every secret the inventory names that `needs` requires, so that a missing
/// variable or an unreadable file is reported before anything runs. A cookie file that
/// does not exist yet is fine: warren creates it. The values are dropped at once.
pub fn check_secrets(inv: &Inventory, needs: Needs) -> Vec<Problem> {
    let mut p = Problems::default();
    let cookie = &inv.cluster.cookie;
    let cookie_missing = matches!(cookie, SecretRef::File(f) if !f.exists());
    if !cookie_missing {
        match cookie.read() {
            Err(e) => p.add(
                "cluster.cookie",
                format!("{e}; fix the reference or the file's permissions"),
            ),
            Ok(v) => {
                if let Some(why) = refused_cookie(v.expose()) {
                    p.add("cluster.cookie", format!("the cookie in {cookie} {why}"));
                }
            }
        }
    }
    for (i, h) in inv.hosts.iter().enumerate() {
        if needs == Needs::Render {
            break;
        }
        if let Some(r) = &h.password {
            if let Err(e) = r.read() {
                p.add(
                    format!("hosts[{i}].password"),
                    format!("{e}; set it or fix the reference"),
                );
            }
        }
    }
    for (i, h) in inv.hosts.iter().enumerate() {
        if let Some(t) = &h.tls {
            for (k, path, marker) in [
                ("ca", &t.ca, "CERTIFICATE-----"),
                ("cert", &t.cert, "CERTIFICATE-----"),
                ("key", &t.key, "PRIVATE KEY-----"),
            ] {
                if let Err(why) = read_pem(path, marker) {
                    p.add(format!("hosts[{i}].tls.{k}"), why);
                }
            }
        }
    }
    for (i, s) in inv.sites.iter().enumerate() {
        // A link password file that does not exist yet is fine: warren creates it.
        if let Some(r) = &s.link_password {
            if !matches!(r, SecretRef::File(f) if !f.exists()) {
                if let Err(e) = r.read() {
                    p.add(
                        format!("sites[{i}].link_password"),
                        format!("{e}; set it or fix the reference"),
                    );
                }
            }
        }
    }
    for (i, u) in inv.users.iter().enumerate() {
        match u.password.read() {
            Err(e) => p.add(
                format!("users[{i}].password"),
                format!("{e}; set it or fix the reference"),
            ),
            Ok(v) if v.expose().is_empty() => p.add(
                format!("users[{i}].password"),
                format!(
                    "the password from {} is empty; RabbitMQ would refuse every login",
                    u.password
                ),
            ),
            Ok(_) => {}
        }
    }
    p.0
}

/// SSH key files that cannot be read: not a problem of the inventory (it validates,
/// renders and plans offline without them), but warren cannot connect to these hosts
/// until they can. `warren check` reports them as warnings; connecting says the same.
pub fn key_warnings(inv: &Inventory) -> Vec<Problem> {
    let mut p = Problems::default();
    for (i, h) in inv.hosts.iter().enumerate() {
        if let Some(k) = &h.key {
            if let Err(e) = std::fs::File::open(k) {
                p.add(
                    format!("hosts[{i}].key"),
                    format!(
                        "cannot read the SSH key {}: {e}; plan, apply and verify need it to log in to {}: create it (ssh-keygen -t ed25519 -f {}) or fix the path",
                        k.display(),
                        h.name,
                        k.display()
                    ),
                );
            }
        }
    }
    p.0
}

/// Why an Erlang cookie would not work, if it would not.
pub fn refused_cookie(c: &str) -> Option<&'static str> {
    if c.is_empty() {
        Some("is empty; put a random string of letters and digits in it, or delete the file and warren makes one")
    } else if c.len() > 255 {
        Some("is longer than 255 characters, Erlang's limit; use a shorter random string")
    } else if !c
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        Some("has characters other than letters, digits, '_' and '-', which Windows service installs and the CLI quote differently; use only those")
    } else {
        None
    }
}
