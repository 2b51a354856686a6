//! HAProxy as its host reports it: whether it is installed and runs (`read`, with the
//! facts), its health checks of the nodes (`stats`), and what a client meets through
//! its frontends (`through`).

use super::HostFacts;
use crate::inventory::balancer::{frontend_ports, wire, Wire};
use crate::inventory::Inventory;
use crate::platform::{BalancerProtocol, Probe, Transport};
use crate::rabbitmq::api::{self, Credentials};
use anyhow::{anyhow, bail, Result};
use std::collections::BTreeSet;
use std::time::Duration;

/// HAProxy on the balancer's host, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerFacts {
    /// `haproxy -v`'s version; `None` when HAProxy is not installed.
    pub version: Option<String>,
    pub running: bool,
}

/// Reads HAProxy's state on the balancer's host, if the inventory has one; `f` are
/// that host's facts (its service manager runs HAProxy too).
pub fn read(
    inv: &Inventory,
    f: &HostFacts,
    probe: &mut dyn Probe,
) -> Option<Result<BalancerFacts>> {
    let lb = inv.load_balancer.as_ref()?;
    let h = &inv.hosts[lb.host];
    let m = super::manager(h, f);
    Some((|| {
        let q = probe
            .platform()
            .balancer_read(m)
            .ok_or_else(|| anyhow!("{}: warren runs HAProxy on Linux hosts only", h.name))?;
        let out = probe.query(&q, Duration::from_secs(30))?;
        if !out.ok() {
            bail!(
                "{}: reading HAProxy's state failed: {}",
                h.name,
                out.last_line()
            );
        }
        Ok(parse(&out.stdout))
    })())
}

fn parse(stdout: &str) -> BalancerFacts {
    let mut f = BalancerFacts {
        version: None,
        running: false,
    };
    for line in stdout.lines().map(str::trim) {
        match line.strip_prefix("haproxy ") {
            Some("missing") => f.version = None,
            Some(v) => f.version = Some(v.to_string()),
            None if line == "running" => f.running = true,
            None => {}
        }
    }
    f
}

/// The frontends a probe talks to: AMQP and MQTT, and management too through TLS
/// (plain management is asked through the API, which names the node that served).
pub fn probed_frontends(inv: &Inventory, tls: bool) -> Vec<(u16, BalancerProtocol)> {
    frontend_ports(inv)
        .into_iter()
        .filter_map(|(w, p)| match w {
            "amqp" => Some((p, BalancerProtocol::Amqp)),
            "mqtt" => Some((p, BalancerProtocol::Mqtt)),
            "management" if tls => Some((p, BalancerProtocol::Management)),
            _ => None,
        })
        .collect()
}

/// One server of a backend as HAProxy's statistics report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerState {
    /// The frontend's backend: "amqp", "mqtt" or "management".
    pub backend: String,
    /// The host's name (the server's name in haproxy.cfg).
    pub server: String,
    /// HAProxy's check status: "UP", "DOWN", "UP 1/2" (going down), "NOLB", ...
    pub status: String,
    /// Connections HAProxy holds to that node now.
    pub sessions: u64,
}

impl ServerState {
    pub fn up(&self) -> bool {
        self.status.starts_with("UP")
    }
}

/// HAProxy's health checks as its statistics page (on its host's loopback) reports
/// them, per server.
pub fn stats(
    inv: &Inventory,
    t: &mut dyn Transport,
) -> std::result::Result<Vec<ServerState>, String> {
    let port = inv.load_balancer.as_ref().map_or(0, |lb| lb.ports.stats);
    let r = t
        .http(port, "GET", "/stats;csv", None, None)
        .map_err(|e| format!("HAProxy's statistics (127.0.0.1:{port}): {e}"))?;
    match r.status {
        200 => Ok(parse_stats_csv(&r.body)),
        s => Err(format!(
            "HAProxy's statistics (127.0.0.1:{port}) answered {s}"
        )),
    }
}

/// What a client meets through the balancer's frontends, probed on its host.
#[derive(Debug, Default)]
pub struct Through {
    /// The nodes whose management API answered through the management frontend,
    /// and the requests made (each a new connection); `None` without that frontend.
    pub management: Option<(BTreeSet<String>, usize)>,
    /// Per AMQP and MQTT frontend (and management through TLS): (protocol, port,
    /// connections RabbitMQ answered, connections made).
    pub connections: Vec<(&'static str, u16, usize, usize)>,
    /// The connections were TLS clients' (with this CA file on the balancer's host).
    pub tls: Option<crate::platform::BalancerTls>,
}

/// Connects through every frontend `n` times: management requests as `cred` (a
/// roundrobin: each node in turn), AMQP and MQTT connections that must be answered
/// by RabbitMQ (Connection.Start, CONNACK). Where the members listen with TLS only
/// (`Wire::Tls`), every connection is a TLS client's, the nodes' certificates
/// checked against the balancer host's CA file where it has one, and management is
/// an HTTP request that must be answered (`cred` unused). (`Wire::Mixed` is refused
/// by `check`, and probed as plain.)
pub fn through(
    inv: &Inventory,
    t: &mut dyn Transport,
    cred: Option<&Credentials>,
    n: usize,
) -> Through {
    let Some(lb) = inv.load_balancer.as_ref() else {
        return Through::default();
    };
    let mut out = Through::default();
    let tls = (wire(inv) == Wire::Tls).then(|| crate::platform::BalancerTls {
        ca: crate::render::tls_paths(&inv.hosts[lb.host]).map(|p| p.ca),
    });
    out.tls = tls.clone();
    if let (Some(cred), None) = (cred, &tls) {
        let mut seen = BTreeSet::new();
        for _ in 0..n {
            if let Ok(o) =
                api::get::<api::Overview>(&mut *t, lb.ports.management, cred, "/api/overview")
            {
                seen.insert(o.node);
            }
        }
        out.management = Some((seen, n));
    }
    let frontends = probed_frontends(inv, tls.is_some());
    if let Some(q) = t.platform().balancer_probe(&frontends, n, tls.as_ref()) {
        let answers: Vec<(usize, String)> = t
            .query(&q, Duration::from_secs(30))
            .map(|o| {
                o.stdout
                    .lines()
                    .filter_map(|l| {
                        let (k, hex) = l.trim().split_once(' ').unwrap_or((l.trim(), ""));
                        Some((k.parse().ok()?, hex.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (f, (port, proto)) in frontends.iter().enumerate() {
            let (label, first) = match (proto, tls.is_some()) {
                (BalancerProtocol::Amqp, false) => ("AMQP", "01"),
                (BalancerProtocol::Amqp, true) => ("AMQPS", "01"),
                (BalancerProtocol::Mqtt, false) => ("MQTT", "20"),
                (BalancerProtocol::Mqtt, true) => ("MQTTS", "20"),
                // "HTTP"
                (BalancerProtocol::Management, _) => ("HTTPS management", "48545450"),
            };
            let ok = answers
                .iter()
                .filter(|(k, hex)| k / n == f && hex.starts_with(first))
                .count();
            out.connections.push((label, *port, ok, n));
        }
    }
    out
}

/// HAProxy's own view of its backends (`/stats;csv` on its local statistics port),
/// e.g. backend "amqp", server "site1", status "UP", 2 sessions.
pub fn parse_stats_csv(csv: &str) -> Vec<ServerState> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let at = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(st), Some(cur)) =
        (at("pxname"), at("svname"), at("status"), at("scur"))
    else {
        return Vec::new();
    };
    let last = px.max(sv).max(st).max(cur);
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > last)
        .filter(|f| f[sv] != "FRONTEND" && f[sv] != "BACKEND")
        .map(|f| ServerState {
            backend: f[px].to_string(),
            server: f[sv].to_string(),
            status: f[st].to_string(),
            sessions: f[cur].parse().unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_haproxy_state() {
        assert_eq!(
            parse("haproxy 2.6.12-1+deb12u4\nrunning\n"),
            BalancerFacts {
                version: Some("2.6.12-1+deb12u4".into()),
                running: true
            }
        );
        assert_eq!(
            parse("haproxy missing\n"),
            BalancerFacts {
                version: None,
                running: false
            }
        );
    }

    #[test]
    fn reads_haproxys_stats() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
                   amqp,FRONTEND,,,0,1,20000,3,0,0,0,0,0,,,,,OPEN,\n\
                   amqp,central,0,0,2,3,,1,0,0,,0,,0,0,0,0,UP,1\n\
                   amqp,site1,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN,1\n\
                   amqp,BACKEND,0,0,0,1,2000,3,0,0,0,0,,0,0,0,0,UP,2\n";
        let state = |server: &str, status: &str, sessions| ServerState {
            backend: "amqp".into(),
            server: server.into(),
            status: status.into(),
            sessions,
        };
        assert_eq!(
            parse_stats_csv(csv),
            [state("central", "UP", 2), state("site1", "DOWN", 0)]
        );
    }
}
