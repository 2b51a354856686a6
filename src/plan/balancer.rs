//! HAProxy in the plan: started when it does not run, reloaded when its haproxy.cfg
//! changes, refused where it is not installed. `apply/balancer.rs` carries it out at
//! the very end of `apply`, once every node has joined: a node joining serves, for a
//! moment, an empty broker of its own, which no client should meet.

use super::{Blocker, HostPlan};
use crate::facts::balancer::BalancerFacts;
use crate::inventory::Inventory;
use crate::platform::balancer::CONFIG;

/// What apply does with HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Leave,
    Start,
    Reload,
}

#[derive(Debug, Clone)]
pub struct BalancerPlan {
    pub host: String,
    pub action: Action,
    pub why: String,
}

/// Plans HAProxy: started when it does not run, reloaded when its configuration
/// changes, refused (a blocker) where it is not installed.
pub fn plan(
    inv: &Inventory,
    hosts: &[HostPlan],
    facts: Option<&std::result::Result<BalancerFacts, String>>,
    blockers: &mut Vec<Blocker>,
) -> Option<BalancerPlan> {
    let lb = inv.load_balancer.as_ref()?;
    let host = inv.hosts[lb.host].name.clone();
    let f = match facts? {
        Ok(f) => f,
        Err(e) => {
            blockers.push(Blocker {
                host: host.clone(),
                message: e.clone(),
            });
            return None;
        }
    };
    if f.version.is_none() {
        blockers.push(Blocker {
            host: host.clone(),
            message: format!(
                "HAProxy is not installed, and {} names this host in [load_balancer]: install Debian's package (apt-get install haproxy), then rerun",
                inv.path.display()
            ),
        });
        return None;
    }
    let changed = hosts[lb.host].files.iter().any(|c| c.path == CONFIG);
    let (action, why) = match (f.running, changed) {
        (false, _) => (Action::Start, "not running: start it".to_string()),
        (true, true) => (
            Action::Reload,
            "haproxy.cfg changed: reload (open connections stay until they close)".to_string(),
        ),
        (true, false) => (
            Action::Leave,
            "running with the rendered haproxy.cfg".to_string(),
        ),
    };
    Some(BalancerPlan { host, action, why })
}
