//! What a run says: the report of what was done, the failure with what was done and
//! what was not, and the lines each step adds to them.

use super::{Ctx, Executor};
use crate::plan::{HostPlan, Service};

#[derive(Debug, Default)]
pub struct Report {
    /// What was done, one line each, in order.
    pub done: Vec<String>,
    pub restarted: Vec<String>,
    pub joined: Vec<String>,
    pub cluster_changes: usize,
    /// (phase, seconds)
    pub timings: Vec<(String, f64)>,
}

/// A failed apply: what failed, what had been done, what was left.
#[derive(Debug)]
pub struct Failed {
    pub error: anyhow::Error,
    pub done: Vec<String>,
    pub not_done: Vec<String>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:#}", self.error)?;
        if self.done.is_empty() {
            writeln!(f, "nothing was changed")?;
        } else {
            writeln!(f, "done before the failure:")?;
            for d in &self.done {
                writeln!(f, "  {d}")?;
            }
        }
        if !self.not_done.is_empty() {
            writeln!(f, "not done:")?;
            for d in &self.not_done {
                writeln!(f, "  {d}")?;
            }
        }
        write!(
            f,
            "fix the cause and rerun `warren apply`: it continues from here"
        )
    }
}

impl std::error::Error for Failed {}

pub(super) fn host_summary(hp: &HostPlan) -> String {
    let mut parts = Vec::new();
    if !hp.leftovers.is_empty() {
        parts.push(format!(
            "delete {} file(s) an interrupted run left",
            hp.leftovers.len()
        ));
    }
    if !hp.files.is_empty() {
        parts.push(format!("write {} file(s)", hp.files.len()));
    }
    match &hp.service {
        Service::Restart { .. } => parts.push("restart RabbitMQ".into()),
        Service::Start => parts.push("start RabbitMQ".into()),
        Service::AwaitBoot => parts.push("wait for RabbitMQ to finish booting".into()),
        Service::StartApp => parts.push("start the rabbit application".into()),
        Service::Leave => {}
    }
    if !hp.start_plugins.is_empty() {
        parts.push(format!("start plugins {}", hp.start_plugins.join(", ")));
    }
    if let Some(up) = &hp.upgrade {
        parts.push(format!("upgrade ({})", up.changes.join("; ")));
    }
    if hp.revive {
        parts.push("revive the node from maintenance mode".into());
    }
    parts.join(", ")
}

impl<'a> Ctx<'a> {
    pub(super) fn did(&self, host: &str, what: String, weight: u64) {
        self.progress.done_weighted(host, &what, weight);
        self.report
            .lock()
            .unwrap()
            .done
            .push(format!("{host}: {what}"));
    }

    pub(super) fn note(&self, line: String) {
        self.report.lock().unwrap().done.push(line);
    }
}

impl<'a> Executor<'a> {
    pub(super) fn did(&mut self, host: &str, what: String) {
        self.ctx().did(host, what, 1);
    }

    pub(super) fn timing(&mut self, phase: String, secs: f64) {
        self.report.get_mut().unwrap().timings.push((phase, secs));
    }

    /// Takes the done lines so far (the drill reports them as its own).
    pub(super) fn take_done(&mut self) -> Vec<String> {
        std::mem::take(&mut self.report.get_mut().unwrap().done)
    }
}
