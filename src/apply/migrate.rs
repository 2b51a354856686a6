//! A site's classic queue migrated to a quorum queue of the same name, its messages
//! moved by a shovel.

use super::Executor;
use crate::plan::cluster as cplan;
use crate::rabbitmq::api::{self, enc, Credentials};
use anyhow::{bail, Result};
use serde_json::json;
use std::time::{Duration, Instant};

/// How long a migration drains one queue before it stops and says to rerun (the
/// shovel goes on meanwhile).
const DRAIN_SECS: u64 = 600;

/// A site queue's migration to quorum, as the plan's `Op::MigrateQueue` gives it.
pub(super) struct Migration<'o> {
    pub(super) def: &'o crate::render::definitions::QueueDef,
    pub(super) node: &'o str,
    pub(super) members: &'o [String],
    pub(super) exchange: &'o str,
    pub(super) routing_key: &'o str,
    pub(super) mirror_policy: &'o str,
}

impl<'a> Executor<'a> {
    /// Migrates a site's classic queue to a quorum queue of the same name, from
    /// wherever the cluster is now (every step checks first, so a rerun after an
    /// interruption goes on). Messages only ever move by a shovel that acknowledges
    /// each one after the destination confirmed it, and a queue is deleted only
    /// when RabbitMQ finds it empty; while the exchange is switched from one queue
    /// to the next both are bound for a moment, so a message published then may
    /// arrive twice, never not at all.
    pub(super) fn migrate(
        &mut self,
        ci: usize,
        port: u16,
        creds: &Credentials,
        m: &Migration,
    ) -> Result<()> {
        let inv = self.inv;
        let central = inv.hosts[ci].name.clone();
        let vh = enc(&inv.cluster.vhost);
        let q = &m.def.name;
        let temp = cplan::migration_queue(q);
        let queue = |ex: &mut Self, name: &str| -> Result<Option<api::QueueInfo>> {
            api::get_opt(
                &mut *ex.conns[ci],
                port,
                creds,
                &format!("/api/queues/{vh}/{}", enc(name)),
            )
        };
        let old = queue(self, q)?.filter(|x| x.kind == "classic");
        if old.is_some() {
            self.progress.host(
                &central,
                &format!("migrating {q}: 1/3 {temp} takes {}'s messages", m.exchange),
            );
            api::send(
                &mut *self.conns[ci],
                port,
                creds,
                "PUT",
                &format!("/api/queues/{vh}/{}", enc(&temp)),
                &json!({"durable": true, "auto_delete": false, "arguments": {"x-queue-type": "quorum"}, "node": m.node}),
            )?;
            self.rebind(ci, port, creds, m.exchange, m.routing_key, &temp, q)?;
            self.progress.host(
                &central,
                &format!("migrating {q}: 2/3 draining {q} into {temp} ..."),
            );
            self.drain(ci, port, creds, q, &temp)?;
        }
        if queue(self, q)?.is_none() {
            self.progress.host(
                &central,
                &format!(
                    "migrating {q}: 3/3 {q} declared as a quorum queue on {}",
                    m.node
                ),
            );
            api::send(
                &mut *self.conns[ci],
                port,
                creds,
                "PUT",
                &format!("/api/queues/{vh}/{}", enc(q)),
                &json!({"durable": m.def.durable, "auto_delete": m.def.auto_delete, "arguments": m.def.arguments, "node": m.node}),
            )?;
            self.fix_members(ci, port, creds, q, m.members)?;
        }
        if queue(self, &temp)?.is_some() {
            self.progress.host(
                &central,
                &format!("migrating {q}: 3/3 draining {temp} into {q} ..."),
            );
            self.rebind(ci, port, creds, m.exchange, m.routing_key, q, &temp)?;
            self.drain(ci, port, creds, &temp, q)?;
        }
        api::delete(
            &mut *self.conns[ci],
            port,
            creds,
            &format!("/api/policies/{vh}/{}", enc(m.mirror_policy)),
        )
    }

    /// Binds `exchange` to `to`, then unbinds it from `from` (in that order: a
    /// message published in between goes to both, none to neither).
    #[allow(clippy::too_many_arguments)]
    fn rebind(
        &mut self,
        ci: usize,
        port: u16,
        creds: &Credentials,
        exchange: &str,
        routing_key: &str,
        to: &str,
        from: &str,
    ) -> Result<()> {
        let vh = enc(&self.inv.cluster.vhost);
        let t = &mut *self.conns[ci];
        api::send(
            t,
            port,
            creds,
            "POST",
            &format!("/api/bindings/{vh}/e/{}/q/{}", enc(exchange), enc(to)),
            &json!({"routing_key": routing_key, "arguments": {}}),
        )?;
        let path = format!("/api/bindings/{vh}/e/{}/q/{}", enc(exchange), enc(from));
        let bound: Vec<api::BindingKey> = api::get(t, port, creds, &path)?;
        for b in bound {
            api::delete(
                t,
                port,
                creds,
                &format!("{path}/{}", enc(&b.properties_key)),
            )?;
        }
        Ok(())
    }

    /// Moves every message of `from` into `to` with a dynamic shovel (on-confirm),
    /// then deletes `from` once RabbitMQ finds it empty. Nothing routes to `from`
    /// any more when this runs.
    fn drain(
        &mut self,
        ci: usize,
        port: u16,
        creds: &Credentials,
        from: &str,
        to: &str,
    ) -> Result<()> {
        let vh = enc(&self.inv.cluster.vhost);
        let shovel = format!(
            "/api/parameters/shovel/{vh}/{}",
            enc(&cplan::migration_shovel(from))
        );
        let local = format!("amqp:///{vh}");
        let value = json!({"value": {
            "src-uri": local, "src-queue": from,
            "dest-uri": local, "dest-queue": to,
            "ack-mode": "on-confirm", "src-delete-after": "never",
            "reconnect-delay": 1
        }});
        api::send(&mut *self.conns[ci], port, creds, "PUT", &shovel, &value)?;
        let deadline = Instant::now() + Duration::from_secs(DRAIN_SECS);
        let qpath = format!("/api/queues/{vh}/{}", enc(from));
        loop {
            crate::interrupt::checkpoint()?;
            let q: Option<api::QueueInfo> =
                api::get_opt(&mut *self.conns[ci], port, creds, &qpath)?;
            let Some(q) = q else { break };
            // Empty by its statistics (ready and unacknowledged alike): stop the
            // shovel, which gives back whatever it holds unacknowledged, and ask
            // the queue itself for a message (statistics lag; a `get` does not).
            // Nothing routes to it any more, so empty now is empty for good. A
            // classic queue is deleted only if RabbitMQ finds it empty too (quorum
            // queues do not take that flag).
            if q.messages == Some(0) {
                api::delete(&mut *self.conns[ci], port, creds, &shovel)?;
                let got = api::call(
                    &mut *self.conns[ci],
                    port,
                    creds,
                    "POST",
                    &format!("{qpath}/get"),
                    &json!({"count": 1, "ackmode": "reject_requeue_true", "encoding": "auto"}),
                )?;
                if got.as_array().is_some_and(|a| a.is_empty()) {
                    if q.kind == "quorum" {
                        api::delete(&mut *self.conns[ci], port, creds, &qpath)?;
                        return Ok(());
                    }
                    if api::delete_if_empty(&mut *self.conns[ci], port, creds, &qpath)? {
                        return Ok(());
                    }
                }
                api::send(&mut *self.conns[ci], port, creds, "PUT", &shovel, &value)?;
            }
            if Instant::now() > deadline {
                bail!(
                    "queue {from} still holds {} message(s) after {DRAIN_SECS} s of draining into {to} (the shovel {} keeps going): rerun apply to go on",
                    q.messages.map(|n| n.to_string()).unwrap_or_else(|| "some".into()),
                    cplan::migration_shovel(from)
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        api::delete(&mut *self.conns[ci], port, creds, &shovel)
    }
}
