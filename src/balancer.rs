//! The load balancer: HAProxy on one Linux host of the inventory, in front of the
//! cluster's nodes, so that a client connects to one address and reaches whichever
//! node answers. Its configuration is one of that host's rendered files (`CONFIG`,
//! written with the host's other files, and planned and diffed like them); this
//! module reads whether HAProxy is installed and runs, plans its start or reload, and
//! runs that at the very end of `apply`, once every node has joined: a node joining
//! serves, for a moment, an empty broker of its own, which no client should meet.

use crate::facts::HostFacts;
use crate::inventory::{Inventory, ServiceManager};
use crate::plan::{Blocker, HostPlan};
use crate::platform::{BalancerProtocol, Probe, Transport};
use crate::rabbitmq::api::{self, Credentials};
use anyhow::{anyhow, bail, Result};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Where Debian's haproxy package reads its configuration.
pub const CONFIG: &str = "/etc/haproxy/haproxy.cfg";

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
    let m = crate::plan::manager(h, f);
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

/// Starts or reloads HAProxy as planned, then waits (up to 10 s) until every
/// frontend accepts connections. Returns what was done.
pub fn apply(
    inv: &Inventory,
    t: &mut dyn Transport,
    m: ServiceManager,
    p: &BalancerPlan,
) -> Result<Option<String>> {
    if p.action == Action::Leave {
        return Ok(None);
    }
    let script = t
        .platform()
        .balancer_reload(m)
        .ok_or_else(|| anyhow!("{}: warren runs HAProxy on Linux hosts only", p.host))?;
    let out = t.run(&script, Duration::from_secs(60))?;
    if !out.ok() {
        bail!(
            "{}: {} HAProxy failed: {} ({CONFIG} is written; the running HAProxy, if any, keeps its old configuration)",
            p.host,
            if p.action == Action::Start { "starting" } else { "reloading" },
            out.stderr.trim().lines().collect::<Vec<_>>().join("; ")
        );
    }
    let ports = frontend_ports(inv);
    let targets: Vec<(String, u16)> = ports
        .iter()
        .map(|&(_, p)| ("127.0.0.1".into(), p))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = t.platform().probe_ports(&targets);
        let open = t.query(&q, Duration::from_secs(30))?;
        let answered = open
            .stdout
            .lines()
            .filter(|l| l.starts_with("open "))
            .count();
        if answered == targets.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{}: HAProxy {} but not every frontend listens after 10 s ({}): see its log",
                p.host,
                if p.action == Action::Start {
                    "started"
                } else {
                    "reloaded"
                },
                ports
                    .iter()
                    .map(|(w, p)| format!("{w} {p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(Some(match p.action {
        Action::Start => "started HAProxy".into(),
        _ => "reloaded HAProxy (haproxy.cfg changed)".into(),
    }))
}

/// The balancer's frontends, as (protocol name, port): AMQP always, MQTT and
/// management where the cluster runs their plugins.
pub fn frontend_ports(inv: &Inventory) -> Vec<(&'static str, u16)> {
    let Some(lb) = inv.load_balancer.as_ref() else {
        return Vec::new();
    };
    let has = |p: &str| inv.cluster.plugins.iter().any(|x| x == p);
    let mut out = vec![("amqp", lb.ports.amqp)];
    if has("rabbitmq_mqtt") {
        out.push(("mqtt", lb.ports.mqtt));
    }
    if has("rabbitmq_management") {
        out.push(("management", lb.ports.management));
    }
    out
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

/// What the balancer's backends speak: the members' listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Plain,
    /// Every member listens with TLS only: HAProxy passes TLS through.
    Tls,
    /// Some members with TLS only, some with plain listeners: one frontend leads to
    /// both, and no client can speak to every backend.
    Mixed,
}

/// What the cluster's members listen with, as the balancer's backends meet them.
pub fn wire(inv: &Inventory) -> Wire {
    let tls_only: Vec<bool> = inv
        .hosts
        .iter()
        .enumerate()
        .filter(|(i, _)| inv.is_member(*i))
        .map(|(_, h)| h.tls_only())
        .collect();
    match (tls_only.iter().all(|t| *t), tls_only.iter().any(|t| *t)) {
        (true, true) => Wire::Tls,
        (_, false) => Wire::Plain,
        _ => Wire::Mixed,
    }
}

/// A server of a balancer backend: a cluster member and the port it serves on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Server {
    pub name: String,
    pub address: String,
    pub port: u16,
}

/// Each backend's servers, as (frontend, servers): every cluster member (a linked
/// site's broker is another broker, no member), at the port its node listens on for
/// that protocol: the TLS one where the host closes the plain listeners, so TLS goes
/// through the balancer end to end.
pub fn backends(inv: &Inventory) -> Vec<(&'static str, Vec<Server>)> {
    frontend_ports(inv)
        .into_iter()
        .map(|(what, _)| {
            let servers = inv
                .hosts
                .iter()
                .enumerate()
                .filter(|(i, _)| inv.is_member(*i))
                .map(|(_, h)| {
                    let tls_only = h.tls_only();
                    let port = match (what, tls_only) {
                        ("amqp", false) => h.ports.amqp,
                        ("amqp", true) => h.ports.amqps,
                        ("mqtt", false) => h.ports.mqtt,
                        ("mqtt", true) => h.ports.mqtts,
                        (_, false) => h.ports.management,
                        (_, true) => h.ports.management_tls,
                    };
                    Server {
                        name: h.name.clone(),
                        address: h.address.clone(),
                        port,
                    }
                })
                .collect();
            (what, servers)
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
