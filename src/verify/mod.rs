//! `warren verify`: checks of the live cluster against the inventory, each with the
//! host it concerns, pass or fail, a one-line detail and, where there is an obvious
//! fix, a hint. Everything is read from the hosts and from RabbitMQ itself.

use crate::facts;
use crate::inventory::Inventory;
use crate::platform::Probe;
use crate::render::Rendered;
use serde::Serialize;
use std::time::Duration;

mod balancer;
mod cluster;
mod links;
mod listeners;
mod nodes;
mod path;
mod users;

use cluster::{cluster_checks, policies};
use listeners::listeners;
use nodes::plugins;
use path::path;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub host: String,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn add(
        &mut self,
        name: &str,
        host: &str,
        ok: bool,
        detail: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.0.push(Check {
            name: name.to_string(),
            host: host.to_string(),
            ok,
            detail: detail.into(),
            hint: if ok { None } else { hint.map(str::to_string) },
        });
    }
}

const APPLY: &str = "run `warren plan` to see the drift and `warren apply` to repair it";

/// Runs every check. Never stops at the first failure: one unreachable host fails its
/// own checks and the cluster's are still read through the others.
pub fn run(inv: &Inventory, rendered: &Rendered) -> Vec<Check> {
    run_reading_lock(inv, rendered).0
}

/// `run`, and who holds the lock of a run in progress on the central host (read
/// first: the checks may fail because of what that run is doing).
pub fn run_reading_lock(
    inv: &Inventory,
    rendered: &Rendered,
) -> (Vec<Check>, Option<crate::lock::Holder>) {
    let mut c = Checks::default();

    // Hosts: reachable, RabbitMQ running, cookie, the node's own view of the cluster.
    let mut conns = nodes::reach(&mut c, inv);
    let holder = conns[inv.central_index()]
        .as_mut()
        .and_then(|t| crate::lock::read(&mut **t as &mut dyn Probe).ok())
        .flatten();
    let creds = facts::credentials(inv);
    let host_facts = nodes::hosts(&mut c, inv, rendered, &mut conns);

    // The cluster, through the first node whose management API answers.
    let order = inv.central_first();
    let via = order
        .iter()
        .copied()
        .filter(|&i| inv.is_member(i))
        .find(|&i| {
            host_facts[i].as_ref().is_some_and(|f| f.node.api.is_some()) && conns[i].is_some()
        });
    let Some(vi) = via else {
        c.add(
            "management API",
            "cluster",
            false,
            "no node's management API answers",
            Some("start RabbitMQ; `warren apply` enables the management plugin"),
        );
        return (c.0, holder);
    };
    let port = host_facts[vi].as_ref().map(|f| f.api_port).unwrap_or(15672);
    let cred = host_facts[vi]
        .as_ref()
        .and_then(|f| f.node.api.clone())
        .expect("api checked");
    let t = conns[vi].as_mut().expect("connected");
    // The management API's queue and node details are statistics that RabbitMQ
    // refreshes every few seconds, so right after a restart or a master move they
    // can describe a moment ago. A failing statistics check is read again until the
    // statistics have had time to catch up; only a failure that outlasts that is
    // reported. Not when a host check has failed already: verify fails anyway, and
    // a node that is down explains queues away from home, so waiting would only
    // delay the answer. Users and permissions are read live and are not waited for.
    let settle = c.0.iter().all(|k| k.ok);
    let deadline = std::time::Instant::now() + SETTLE;
    let mut last = None;
    loop {
        let checks = match facts::gather_cluster(&mut **t, port, &cred) {
            Ok(cf) => {
                let checks = cluster_checks(inv, &cf);
                last = Some(cf);
                checks
            }
            Err(e) => {
                let mut x = Checks::default();
                x.add(
                    "cluster resources",
                    &inv.hosts[vi].name,
                    false,
                    format!("{e:#}"),
                    None,
                );
                x
            }
        };
        let stale = checks
            .0
            .iter()
            .any(|k| !k.ok && SETTLING_CHECKS.contains(&k.name.as_str()));
        if !settle || !stale || std::time::Instant::now() >= deadline {
            c.0.extend(checks.0);
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if let Some(cf) = &last {
        plugins(&mut c, inv, cf, &mut conns);
        policies(
            &mut c,
            inv,
            cf,
            &mut **conns[vi].as_mut().expect("connected"),
        );
    }
    listeners(&mut c, inv, &mut conns);
    path(&mut c, inv, &mut conns, &creds);
    links::check(&mut c, inv, &host_facts, &mut conns);
    balancer::check(&mut c, inv, &host_facts, &mut conns, &creds);
    (c.0, holder)
}

/// How long a failing cluster check is read again before it is reported: two of
/// RabbitMQ's statistics intervals (5 s by default) and a margin.
const SETTLE: Duration = Duration::from_secs(12);

/// The cluster checks worth reading again: those from the API's statistics, and a
/// failed reading (the others are read live).
const SETTLING_CHECKS: [&str; 3] = ["alarms", "queue placement", "cluster resources"];
