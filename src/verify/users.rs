//! Users and permissions on a broker (the cluster's, or a linked site's own): each
//! site's user reaches nothing of the other sites, and every user is as declared.

use super::{Checks, APPLY};
use crate::facts::ClusterFacts;
use crate::inventory::Inventory;
use crate::plan::cluster::{self as cplan, ClusterPlan, Resource};

/// Each site's user on broker `b` reaches nothing of the other sites, by the
/// permissions RabbitMQ holds for it (which may have been changed by hand).
pub(super) fn site_users(
    c: &mut Checks,
    inv: &Inventory,
    cf: &ClusterFacts,
    b: crate::inventory::Broker,
) {
    for u in inv.users_on(b) {
        let Some(own) = u.site else { continue };
        let site = &inv.hosts[own].name;
        let held = cf
            .permissions
            .iter()
            .find(|p| p.user == u.name && p.vhost == inv.cluster.vhost);
        let (ok, detail) = match held {
            None => (
                true,
                format!("{} has no permissions in the virtual host", u.name),
            ),
            Some(p) => match inv.reach_beyond(own, &p.configure, &p.write, &p.read) {
                Ok(reach) if reach.is_empty() => (
                    true,
                    format!("{} reaches no other site's exchange or queue", u.name),
                ),
                Ok(reach) => (false, format!("{} may {}", u.name, reach.join(", "))),
                Err(e) => (false, format!("{}: {e}", u.name)),
            },
        };
        c.add("site user isolation", site, ok, detail, Some(APPLY));
    }
}

/// Users and permissions on broker `b` as declared.
pub(super) fn users_as_declared(
    c: &mut Checks,
    inv: &Inventory,
    cf: &ClusterFacts,
    b: crate::inventory::Broker,
) {
    let host = match b {
        crate::inventory::Broker::Cluster => "cluster".to_string(),
        crate::inventory::Broker::Site(i) => inv.hosts[inv.sites[i].host].name.clone(),
    };
    if let ClusterPlan::Known { changes, .. } = cplan::plan(inv, b, &Ok(cf.clone())) {
        let drift: Vec<String> = changes
            .iter()
            .filter(|ch| matches!(ch.resource, Resource::User | Resource::Permission))
            .map(|ch| format!("{} {}: {}", ch.resource.label(), ch.name, ch.detail))
            .collect();
        c.add(
            "users and permissions",
            &host,
            drift.is_empty(),
            if drift.is_empty() {
                format!("{} user(s) as declared", inv.users_on(b).count())
            } else {
                drift.join("; ")
            },
            Some(APPLY),
        );
    }
}
