//! verify's checks of the linked sites: each site's standalone broker as declared
//! (its plugins, users, exchange, queue and link), its link's state as RabbitMQ
//! reports it, and a message carried over the link's own path (the same user, URI
//! and network) by a link of warren's own, so that no test message enters the
//! site's queues. What warren makes for it is removed afterwards; what an
//! interrupted verify leaves, `plan` removes.

use super::{Checks, APPLY};
use crate::facts::{self, ClusterFacts, HostFacts};
use crate::inventory::{link_name, Broker, Inventory, Link};
use crate::plan::cluster::{self as cplan, ClusterPlan};
use crate::platform::Transport;
use crate::rabbitmq::api::{self, enc, Credentials};
use crate::render::definitions::{self, verify_link_exchange, verify_link_queue};
use anyhow::{anyhow, bail, Result};
use serde_json::json;
use std::time::{Duration, Instant};

/// How long verify waits for its own link to start and carry its message.
const WAIT: Duration = Duration::from_secs(30);

/// An API connection: the host's transport, its management port, credentials.
struct Api<'a> {
    t: &'a mut dyn Transport,
    port: u16,
    cred: Credentials,
}

impl Api<'_> {
    fn send(&mut self, method: &str, path: &str, body: serde_json::Value) -> Result<()> {
        api::send(self.t, self.port, &self.cred, method, path, &body)
    }
    fn call(&mut self, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
        api::call(self.t, self.port, &self.cred, "POST", path, &body)
    }
    fn get<T: serde::de::DeserializeOwned>(&mut self, path: &str) -> Result<T> {
        api::get(self.t, self.port, &self.cred, path)
    }
    fn delete(&mut self, path: &str) {
        let _ = api::delete(self.t, self.port, &self.cred, path);
    }
}

/// The management API of host `i`, when its facts found one that answers.
fn api_of<'a>(
    i: usize,
    host_facts: &[Option<HostFacts>],
    t: Option<&'a mut Box<dyn Transport>>,
) -> Option<Api<'a>> {
    let f = host_facts[i].as_ref()?;
    let cred = f.node.api.clone()?;
    Some(Api {
        t: &mut **t?,
        port: f.api_port,
        cred,
    })
}

type Conn<'a> = Option<&'a mut Box<dyn Transport>>;

/// Two distinct connections of `conns` at once.
fn pair(conns: &mut [Option<Box<dyn Transport>>], a: usize, b: usize) -> (Conn<'_>, Conn<'_>) {
    assert_ne!(a, b, "a linked site is never the central host");
    if a < b {
        let (x, y) = conns.split_at_mut(b);
        (x[a].as_mut(), y[0].as_mut())
    } else {
        let (x, y) = conns.split_at_mut(a);
        (y[0].as_mut(), x[b].as_mut())
    }
}

pub(super) fn check(
    c: &mut Checks,
    inv: &Inventory,
    host_facts: &[Option<HostFacts>],
    conns: &mut [Option<Box<dyn Transport>>],
) {
    let ci = inv.central_index();
    for b in inv.brokers() {
        let Broker::Site(si) = b else { continue };
        let site = &inv.sites[si];
        let hi = site.host;
        let host = inv.hosts[hi].name.clone();
        let (st, ct) = pair(conns, hi, ci);
        let (Some(mut sa), Some(mut ca)) = (api_of(hi, host_facts, st), api_of(ci, host_facts, ct))
        else {
            c.add(
                "link",
                &host,
                false,
                format!(
                    "the management API of {} or of {} does not answer: the link cannot be read",
                    host, inv.hosts[ci].name
                ),
                Some("see the checks above for the node at fault"),
            );
            continue;
        };
        resources(c, inv, si, &mut sa, &mut ca);
        let plugins = facts::plugin_states(sa.t, inv, hi);
        let missing: Vec<String> = match &plugins {
            Ok(p) => p
                .not_enabled
                .iter()
                .chain(&p.not_running)
                .cloned()
                .collect(),
            Err(e) => vec![format!("{e:#}")],
        };
        c.add(
            "plugins",
            &host,
            missing.is_empty(),
            if missing.is_empty() {
                format!("{} running", inv.plugins_of(hi).join(", "))
            } else {
                format!("not running: {}", missing.join(", "))
            },
            Some(APPLY),
        );
        // The link itself, as the broker that runs it reports it; a link that is
        // starting (after a restart of either end) is read again for a while.
        let runner = if site.link == Link::Shovel {
            &mut sa
        } else {
            &mut ca
        };
        let deadline = Instant::now() + WAIT;
        let state = loop {
            let s = crate::apply::link_state(inv, si, runner.t);
            match &s {
                Ok(x) if !x.running && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_secs(1))
                }
                _ => break s,
            }
        };
        match state {
            Ok(s) => c.add(
                "link",
                &host,
                s.running,
                format!("{} {}: {} ({} -> {})", site.link, s.name, s.text, s.from, s.to),
                Some(&format!(
                    "check that {} reaches {} on AMQP port {} and that the link user's password is the inventory's ({APPLY})",
                    s.from, s.to, s.port
                )),
            ),
            Err(e) => c.add("link", &host, false, format!("{e:#}"), None),
        }
        let carried = match site.link {
            Link::Shovel => shovel_path(inv, si, &mut sa, &mut ca),
            _ => federation_path(inv, si, &mut sa, &mut ca),
        };
        match carried {
            Ok(detail) => c.add("link message path", &host, true, detail, None),
            Err(e) => c.add(
                "link message path",
                &host,
                false,
                format!("{e:#}"),
                Some("see the link check above"),
            ),
        }
    }
}

/// The site's broker as declared, and the cluster's side of its link.
fn resources(c: &mut Checks, inv: &Inventory, si: usize, sa: &mut Api, ca: &mut Api) {
    let site = &inv.sites[si];
    let host = inv.hosts[site.host].name.clone();
    let read = |a: &mut Api| facts::gather_cluster(a.t, a.port, &a.cred);
    let (sf, cf): (Result<ClusterFacts>, Result<ClusterFacts>) = (read(sa), read(ca));
    let (sf, cf) = match (sf, cf) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(e), _) | (_, Err(e)) => {
            c.add("link resources", &host, false, format!("{e:#}"), None);
            return;
        }
    };
    super::users::site_users(c, inv, &sf, Broker::Site(si));
    super::users::users_as_declared(c, inv, &sf, Broker::Site(si));
    let mut drift = Vec::new();
    if let ClusterPlan::Known { changes, .. } = cplan::plan(inv, Broker::Site(si), &Ok(sf)) {
        drift.extend(
            changes
                .iter()
                .map(|ch| format!("{} {} {}", ch.action.symbol(), ch.resource.label(), ch.name)),
        );
    }
    // The cluster's side: what its definitions hold for this site.
    let name = link_name(&inv.hosts[site.host].name);
    let user = crate::inventory::link_user(&inv.hosts[site.host].name);
    if let ClusterPlan::Known { changes, .. } = cplan::plan(inv, Broker::Cluster, &Ok(cf)) {
        drift.extend(
            changes
                .iter()
                .filter(|ch| {
                    ch.name == site.queue
                        || ch.name == site.exchange
                        || ch.name.starts_with(&format!("{} -> ", site.exchange))
                        || ch.name == name
                        || ch.name == user
                        || ch.name.starts_with(&format!("{user} on"))
                        || ch.name
                            == definitions::federation_policy_name(&inv.hosts[site.host].name)
                })
                .map(|ch| {
                    format!(
                        "{} {} {} on the central host",
                        ch.action.symbol(),
                        ch.resource.label(),
                        ch.name
                    )
                }),
        );
    }
    c.add(
        "link resources",
        &host,
        drift.is_empty(),
        if drift.is_empty() {
            format!(
                "exchange {}, queue {} on {}, {} {name} as declared",
                site.exchange,
                site.queue,
                inv.central().name,
                site.link
            )
        } else {
            drift.join("; ")
        },
        Some(APPLY),
    );
}

/// The payload of a link path check: unique to this run.
fn nonce(host: &str) -> String {
    format!("warren-verify-link-{host}-{}", std::process::id())
}

/// Waits for `done`, reading again every half second, until `WAIT` has passed.
fn wait_for(what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        if done()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} did not happen within {} s", WAIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Consumes from `queue` through `a` until the message `want` arrives.
fn await_message(a: &mut Api, vh: &str, queue: &str, want: &str, what: &str) -> Result<()> {
    wait_for(what, || {
        let got = a.call(
            &format!("/api/queues/{vh}/{}/get", enc(queue)),
            json!({"count": 10, "ackmode": "ack_requeue_false", "encoding": "auto"}),
        )?;
        Ok(got
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x["payload"] == json!(want))))
    })
}

/// Publishes `payload` through `a` to `exchange`; fails unless routed.
fn publish(a: &mut Api, vh: &str, exchange: &str, key: &str, payload: &str) -> Result<()> {
    let r = a.call(
        &format!("/api/exchanges/{vh}/{}/publish", enc(exchange)),
        json!({"properties": {"delivery_mode": 2}, "routing_key": key, "payload": payload, "payload_encoding": "string"}),
    )?;
    if r["routed"] != json!(true) {
        bail!("published to {exchange} but not routed: {r}");
    }
    Ok(())
}

/// A shovel of warren's own, from a queue of warren's on the site to one of the same
/// name on the central host, with the site's shovel's URIs and user.
fn shovel_path(inv: &Inventory, si: usize, sa: &mut Api, ca: &mut Api) -> Result<String> {
    let site = &inv.sites[si];
    let h = &inv.hosts[site.host];
    let vh = enc(&inv.cluster.vhost);
    let queue = verify_link_queue(&h.name);
    let name = format!("warren-verify-{}", h.name);
    let result = (|| -> Result<String> {
        let declare =
            json!({"durable": false, "auto_delete": false, "arguments": {"x-expires": 600000}});
        ca.send(
            "PUT",
            &format!("/api/queues/{vh}/{}", enc(&queue)),
            declare.clone(),
        )?;
        sa.send("PUT", &format!("/api/queues/{vh}/{}", enc(&queue)), declare)?;
        let mut p = definitions::for_broker(inv, Broker::Site(si))
            .parameters
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("the site has no shovel to copy"))?;
        p.value.insert("src-queue".into(), json!(queue));
        p.value.insert("dest-queue".into(), json!(queue));
        let pw = site
            .link_password
            .as_ref()
            .ok_or_else(|| anyhow!("no link_password"))?
            .read_or_create_random()
            .map_err(|e| anyhow!("link_password: {e}"))?;
        sa.send(
            "PUT",
            &format!("/api/parameters/shovel/{vh}/{}", enc(&name)),
            json!({"component": "shovel", "vhost": inv.cluster.vhost, "name": name, "value": p.with_password(pw.expose())}),
        )?;
        let mut last = String::new();
        wait_for(&format!("shovel {name} running"), || {
            let all: Vec<api::ShovelStatus> = sa.get("/api/shovels")?;
            let me = all.iter().find(|x| x.name == name);
            last = me.map(|x| x.state.clone()).unwrap_or_default();
            Ok(last == "running")
        })
        .map_err(|e| anyhow!("{e:#} (last state: {last:?})"))?;
        let payload = nonce(&h.name);
        publish(sa, &vh, "amq.default", &queue, &payload)?;
        arrived(
            inv,
            h,
            ca,
            &queue,
            &payload,
            &format!("a message in {queue} on {} was shovelled", h.name),
        )
    })();
    sa.delete(&format!("/api/parameters/shovel/{vh}/{}", enc(&name)));
    sa.delete(&format!("/api/queues/{vh}/{}", enc(&queue)));
    ca.delete(&format!("/api/queues/{vh}/{}", enc(&queue)));
    result
}

/// Waits for `payload` in `queue` on the central host and consumes it; says how it
/// travelled (`how`: "a message ... was shovelled") and as which link user.
fn arrived(
    inv: &Inventory,
    h: &crate::inventory::Host,
    ca: &mut Api,
    queue: &str,
    payload: &str,
    how: &str,
) -> Result<String> {
    let central = &inv.central().name;
    await_message(
        ca,
        &enc(&inv.cluster.vhost),
        queue,
        payload,
        &format!("the message's arrival in {queue} on {central}"),
    )?;
    Ok(format!(
        "{how} to {central} as {} and consumed there",
        crate::inventory::link_user(&h.name)
    ))
}

/// An exchange of warren's own, federated from the site to the central host by the
/// site's upstream (its URI and user), bound there to a queue of warren's.
fn federation_path(inv: &Inventory, si: usize, sa: &mut Api, ca: &mut Api) -> Result<String> {
    let site = &inv.sites[si];
    let h = &inv.hosts[site.host];
    let vh = enc(&inv.cluster.vhost);
    let exchange = verify_link_exchange(&h.name);
    let queue = verify_link_queue(&h.name);
    let policy = format!("warren-verify-link-{}", h.name);
    let upstream = link_name(&h.name);
    let result = (|| -> Result<String> {
        let x = json!({"type": "direct", "durable": false, "auto_delete": false});
        sa.send(
            "PUT",
            &format!("/api/exchanges/{vh}/{}", enc(&exchange)),
            x.clone(),
        )?;
        ca.send("PUT", &format!("/api/exchanges/{vh}/{}", enc(&exchange)), x)?;
        ca.send(
            "PUT",
            &format!("/api/queues/{vh}/{}", enc(&queue)),
            json!({"durable": false, "auto_delete": false, "arguments": {"x-expires": 600000}}),
        )?;
        ca.send(
            "POST",
            &format!("/api/bindings/{vh}/e/{}/q/{}", enc(&exchange), enc(&queue)),
            json!({"routing_key": h.name}),
        )?;
        ca.send(
            "PUT",
            &format!("/api/policies/{vh}/{}", enc(&policy)),
            json!({"pattern": format!("^{}$", crate::util::regex_escape(&exchange)), "definition": {"federation-upstream": upstream}, "priority": 1000, "apply-to": "exchanges"}),
        )?;
        let mut last = String::new();
        wait_for(
            &format!("federation link {upstream} for {exchange} running"),
            || {
                let all: Vec<api::FederationLink> = ca.get("/api/federation-links")?;
                let me = all
                    .iter()
                    .find(|l| l.upstream == upstream && l.exchange.as_deref() == Some(&exchange));
                last = me
                    .map(|l| {
                        format!(
                            "{} {}",
                            l.status,
                            l.error.as_ref().map(|e| e.to_string()).unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                Ok(me.is_some_and(|l| l.status == "running"))
            },
        )
        .map_err(|e| anyhow!("{e:#} (last: {last:?})"))?;
        // The link binds its upstream queue to the site's exchange with the
        // routing keys bound downstream: publish once that binding is there.
        wait_for(
            &format!("the federation binding on {exchange} at {}", h.name),
            || {
                let b: Vec<api::BindingInfo> = sa.get(&format!(
                    "/api/exchanges/{vh}/{}/bindings/source",
                    enc(&exchange)
                ))?;
                Ok(b.iter().any(|b| b.routing_key == h.name))
            },
        )?;
        let payload = nonce(&h.name);
        publish(sa, &vh, &exchange, &h.name, &payload)?;
        arrived(
            inv,
            h,
            ca,
            &queue,
            &payload,
            &format!(
                "a message published to {exchange} on {} was federated",
                h.name
            ),
        )
    })();
    ca.delete(&format!("/api/policies/{vh}/{}", enc(&policy)));
    ca.delete(&format!("/api/queues/{vh}/{}", enc(&queue)));
    ca.delete(&format!("/api/exchanges/{vh}/{}", enc(&exchange)));
    sa.delete(&format!("/api/exchanges/{vh}/{}", enc(&exchange)));
    // What the link made upstream, in case it did not remove it itself.
    let prefix = format!("federation: {exchange}");
    if let Ok(left) = sa.get::<Vec<api::QueueInfo>>(&format!("/api/queues/{vh}")) {
        for q in left.iter().filter(|q| q.name.starts_with(&prefix)) {
            sa.delete(&format!("/api/queues/{vh}/{}", enc(&q.name)));
        }
    }
    if let Ok(left) = sa.get::<Vec<api::ExchangeInfo>>(&format!("/api/exchanges/{vh}")) {
        for x in left.iter().filter(|x| x.name.starts_with(&prefix)) {
            sa.delete(&format!("/api/exchanges/{vh}/{}", enc(&x.name)));
        }
    }
    result
}
