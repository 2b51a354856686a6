//! The cluster's resources (vhosts, users, permissions, policies, exchanges, queues,
//! bindings, parameters) as a fresh reading shows them left to do, through the API.

use super::migrate::Migration;
use super::Executor;
use crate::facts;
use crate::inventory::Broker;
use crate::plan::cluster::{self as cplan, ClusterPlan, Op};
use crate::rabbitmq::api::{self, enc};
use anyhow::{anyhow, bail, Result};
use serde_json::json;

/// Whether `op` is done before a rolling restart: what needs no restart and no node
/// that is not running now. A binding to a queue not there yet waits for its queue,
/// which may wait for its node (a run killed while a new node stopped for its first
/// restart leaves it not fresh: the rerun's restart then comes before its join).
fn before_restarts(op: &Op, now: &facts::ClusterFacts) -> bool {
    let running = |n: &str| now.nodes.iter().any(|x| x.name == n && x.running);
    match op {
        Op::MoveMaster { .. } | Op::SyncQueue { .. } => false,
        Op::DeclareQueue { node, members, .. } => {
            running(node) && members.iter().all(|m| running(m))
        }
        Op::AddMember { node, .. } => running(node),
        Op::PutBinding(b) if b.destination_type == "queue" => now
            .queues
            .iter()
            .any(|q| q.name == b.destination && q.vhost == b.vhost),
        _ => true,
    }
}

impl<'a> Executor<'a> {
    pub(super) fn cluster(&mut self) -> Result<()> {
        self.cluster_ops(Broker::Cluster, &|_, _| true, true)
    }

    /// Before a rolling restart: the cluster changes that need no restart and no node
    /// that is not running now (definitions, users, policies, queues on running
    /// nodes). Where masters live is left to the pass after the restarts, which
    /// would move them again.
    pub(super) fn cluster_before_restarts(&mut self) -> Result<()> {
        self.cluster_ops(Broker::Cluster, &before_restarts, false)
    }

    /// The cluster's resources: what a fresh reading shows is left to do, the
    /// operations `keep` lets through, then (with `read_back`) the placement read
    /// back.
    pub(super) fn cluster_ops(
        &mut self,
        b: Broker,
        keep: &dyn Fn(&Op, &facts::ClusterFacts) -> bool,
        read_back: bool,
    ) -> Result<()> {
        let inv = self.inv;
        let ci = inv.broker_host(b);
        let (port, creds) = facts::node_api(&mut *self.conns[ci], inv, ci)?;
        let central = inv.hosts[ci].name.clone();
        let now = facts::gather_cluster(&mut *self.conns[ci], port, &creds)?;
        // The plan said what to make sure of; what is left to do is read now.
        let fresh = cplan::plan(inv, b, &Ok(now.clone()));
        if let ClusterPlan::Known { blockers, .. } = &fresh {
            if let Some(b) = blockers.first() {
                bail!("{b}");
            }
        }
        let vh = enc(&inv.cluster.vhost);
        for ch in fresh.changes().iter().filter(|ch| keep(&ch.op, &now)) {
            crate::interrupt::checkpoint()?;
            let t = &mut *self.conns[ci];
            match &ch.op {
                Op::PutVhost(v) => api::send(
                    t,
                    port,
                    &creds,
                    "PUT",
                    &format!("/api/vhosts/{}", enc(v)),
                    &json!({}),
                )?,
                Op::PutUser { name, tags } => {
                    let pw = inv
                        .password_of(name)
                        .map_err(|e| anyhow!("user {name}: {e}"))?;
                    api::send(
                        t,
                        port,
                        &creds,
                        "PUT",
                        &format!("/api/users/{}", enc(name)),
                        &json!({"password": pw.expose(), "tags": tags.join(",")}),
                    )?
                }
                Op::PutPermission(p) => api::send(
                    t,
                    port,
                    &creds,
                    "PUT",
                    &format!("/api/permissions/{}/{}", enc(&p.vhost), enc(&p.user)),
                    &json!({"configure": p.configure, "write": p.write, "read": p.read}),
                )?,
                Op::PutPolicy(p) => api::send(
                    t,
                    port,
                    &creds,
                    "PUT",
                    &format!("/api/policies/{}/{}", enc(&p.vhost), enc(&p.name)),
                    &json!({"pattern": p.pattern, "definition": p.definition, "priority": p.priority, "apply-to": p.apply_to}),
                )?,
                Op::PutExchange(e) => api::send(
                    t,
                    port,
                    &creds,
                    "PUT",
                    &format!("/api/exchanges/{vh}/{}", enc(&e.name)),
                    &json!({"type": e.kind, "durable": e.durable, "auto_delete": e.auto_delete, "internal": e.internal, "arguments": e.arguments}),
                )?,
                Op::DeclareQueue { def, node, members } => {
                    api::send(
                        t,
                        port,
                        &creds,
                        "PUT",
                        &format!("/api/queues/{vh}/{}", enc(&def.name)),
                        &json!({"durable": def.durable, "auto_delete": def.auto_delete, "arguments": def.arguments, "node": node}),
                    )?;
                    if !members.is_empty() {
                        self.fix_members(ci, port, &creds, &def.name, members)?;
                    }
                }
                Op::PutBinding(b) => api::send(
                    t,
                    port,
                    &creds,
                    "POST",
                    &format!(
                        "/api/bindings/{vh}/e/{}/q/{}",
                        enc(&b.source),
                        enc(&b.destination)
                    ),
                    &json!({"routing_key": b.routing_key, "arguments": b.arguments}),
                )?,
                Op::PutParameter(p) => {
                    let pw = inv.sites[p.site]
                        .link_password
                        .as_ref()
                        .ok_or_else(|| anyhow!("site {}: no link_password", p.name))?
                        .read_or_create_random()
                        .map_err(|e| anyhow!("{}: link_password: {e}", p.name))?;
                    api::send(
                        t,
                        port,
                        &creds,
                        "PUT",
                        &format!("/api/parameters/{}/{vh}/{}", p.component, enc(&p.name)),
                        &json!({"component": p.component, "vhost": p.vhost, "name": p.name, "value": p.with_password(pw.expose())}),
                    )?
                }
                Op::DeleteParameter { component, name } => api::delete(
                    t,
                    port,
                    &creds,
                    &format!("/api/parameters/{component}/{vh}/{}", enc(name)),
                )?,
                Op::AddMember { queue, node } => self.member(ci, queue, node, true)?,
                Op::DeleteMember { queue, node } => self.member(ci, queue, node, false)?,
                Op::MoveMaster { queue, to, .. } => {
                    self.move_master(ci, port, &creds, queue, to)?
                }
                Op::DeleteUser { name } => {
                    api::delete(t, port, &creds, &format!("/api/users/{}", enc(name)))?
                }
                Op::DeletePolicy { name } => api::delete(
                    t,
                    port,
                    &creds,
                    &format!("/api/policies/{vh}/{}", enc(name)),
                )?,
                Op::DeleteQueue { name, if_empty } => {
                    let path = format!("/api/queues/{vh}/{}", enc(name));
                    if !*if_empty {
                        api::delete(t, port, &creds, &path)?
                    } else if !api::delete_if_empty(t, port, &creds, &path)? {
                        bail!(
                            "queue {name} took messages since the plan, so warren left it: rerun to see what to do with them"
                        )
                    }
                }
                Op::DeleteExchange { name } => api::delete(
                    t,
                    port,
                    &creds,
                    &format!("/api/exchanges/{vh}/{}", enc(name)),
                )?,
                Op::SyncQueue { queue } => api::send(
                    t,
                    port,
                    &creds,
                    "POST",
                    &format!("/api/queues/{vh}/{}/actions", enc(queue)),
                    &json!({"action": "sync"}),
                )?,
                Op::MigrateQueue {
                    def,
                    node,
                    members,
                    exchange,
                    routing_key,
                    mirror_policy,
                } => self.migrate(
                    ci,
                    port,
                    &creds,
                    &Migration {
                        def,
                        node,
                        members,
                        exchange,
                        routing_key,
                        mirror_policy,
                    },
                )?,
            }
            self.report.get_mut().unwrap().cluster_changes += 1;
            let what = format!(
                "{} {} {}: {}",
                ch.action.symbol(),
                ch.resource.label(),
                ch.name,
                ch.detail
            );
            self.did(&central, what);
        }
        if !read_back {
            return Ok(());
        }
        // The credentials that work now: guest may be gone.
        let (ci, port, creds) = self.api()?;
        self.await_placement(ci, port, &creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::definitions::BindingDef;

    /// A rerun after a kill: the new site's exchange made, its queue not (its node
    /// is down): the binding waits for the pass after the restarts and the join.
    #[test]
    fn a_binding_waits_for_its_queue() {
        let bind = Op::PutBinding(BindingDef {
            source: "site.site2".into(),
            vhost: "/".into(),
            destination: "site.site2.data".into(),
            destination_type: "queue",
            routing_key: "#".into(),
            arguments: Default::default(),
        });
        let mut now = facts::ClusterFacts::default();
        assert!(!before_restarts(&bind, &now));
        now.queues = serde_json::from_value(serde_json::json!([
            {"name": "site.site2.data", "vhost": "/"}
        ]))
        .unwrap();
        assert!(before_restarts(&bind, &now));
    }
}
