//! The listeners, probed from the central host: every port that should answer does,
//! the closed plain ones do not, and each TLS listener presents the inventory's
//! certificate, not near its end.

use super::Checks;
use crate::inventory::{Inventory, PROMETHEUS_PLUGIN};
use crate::platform::Transport;
use std::collections::BTreeSet;
use std::time::Duration;

/// From the central host, every node's AMQP, management, MQTT and metrics ports answer: the
/// TLS ones on a host with `tls`, the plain ones unless it closed them (then they
/// must not answer). A shovelled site may sit behind a firewall the central host
/// cannot cross (its shovel connects out): its link checks speak for it.
pub(super) fn listeners(c: &mut Checks, inv: &Inventory, conns: &mut [Option<Box<dyn Transport>>]) {
    let ci = inv.central_index();
    let Some(t) = conns[ci].as_mut() else {
        return;
    };
    let has = |p: &str| inv.cluster.plugins.iter().any(|x| x == p);
    // (port name, port, should it answer?) per host.
    let mut wanted: Vec<Vec<(&str, u16, bool)>> = Vec::new();
    // One query probes every port at once; a line per open one.
    let mut targets: Vec<(String, u16)> = Vec::new();
    let mut index: Vec<(usize, u16)> = Vec::new();
    for (i, h) in inv.hosts.iter().enumerate() {
        if shovelled(inv, i) {
            wanted.push(Vec::new());
            continue;
        }
        let plain = !h.tls_only();
        let mut ports = vec![("amqp", h.ports.amqp, plain)];
        if has("rabbitmq_management") {
            ports.push(("management", h.ports.management, plain));
        }
        if has("rabbitmq_mqtt") {
            ports.push(("mqtt", h.ports.mqtt, plain));
        }
        if has(PROMETHEUS_PLUGIN) {
            ports.push(("prometheus", h.ports.prometheus, plain));
        }
        if h.tls.is_some() {
            ports.extend(tls_ports(inv, h).into_iter().map(|(w, p)| (w, p, true)));
        }
        for (_, port, _) in &ports {
            targets.push((h.address.clone(), *port));
            index.push((i, *port));
        }
        wanted.push(ports);
    }
    let q = t.platform().probe_ports(&targets);
    let open: BTreeSet<(usize, u16)> = t
        .query(&q, Duration::from_secs(30))
        .map(|o| {
            o.stdout
                .lines()
                .filter_map(|l| l.trim().strip_prefix("open ")?.parse::<usize>().ok())
                .filter_map(|k| index.get(k).copied())
                .collect()
        })
        .unwrap_or_default();
    let from = &inv.hosts[ci].name;
    for (i, (h, ports)) in inv.hosts.iter().zip(&wanted).enumerate() {
        if ports.is_empty() {
            continue;
        }
        let named = |want: bool, open_now: bool| -> Vec<String> {
            ports
                .iter()
                .filter(|(_, port, w)| *w == want && open.contains(&(i, *port)) == open_now)
                .map(|(what, port, _)| format!("{what} {port}"))
                .collect()
        };
        let (silent, stray) = (named(true, false), named(false, true));
        let detail = if !silent.is_empty() {
            format!("no answer from {from} on {}", silent.join(", "))
        } else if !stray.is_empty() {
            format!(
                "{} answer{} from {from}, but the inventory closes the plain listeners",
                stray.join(", "),
                if stray.len() == 1 { "s" } else { "" }
            )
        } else {
            let closed = named(false, false);
            format!(
                "{} answer from {from}{}",
                named(true, true).join(", "),
                if closed.is_empty() {
                    String::new()
                } else {
                    format!("; {} closed", closed.join(", "))
                }
            )
        };
        c.add(
            "listeners",
            &h.name,
            silent.is_empty() && stray.is_empty(),
            detail,
            Some("check that RabbitMQ runs with the rendered config and the host firewall lets the ports through"),
        );
    }
    certificates(c, inv, &mut **t);
}

/// Whether host `i` is a shovelled site's broker.
fn shovelled(inv: &Inventory, i: usize) -> bool {
    inv.sites
        .iter()
        .any(|s| s.host == i && s.link == crate::inventory::Link::Shovel)
}

/// The TLS listeners of a host with `tls`: AMQPS, HTTPS, MQTTS, metrics (for the plugins the
/// cluster runs) and its node's distribution.
fn tls_ports<'a>(inv: &Inventory, h: &crate::inventory::Host) -> Vec<(&'a str, u16)> {
    let has = |p: &str| inv.cluster.plugins.iter().any(|x| x == p);
    let mut v = vec![("amqps", h.ports.amqps)];
    if has("rabbitmq_management") {
        v.push(("management (https)", h.ports.management_tls));
    }
    if has("rabbitmq_mqtt") {
        v.push(("mqtts", h.ports.mqtts));
    }
    if has(PROMETHEUS_PLUGIN) {
        v.push(("prometheus (https)", h.ports.prometheus_tls));
    }
    v.push(("distribution", h.ports.dist));
    v
}

/// A certificate that expires sooner than this fails verify: time to renew it.
const CERT_RENEW_DAYS: i64 = 14;

/// Each TLS listener presents the inventory's certificate for its host, valid for
/// at least two more weeks; read by a TLS handshake from the central host
/// (presenting central's own certificate, which distribution requires).
fn certificates(c: &mut Checks, inv: &Inventory, t: &mut dyn Transport) {
    let central = inv.central();
    let client = crate::render::tls_paths(central);
    let mut targets = Vec::new();
    let mut index = Vec::new();
    for (i, h) in inv.hosts.iter().enumerate() {
        if h.tls.is_none() || shovelled(inv, i) {
            continue;
        }
        for (what, port) in tls_ports(inv, h) {
            targets.push((h.address.clone(), port, h.name.clone()));
            index.push((i, what, port));
        }
    }
    if targets.is_empty() {
        return;
    }
    let q = t.platform().probe_tls(
        &targets,
        client.as_ref().map(|p| (p.cert.as_str(), p.key.as_str())),
    );
    let seen: std::collections::BTreeMap<usize, (String, i64)> =
        match t.query(&q, Duration::from_secs(60)) {
            Ok(o) => o
                .stdout
                .lines()
                .filter_map(|l| {
                    let mut w = l.trim().strip_prefix("tls ")?.split_whitespace();
                    let k = w.next()?.parse().ok()?;
                    let hash = w.next()?.to_string();
                    let end = w.next()?.parse().ok()?;
                    Some((k, (hash, end)))
                })
                .collect(),
            Err(e) => {
                c.add(
                    "certificates",
                    &central.name,
                    false,
                    format!("cannot probe the TLS listeners from {}: {e}", central.name),
                    None,
                );
                return;
            }
        };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for (i, h) in inv.hosts.iter().enumerate() {
        let Some(tls) = &h.tls else { continue };
        let mine: Vec<(usize, &str, u16)> = index
            .iter()
            .enumerate()
            .filter(|(_, (hi, _, _))| *hi == i)
            .map(|(k, (_, w, p))| (k, *w, *p))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let want = match crate::inventory::tls::read_pem(&tls.cert, "CERTIFICATE-----")
            .and_then(|pem| der_sha256(&pem))
        {
            Ok(w) => w,
            Err(e) => {
                c.add("certificates", &h.name, false, e, None);
                continue;
            }
        };
        let mut problems = Vec::new();
        let mut soonest = i64::MAX;
        for (k, what, port) in &mine {
            match seen.get(k) {
                None => problems.push(format!("{what} {port}: no TLS handshake")),
                Some((hash, _)) if *hash != want => problems.push(format!(
                    "{what} {port} presents another certificate (SHA-256 {}…) than {}",
                    &hash[..hash.len().min(16)],
                    tls.cert.display()
                )),
                Some((_, end)) => soonest = soonest.min(*end),
            }
        }
        let days = (soonest - now).div_euclid(86_400);
        if problems.is_empty() && soonest != i64::MAX && days < CERT_RENEW_DAYS {
            problems.push(if soonest <= now {
                format!("the certificate {} has expired", tls.cert.display())
            } else {
                format!(
                    "the certificate {} expires in {days} day{} (renew within {CERT_RENEW_DAYS})",
                    tls.cert.display(),
                    if days == 1 { "" } else { "s" }
                )
            });
        }
        let listed = mine
            .iter()
            .map(|(_, w, p)| format!("{w} {p}"))
            .collect::<Vec<_>>()
            .join(", ");
        c.add(
            "certificates",
            &h.name,
            problems.is_empty(),
            if problems.is_empty() {
                format!(
                    "{listed} present {} (valid {days} more days)",
                    tls.cert.display()
                )
            } else {
                problems.join("; ")
            },
            Some("put the renewed certificate and key where the inventory's tls names them and run warren apply (it restarts the host)"),
        );
    }
}

/// The SHA-256 (lowercase hex) of the first certificate in a PEM text, over its DER
/// bytes: what a TLS client sees presented.
fn der_sha256(pem: &str) -> Result<String, String> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !(l.starts_with("-----BEGIN ") && l.ends_with("CERTIFICATE-----")))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END "))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("the certificate's PEM is not base64: {e}"))?;
    Ok(crate::util::sha256_hex(&der))
}
