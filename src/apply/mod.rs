//! The executor: runs exactly the plan's steps, wave by wave (see `plan::Wave`): the
//! hosts of a parallel wave side by side, each on its own connection, a rolling wave
//! one node at a time; then the cluster's resources. It stops after the first wave
//! that fails and says what was done and what was not. Everything it does can be
//! done again: a rerun plans from the facts and picks up where this one stopped.

mod balancer;
mod cluster;
mod host;
mod links;
mod membership;
mod migrate;
mod placement;
mod report;
mod waves;

pub use links::{link_runner, link_state, LinkState};
pub use placement::{placement_problems, PlacementProblem};
pub use report::{Failed, Report};
pub use waves::execute;

use crate::facts;
use crate::inventory::Inventory;
use crate::plan::{Plan, Service};
use crate::platform::Transport;
use crate::rabbitmq::api::Credentials;
use crate::ui::Progress;
use anyhow::Result;
use std::sync::Mutex;

pub struct Executor<'a> {
    inv: &'a Inventory,
    conns: &'a mut [Box<dyn Transport>],
    progress: &'a Progress,
    force: bool,
    report: Mutex<Report>,
}

/// What a host's step needs besides the host's own connection: shared by the threads
/// of a wave, each of which holds only its own host's connection.
struct Ctx<'a> {
    inv: &'a Inventory,
    progress: &'a Progress,
    force: bool,
    report: &'a Mutex<Report>,
}

/// How much of the overall progress bar each kind of step is: the bar moves with
/// the work that takes the time (a node's start or join), not with the count of
/// quick changes.
pub const WEIGHT_NODE: u64 = 10;
/// The part of a restart's weight its stop is.
pub const WEIGHT_STOP: u64 = 3;
pub const WEIGHT_JOIN: u64 = 10;

/// The length of the progress bar for `plan`: what the steps weigh.
pub fn work(plan: &Plan) -> u64 {
    let hosts: u64 = plan
        .hosts
        .iter()
        .filter(|h| h.changes())
        .map(|h| match h.service {
            Service::Leave => 1,
            _ => WEIGHT_NODE,
        })
        .sum();
    hosts
        + WEIGHT_JOIN * plan.joins.len() as u64
        + WEIGHT_NODE * plan.departures.len() as u64
        + plan.cluster.changes().len() as u64
        + plan
            .links
            .iter()
            .map(|l| l.plan.changes().len() as u64 + 1)
            .sum::<u64>()
        + 1
}

impl<'a> Executor<'a> {
    pub fn new(
        inv: &'a Inventory,
        conns: &'a mut [Box<dyn Transport>],
        progress: &'a Progress,
    ) -> Executor<'a> {
        Executor {
            inv,
            conns,
            progress,
            force: false,
            report: Mutex::new(Report::default()),
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            inv: self.inv,
            progress: self.progress,
            force: self.force,
            report: &self.report,
        }
    }

    /// The central node's API and credentials that work now.
    pub fn api(&mut self) -> Result<(usize, u16, Credentials)> {
        let ci = self.inv.central_index();
        let (port, c) = facts::node_api(&mut *self.conns[ci], self.inv, ci)?;
        Ok((ci, port, c))
    }
}

#[cfg(test)]
mod transcripts;
