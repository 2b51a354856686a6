//! `warren doctor`: every assumption warren makes about each host, checked before
//! anything changes. It reads through the same read-only `Probe`s as `plan` (the fact
//! reading, plus the doctor's own reading, name lookups and port probes) and prints one
//! line per check: `ok`, `warn` (works, but the operator should know, or `apply` will
//! change it) or `fail` (warren's run would fail or leave something wrong), each with
//! what was found and, when not ok, the fix in one sentence.
//!
//! Here: the lines and the run; a host's own checks (`host.rs`), the names and ports
//! between hosts (`network.rs`, which also gives `plan` its blockers for a join), and
//! the TLS files on the operator's machine (`tls.rs`).

mod host;
mod network;
mod tls;
#[cfg(test)]
mod windows_reading;

pub use network::preflight;

use crate::facts::{self, HostFacts};
use crate::inventory::Inventory;
use crate::platform::{Probe, Transport};
use crate::render::Rendered;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check of one host.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub status: Status,
    pub check: String,
    pub host: String,
    pub found: String,
    /// What to do about it, in one sentence; for every line that is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The lines of one host, in the order checked.
#[derive(Default)]
struct Lines(Vec<Line>);

impl Lines {
    fn ok(&mut self, check: &str, host: &str, found: impl Into<String>) {
        self.push(Status::Ok, check, host, found.into(), None);
    }
    fn warn(&mut self, check: &str, host: &str, found: impl Into<String>, fix: impl Into<String>) {
        self.push(Status::Warn, check, host, found.into(), Some(fix.into()));
    }
    fn fail(&mut self, check: &str, host: &str, found: impl Into<String>, fix: impl Into<String>) {
        self.push(Status::Fail, check, host, found.into(), Some(fix.into()));
    }
    fn push(
        &mut self,
        status: Status,
        check: &str,
        host: &str,
        found: String,
        fix: Option<String>,
    ) {
        self.0.push(Line {
            status,
            check: check.to_string(),
            host: host.to_string(),
            found,
            fix,
        });
    }
}

/// Every check of the hosts in `only` (every host when empty). The names and ports
/// between two hosts are checked when either is among them. Changes nothing.
pub fn run(inv: &Inventory, rendered: &Rendered, only: &[String]) -> Vec<Line> {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut conns: Vec<Option<Box<dyn Transport>>> = Vec::new();
    let mut lines = Lines::default();
    for (h, c) in inv.hosts.iter().zip(facts::connect_all(inv)) {
        match c {
            Ok(t) => {
                if wanted(&h.name) {
                    lines.ok("reach", &h.name, host::reached(h, &*t));
                }
                conns.push(Some(t));
            }
            Err(e) => {
                if wanted(&h.name) {
                    lines.fail("reach", &h.name, format!("{e:#}"), host::reach_fix(h));
                }
                conns.push(None);
            }
        }
    }
    // Each host's own checks, in parallel; its facts are kept for the network's.
    let creds = facts::credentials(inv);
    let read: Vec<(Vec<Line>, Option<HostFacts>)> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .zip(&inv.hosts)
            .zip(&rendered.hosts)
            .map(|((c, h), d)| {
                let creds = &creds;
                s.spawn(move || match c {
                    Some(t) => host::checks(&mut **t as &mut dyn Probe, inv, h, d, creds, now),
                    None => (Vec::new(), None),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|j| j.join().unwrap_or_else(|_| (Vec::new(), None)))
            .collect()
    });
    let mut host_facts = Vec::new();
    for ((own, f), h) in read.into_iter().zip(&inv.hosts) {
        if wanted(&h.name) {
            lines.0.extend(own);
        }
        host_facts.push(f);
    }
    for h in inv.hosts.iter().filter(|h| wanted(&h.name)) {
        tls::checks(&mut lines, h);
    }
    let probes: Vec<Option<&mut dyn Probe>> = conns
        .iter_mut()
        .map(|c| c.as_mut().map(|t| &mut **t as &mut dyn Probe))
        .collect();
    network::checks(&mut lines, inv, rendered, &host_facts, probes, &wanted);
    lines.0
}

/// Whether any line fails.
pub fn failed(lines: &[Line]) -> bool {
    lines.iter().any(|l| l.status == Status::Fail)
}
