//! A fact reading as a host reports it, the same on every platform: lines starting
//! with `@@`, each file's content or hash on the line after its own; and owners made
//! comparable (a Linux user, or the accounts a Windows ACL grants).

use crate::inventory::ServiceManager;
use anyhow::{anyhow, Context};
use std::collections::BTreeMap;

/// A managed file as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Missing,
    /// Content is read for files that hold no secret, to show diffs.
    Text {
        content: Vec<u8>,
        mode: u32,
        owner: String,
    },
    /// Secrets are read as a SHA-256 only: the value never leaves the host.
    Hash {
        sha256: String,
        mode: u32,
        owner: String,
    },
}

/// What one fact reading of a host reported.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub files: BTreeMap<String, FileState>,
    /// The service manager the host runs RabbitMQ under, as far as the host can tell
    /// (decides `service = "auto"`): systemd, none (`direct`), or Windows' services.
    pub manager: Option<ServiceManager>,
    /// RabbitMQ's command-line tools were looked for and not found.
    pub cli_missing: bool,
    /// The RabbitMQ node's OS process, when it runs.
    pub pid: Option<u32>,
    /// The host's own name (hostname, Windows' COMPUTERNAME).
    pub hostname: Option<String>,
    /// Settings as they are now, by key; a missing key is a setting not made.
    pub settings: BTreeMap<String, String>,
    /// The SHA-256 of the service environment file the service was installed from
    /// (Windows); `None` when no service was installed by warren.
    pub service_stamp: Option<String>,
    /// Where RabbitMQ's CLI tools were found (Windows).
    pub sbin: Option<String>,
    /// The default shell OpenSSH starts commands in, when set (Windows).
    pub ssh_shell: Option<String>,
    /// Temporary files of an interrupted upload (`PATH.warren-new`).
    pub leftovers: Vec<String>,
    /// Installed versions by package (see `HostFacts::packages`).
    pub packages: BTreeMap<String, String>,
}

/// Parses a fact reading: lines starting with `@@` (the same for every platform),
/// each file's content or hash on the line after its own.
pub fn parse_reading(out: &str) -> anyhow::Result<Reading> {
    let mut r = Reading::default();
    let mut lines = out.lines().map(|l| l.trim_end_matches('\r'));
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("@@") else {
            continue;
        };
        let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let some = |v: &str| (!v.is_empty() && v != "none").then(|| v.to_string());
        match kind {
            "manager" => r.manager = ServiceManager::parse(rest),
            "pid" => r.pid = rest.parse().ok(),
            "hostname" => r.hostname = some(rest),
            "stamp" => r.service_stamp = some(rest),
            "sbin" => {
                r.sbin = some(rest);
                r.cli_missing = r.sbin.is_none();
            }
            "shell" => r.ssh_shell = some(rest),
            "leftover" => r.leftovers.push(rest.to_string()),
            "package" => {
                // `NAME VERSION`, or, from dpkg, `NAME VERSION STATUS` where only
                // `ii` (installed) counts.
                let mut w = rest.split_whitespace();
                if let (Some(name), Some(version)) = (w.next(), w.next()) {
                    if w.next().is_none_or(|status| status == "ii") {
                        r.packages.insert(name.to_string(), version.to_string());
                    }
                }
            }
            "setting" => {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                r.settings.insert(key.to_string(), value.trim().to_string());
            }
            "missing" => {
                let path = rest.split_once(' ').map(|(_, p)| p).unwrap_or("");
                r.files.insert(path.to_string(), FileState::Missing);
            }
            "file" | "hash" => {
                // A tab ends the owner, which may hold spaces on Windows
                // ("NT AUTHORITY\SYSTEM"); a path may hold spaces anywhere.
                let (meta, path) = rest
                    .split_once('\t')
                    .or_else(|| rest.split_once(' '))
                    .ok_or_else(|| anyhow!("bad line {line}"))?;
                let (mode, owner) = meta.split_once(':').unwrap_or((meta, ""));
                let mode = u32::from_str_radix(mode, 8).unwrap_or(0);
                let owner = normalize_owner(owner);
                let payload = lines.next().unwrap_or("").trim();
                let state = if kind == "file" {
                    use base64::Engine;
                    FileState::Text {
                        content: base64::engine::general_purpose::STANDARD
                            .decode(payload)
                            .context("file content is not base64")?,
                        mode,
                        owner,
                    }
                } else {
                    FileState::Hash {
                        sha256: payload.to_ascii_lowercase(),
                        mode,
                        owner,
                    }
                };
                r.files.insert(path.to_string(), state);
            }
            _ => {}
        }
    }
    Ok(r)
}

/// An owner as compared: a user name (Linux), or the accounts an ACL grants access
/// to, sorted, without their domain (Windows: `Administrator,Administrators,SYSTEM`).
pub fn normalize_owner(owner: &str) -> String {
    if !owner.contains(',') && !owner.contains('\\') {
        return owner.to_string();
    }
    let mut names: Vec<String> = owner
        .split(',')
        .map(|n| n.rsplit('\\').next().unwrap_or(n).trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_parse_with_crlf_and_acl_owners() {
        let out = "@@hostname WIN1\r\n@@file 0:BUILTIN\\Administrators,NT AUTHORITY\\SYSTEM,WIN1\\Administrator\tC:\\x\\a.conf\r\naGk=\r\n@@hash 0:SYSTEM,Administrators\tC:\\c\r\nABCDEF\r\n@@missing - C:\\y\r\n@@setting firewall:warren-amqp TCP 5672 Inbound Allow True\r\n@@pid none\r\n@@stamp none\r\n";
        let r = parse_reading(out).unwrap();
        assert_eq!(r.hostname.as_deref(), Some("WIN1"));
        assert_eq!(
            r.files[r"C:\x\a.conf"],
            FileState::Text {
                content: b"hi".to_vec(),
                mode: 0,
                owner: "Administrator,Administrators,SYSTEM".into()
            }
        );
        assert!(matches!(&r.files[r"C:\c"], FileState::Hash { sha256, .. } if sha256 == "abcdef"));
        assert_eq!(r.files[r"C:\y"], FileState::Missing);
        assert_eq!(
            r.settings["firewall:warren-amqp"],
            "TCP 5672 Inbound Allow True"
        );
        assert_eq!(r.pid, None);
        assert_eq!(r.service_stamp, None);
    }
}
