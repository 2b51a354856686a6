//! The message path the backend will use, on warren's own queues placed like each
//! site's: published through the site's node, routed, consumed through the central
//! node, and removed afterwards.

use super::Checks;
use crate::inventory::{Inventory, Replication};
use crate::platform::{Probe, Transport};
use crate::rabbitmq::api::{self, enc, Credentials};
use serde_json::json;

/// The path the backend will use, on a queue of warren's own placed like each site's
/// queue: published through the site's node, routed, and consumed through the central
/// node. The user's queues and messages are not touched; what warren creates is
/// removed afterwards. Every site's path at once: the queues are made through the
/// central node, then each site publishes through its own node side by side, then
/// the central node consumes.
pub(super) fn path(
    c: &mut Checks,
    inv: &Inventory,
    conns: &mut [Option<Box<dyn Transport>>],
    creds: &[Credentials],
) {
    let ci = inv.central_index();
    let vh = enc(&inv.cluster.vhost);
    let port = inv.hosts[ci].ports.management;
    let central_cred = conns[ci]
        .as_mut()
        .and_then(|ct| working(&mut **ct, port, creds));
    // Made through the central node, one site after another (quick API calls).
    let mut made: Vec<anyhow::Result<()>> = inv
        .sites
        .iter()
        .map(|s| match (conns[ci].as_mut(), &central_cred) {
            _ if s.linked() => Err(anyhow::anyhow!("linked")),
            (None, _) => Err(anyhow::anyhow!("{} is not reachable", inv.hosts[ci].name)),
            (_, None) => Err(anyhow::anyhow!(
                "the central node's management API does not answer"
            )),
            (Some(ct), Some(cred)) => path_queue(inv, &mut **ct, cred, s),
        })
        .collect();
    // Published through each site's own node, side by side.
    let site_of: Vec<Option<usize>> = (0..conns.len())
        .map(|i| inv.sites.iter().position(|s| s.host == i))
        .collect();
    let published: Vec<(usize, anyhow::Result<String>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .filter_map(|(i, t)| site_of[i].map(|k| (k, t)))
            .filter(|(k, _)| made[*k].is_ok())
            .map(|(k, t)| {
                let s = &inv.sites[k];
                sc.spawn(move || (k, path_publish(inv, t.as_mut(), s, creds)))
            })
            .collect();
        handles.into_iter().filter_map(|j| j.join().ok()).collect()
    });
    for (k, r) in published {
        if let Err(e) = r {
            made[k] = Err(e);
        }
    }
    // Consumed through the central node, then everything warren made removed,
    // whatever happened.
    for (k, s) in inv.sites.iter().enumerate() {
        if s.linked() {
            continue;
        }
        let site = &inv.hosts[s.host];
        let result = match (&made[k], conns[ci].as_mut(), &central_cred) {
            (Err(e), _, _) => Err(anyhow::anyhow!("{e:#}")),
            (Ok(()), Some(ct), Some(cred)) => path_consume(inv, &mut **ct, cred, s),
            _ => Err(anyhow::anyhow!("{} is not reachable", inv.hosts[ci].name)),
        };
        if let (Some(ct), Some(cred)) = (conns[ci].as_mut(), &central_cred) {
            let queue = format!("{VERIFY}.{}", site.name);
            let _ = api::send(
                &mut **ct,
                port,
                cred,
                "DELETE",
                &format!("/api/queues/{vh}/{}", enc(&queue)),
                &json!({}),
            );
            let _ = api::send(
                &mut **ct,
                port,
                cred,
                "DELETE",
                &format!("/api/policies/{vh}/warren-verify-{}", site.name),
                &json!({}),
            );
        }
        match result {
            Ok(detail) => c.add("message path", &site.name, true, detail, None),
            Err(e) => c.add(
                "message path",
                &site.name,
                false,
                format!("{e:#}"),
                Some("see the checks above for the node or queue at fault"),
            ),
        }
    }
    if let (Some(ct), Some(cred)) = (conns[ci].as_mut(), &central_cred) {
        let _ = api::send(
            &mut **ct,
            port,
            cred,
            "DELETE",
            &format!("/api/exchanges/{vh}/{VERIFY}"),
            &json!({}),
        );
    }
}

/// warren's own exchange, and the prefix of its queues, for the path check.
const VERIFY: &str = "warren.verify";

/// The payload a site's path check publishes: unique to this run.
fn nonce_of(site: &str) -> String {
    format!("warren-verify-{site}-{}", std::process::id())
}

/// warren's queue for site `s`, placed like the site's queue (its policy first, so
/// the copies are made at once), bound to warren's exchange.
fn path_queue(
    inv: &Inventory,
    ct: &mut dyn Transport,
    cred: &Credentials,
    s: &crate::inventory::Site,
) -> anyhow::Result<()> {
    let vh = enc(&inv.cluster.vhost);
    let site = &inv.hosts[s.host];
    let cport = inv.central().ports.management;
    let queue = format!("{VERIFY}.{}", site.name);
    let mirrored = inv.cluster.replication == Replication::Mirrored;
    let definition = if mirrored {
        serde_json::Value::Object(crate::render::definitions::mirror_definition(inv, s))
    } else {
        json!({"expires": 600000})
    };
    api::send(
        ct,
        cport,
        cred,
        "PUT",
        &format!("/api/policies/{vh}/warren-verify-{}", site.name),
        &json!({
        "pattern": format!("^{}$", crate::util::regex_escape(&queue)),
        "definition": definition, "priority": 1000, "apply-to": "queues"}),
    )?;
    api::send(
        ct,
        cport,
        cred,
        "PUT",
        &format!("/api/exchanges/{vh}/{VERIFY}"),
        &json!({"type": "direct", "durable": false, "auto_delete": false}),
    )?;
    let mut args = serde_json::Map::new();
    if !mirrored {
        args.insert("x-queue-type".into(), json!("quorum"));
    }
    api::send(
        ct,
        cport,
        cred,
        "PUT",
        &format!("/api/queues/{vh}/{}", enc(&queue)),
        &json!({"durable": !mirrored, "auto_delete": false, "arguments": args, "node": site.node_name()}),
    )?;
    api::send(
        ct,
        cport,
        cred,
        "POST",
        &format!("/api/bindings/{vh}/e/{VERIFY}/q/{}", enc(&queue)),
        &json!({"routing_key": site.name}),
    )?;
    Ok(())
}

/// Publishes the site's nonce through the site's own node; fails unless routed.
fn path_publish(
    inv: &Inventory,
    st: Option<&mut Box<dyn Transport>>,
    s: &crate::inventory::Site,
    creds: &[Credentials],
) -> anyhow::Result<String> {
    let vh = enc(&inv.cluster.vhost);
    let site = &inv.hosts[s.host];
    let st = st.ok_or_else(|| anyhow::anyhow!("{} is not reachable", site.name))?;
    let sport = site.ports.management;
    let scred = working(&mut **st, sport, creds)
        .ok_or_else(|| anyhow::anyhow!("the management API of {} does not answer", site.name))?;
    let nonce = nonce_of(&site.name);
    let r = st.http(sport, "POST", &format!("/api/exchanges/{vh}/{VERIFY}/publish"),
        Some((&scred.user, scred.password.expose())),
        Some(&json!({"properties": {"delivery_mode": 2}, "routing_key": site.name, "payload": nonce, "payload_encoding": "string"}).to_string()))?;
    let routed: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    if routed["routed"] != json!(true) {
        anyhow::bail!(
            "published through {} but not routed: {}",
            site.node_name(),
            r.body.trim()
        );
    }
    Ok(nonce)
}

/// Consumes the site's nonce through the central node.
fn path_consume(
    inv: &Inventory,
    ct: &mut dyn Transport,
    cred: &Credentials,
    s: &crate::inventory::Site,
) -> anyhow::Result<String> {
    let vh = enc(&inv.cluster.vhost);
    let site = &inv.hosts[s.host];
    let central = inv.central();
    let queue = format!("{VERIFY}.{}", site.name);
    let nonce = nonce_of(&site.name);
    let r = ct.http(
        central.ports.management,
        "POST",
        &format!("/api/queues/{vh}/{}/get", enc(&queue)),
        Some((&cred.user, cred.password.expose())),
        Some(&json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}).to_string()),
    )?;
    let got: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    if got[0]["payload"] != json!(nonce) {
        anyhow::bail!(
            "the message published through {} was not consumed through {}: {}",
            site.node_name(),
            central.node_name(),
            r.body.trim()
        );
    }
    Ok(format!(
        "published through {}, routed, consumed through {}",
        site.node_name(),
        central.node_name()
    ))
}

/// The first credentials the API on this connection accepts.
fn working(t: &mut dyn Probe, port: u16, creds: &[Credentials]) -> Option<Credentials> {
    api::accepted(t, port, creds).ok().flatten()
}
