//! One operator at a time: `apply` and `drill` hold a lock file on the central host
//! for their whole run. It says who holds it, from which machine and process, and
//! since when. A lock whose process provably no longer runs (same machine, pid gone
//! or reused) is taken over with a note; any other is broken only by `--break-lock`.
//! `plan` and `verify` never take it; they read it and say when a run is in progress.

use crate::platform::{Probe, Transport};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

const TIMEOUT: Duration = Duration::from_secs(60);

/// What a lock file says about the run that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// `apply` or `drill`.
    pub command: String,
    /// The operator's login name on their machine.
    pub user: String,
    /// The operator's machine, as it names itself.
    pub machine: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (Linux), so that a pid
    /// reused by another process is not taken for the holder.
    #[serde(default)]
    pub started: Option<u64>,
    /// When the lock was taken (RFC 3339, UTC).
    pub since: String,
    /// What tells this run's lock from any other.
    pub token: String,
}

impl Holder {
    /// This process, running `command`.
    pub fn me(command: &str) -> Holder {
        use rand::Rng;
        let token: String = (0..16)
            .map(|_| format!("{:02x}", rand::thread_rng().gen::<u8>()))
            .collect();
        let user = match (std::env::var("SUDO_USER"), std::env::var("USER")) {
            (Ok(s), Ok(u)) if u == "root" && !s.is_empty() => format!("{s} (sudo)"),
            (_, Ok(u)) if !u.is_empty() => u,
            _ => "unknown".into(),
        };
        Holder {
            command: command.into(),
            user,
            machine: this_machine(),
            pid: std::process::id(),
            started: process_start(std::process::id()),
            since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            token,
        }
    }

    /// "warren apply by alice on laptop (pid 4242) since 2026-12-02T18:40:03Z".
    pub fn describe(&self) -> String {
        let age = humantime::parse_rfc3339(&self.since)
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map(|d| format!(", {} min ago", d.as_secs() / 60))
            .unwrap_or_default();
        format!(
            "warren {} by {} on {} (pid {}) since {}{age}",
            self.command, self.user, self.machine, self.pid, self.since
        )
    }

    /// The holder ran on this machine and its process no longer runs: nobody will
    /// finish or release it.
    pub fn provably_gone(&self) -> bool {
        if self.machine != this_machine() || !std::path::Path::new("/proc/self").exists() {
            return false;
        }
        match process_start(self.pid) {
            None => true,
            Some(start) => self.started.is_some_and(|s| s != start),
        }
    }
}

/// The name this machine gives itself.
fn this_machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A process's start time (field 22 of /proc/PID/stat), when it runs.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in brackets and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A lock this run holds on the central host.
#[derive(Debug)]
pub struct Lock {
    holder: Holder,
    /// Said when the lock was taken over or broken.
    pub note: Option<String>,
}

enum Answer {
    Taken,
    Held(String),
}

fn attempt(t: &mut dyn Transport, content: &str, replacing: Option<&str>) -> Result<Answer> {
    let script = t.platform().take_lock(content, replacing);
    let out = t.run(&script, TIMEOUT)?;
    let text = out.stdout.replace('\r', "");
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("@@taken") if out.ok() => Ok(Answer::Taken),
        Some("@@held") => Ok(Answer::Held(lines.collect::<Vec<_>>().join("\n"))),
        _ => bail!(
            "{}: taking the lock {} failed: {}",
            t.host(),
            t.platform().lock_path(),
            out.last_line()
        ),
    }
}

/// Takes the lock on the central host `t` for `command`, or says who holds it.
pub fn take(t: &mut dyn Transport, command: &str, break_lock: bool) -> Result<Lock> {
    let me = Holder::me(command);
    let content = serde_json::to_string(&me).expect("holder serializes");
    let path = t.platform().lock_path();
    let held = match attempt(t, &content, None)? {
        Answer::Taken => {
            return Ok(Lock {
                holder: me,
                note: None,
            })
        }
        Answer::Held(text) => text,
    };
    let old: Option<Holder> = serde_json::from_str(held.trim()).ok();
    let note = match &old {
        Some(h) if h.provably_gone() => format!(
            "took over the lock of {}: that process no longer runs on this machine; this run finishes what it left",
            h.describe()
        ),
        Some(h) if break_lock => format!("broke the lock of {} (--break-lock)", h.describe()),
        None if break_lock => format!("broke the unreadable lock file {path} (--break-lock)"),
        Some(h) => bail!(
            "{}: {} holds the lock ({path}): one operator at a time; wait for it to finish, or, if that run is gone (its machine crashed or lost the network), rerun with --break-lock",
            t.host(),
            h.describe()
        ),
        None => bail!(
            "{}: the lock file {path} exists but does not say who holds it; if no warren run is in progress, rerun with --break-lock",
            t.host()
        ),
    };
    match attempt(t, &content, Some(held.trim()))? {
        Answer::Taken => Ok(Lock {
            holder: me,
            note: Some(note),
        }),
        Answer::Held(_) => bail!(
            "{}: another run took the lock ({path}) while this one was taking it over; rerun to see who holds it",
            t.host()
        ),
    }
}

/// Releases the lock if it is still this run's.
pub fn release(t: &mut dyn Transport, lock: &Lock) -> Result<()> {
    let script = t.platform().release_lock(&lock.holder.token);
    let out = t.run(&script, TIMEOUT)?;
    if !out.ok() {
        bail!(
            "{}: releasing the lock {} failed: {}; delete it by hand once no warren run is in progress",
            t.host(),
            t.platform().lock_path(),
            out.last_line()
        );
    }
    Ok(())
}

/// Who holds the lock on the central host now, if anyone (read-only).
pub fn read(p: &mut dyn Probe) -> Result<Option<Holder>> {
    let q = p.platform().read_lock();
    let out = p.query(&q, TIMEOUT)?;
    let text = out.stdout.trim();
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(text).unwrap_or(Holder {
        command: "?".into(),
        user: "?".into(),
        machine: "?".into(),
        pid: 0,
        started: None,
        since: "?".into(),
        token: String::new(),
    })))
}

/// What `plan` and `verify` say when a run holds the lock.
pub fn in_progress(h: &Holder) -> String {
    if h.provably_gone() {
        format!(
            "a run was interrupted: {} no longer runs; the next `warren apply` takes its lock over and finishes what it left",
            h.describe()
        )
    } else {
        format!(
            "a run is in progress: {}; what this shows may change under it",
            h.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_not_gone_and_a_dead_pid_is() {
        let me = Holder::me("apply");
        assert!(!me.provably_gone());
        assert!(me.started.is_some());
        let mut dead = me.clone();
        dead.pid = u32::MAX - 1;
        assert!(dead.provably_gone());
        let mut reused = me.clone();
        reused.started = Some(me.started.unwrap() + 1);
        assert!(reused.provably_gone());
        let mut elsewhere = dead.clone();
        elsewhere.machine = "another-machine".into();
        assert!(!elsewhere.provably_gone());
    }

    #[test]
    fn the_holder_is_described_for_an_operator() {
        let h = Holder::me("apply");
        let d = h.describe();
        assert!(d.starts_with("warren apply by "), "{d}");
        assert!(d.contains(&format!("(pid {})", std::process::id())), "{d}");
        assert!(d.contains("0 min ago"), "{d}");
    }
}
