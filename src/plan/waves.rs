//! The order `apply` takes the hosts in: waves of one kind each (brought up, no
//! restart, the seed, fresh nodes, standalone brokers, rolling members, upgrades,
//! joins), each side by side or one at a time.

use super::{HostPlan, Join, Service};
use crate::facts::{Facts, HostFacts};
use crate::inventory::Inventory;

/// How a group of hosts goes through `apply`, and so why they may go together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveKind {
    /// Nodes that are down or coming up (an interrupted run leaves them so): brought
    /// up together, first, so that no restart ever takes a second node down. Nodes of
    /// a stopped cluster must start together anyway: each waits for its peers' tables.
    BringUp,
    /// Everything that needs no restart (files, host settings, leftovers, plugins
    /// started again): every host at once.
    NoRestart,
    /// The central node, on its own: the seed every other node joins must run first.
    Seed,
    /// Nodes that hold no messages and belong to no cluster (a fresh install, a node
    /// being added): nothing on them can be lost or disrupted, so their files,
    /// restarts and joins all run at once, against the running seed.
    Fresh,
    /// Linked sites' standalone brokers that restart: each is a broker of its own
    /// (its link buffers while it is down), so they restart side by side.
    Standalone,
    /// Members of the running cluster: one at a time, each after every queue copy is
    /// back, so that RabbitMQ can always promote a synchronised copy.
    Rolling,
    /// Nodes upgraded to the inventory's pinned versions: one at a time, sites first,
    /// each drained (maintenance mode) before it stops and revived after, its
    /// masters given back, every copy back before the next.
    Upgrade,
    /// Joins of nodes whose state could not be read as fresh (not running at plan
    /// time, or reset by --force): one at a time, membership read right before.
    Joins,
}

/// A group of hosts that `apply` takes through one kind of step.
#[derive(Debug, Clone)]
pub struct Wave {
    pub kind: WaveKind,
    /// Indexes into the inventory's hosts, in the order they start.
    pub hosts: Vec<usize>,
}

impl Wave {
    /// Whether the hosts of this wave run side by side.
    pub fn parallel(&self) -> bool {
        matches!(
            self.kind,
            WaveKind::BringUp | WaveKind::NoRestart | WaveKind::Fresh | WaveKind::Standalone
        )
    }

    /// Why these hosts go this way, for the plan.
    pub fn why(&self) -> &'static str {
        match self.kind {
            WaveKind::BringUp => "down or coming up: brought up together before anything restarts",
            WaveKind::NoRestart => "nothing they change needs a restart: all at once, before any restart",
            WaveKind::Seed => "the seed: it runs before any node joins it",
            WaveKind::Fresh => "no messages and in no cluster: files and restarts all at once (beside the seed's, when it restarts too), each joining the seed once it runs",
            WaveKind::Standalone => "linked sites' standalone brokers, no cluster members: restarted side by side (each link resumes when its ends are back)",
            WaveKind::Rolling => "members of the running cluster: one at a time, each after every queue copy is back",
            WaveKind::Upgrade => "upgraded one at a time, sites first and the central node last: each drained before it stops and revived after, its masters given back, every queue copy back before the next",
            WaveKind::Joins => "not read as fresh: joined one at a time, membership read right before",
        }
    }
}

/// Whether the facts show a node that nothing can be lost on: running, standalone (a
/// member of no cluster but its own) and holding no messages. Only such a node is
/// restarted and joined side by side with others.
pub fn is_fresh(f: &HostFacts) -> bool {
    f.node.state == crate::facts::NodeState::Running
        && f.node
            .membership
            .as_ref()
            .is_some_and(|m| m.nodes == [m.node.clone()])
        && f.node.messages == Some(0)
}

/// The waves: nodes down or coming up first, all at once; then every change that
/// needs no restart, on all hosts at once; then the seed alone when it is not yet a
/// member of a cluster with others; then every fresh node at once (files, restart,
/// join); then the running members that restart, one at a time; then the joins of
/// nodes that could not be read as fresh, one at a time.
pub(super) fn waves(
    inv: &Inventory,
    facts: &Facts,
    hosts: &[HostPlan],
    joins: &[Join],
) -> Vec<Wave> {
    let ci = inv.central_index();
    let joining = |i: usize| joins.iter().any(|j| j.host == inv.hosts[i].name);
    let central_alone = facts.hosts[ci]
        .node
        .membership
        .as_ref()
        .is_none_or(|m| m.nodes.iter().all(|n| *n == m.node));
    let mut by_kind: Vec<(WaveKind, Vec<usize>)> = [
        WaveKind::BringUp,
        WaveKind::NoRestart,
        WaveKind::Seed,
        WaveKind::Fresh,
        WaveKind::Standalone,
        WaveKind::Rolling,
        WaveKind::Upgrade,
        WaveKind::Joins,
    ]
    .into_iter()
    .map(|k| (k, Vec::new()))
    .collect();
    let mut put = |k: WaveKind, i: usize| {
        if let Some((_, v)) = by_kind.iter_mut().find(|(kind, _)| *kind == k) {
            v.push(i);
        }
    };
    for i in inv.central_first() {
        let (hp, f) = (&hosts[i], &facts.hosts[i]);
        let upgrading = hp.upgrade.is_some() && hp.service != Service::Start;
        let fresh = i != ci && joining(i) && is_fresh(f) && !upgrading;
        match hp.service {
            // A node that is down is upgraded before it starts; one that runs, in
            // the upgrade wave (its files written while it is stopped there).
            _ if upgrading => put(WaveKind::Upgrade, i),
            Service::Start | Service::AwaitBoot | Service::StartApp => put(WaveKind::BringUp, i),
            _ if fresh => put(WaveKind::Fresh, i),
            Service::Restart { .. } if i == ci && central_alone => put(WaveKind::Seed, i),
            Service::Restart { .. } if inv.is_linked(i) => put(WaveKind::Standalone, i),
            Service::Restart { .. } => put(WaveKind::Rolling, i),
            Service::Leave if hp.changes() => put(WaveKind::NoRestart, i),
            Service::Leave => {}
        }
        if joining(i) && !fresh {
            put(WaveKind::Joins, i);
        }
    }
    by_kind
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(kind, hosts)| Wave { kind, hosts })
        .collect()
}
