//! Names and ports between the hosts, from each host to every host it must talk to:
//! cluster members resolve each other's names (Erlang distribution reaches a node by
//! the host part of its name) to the inventory's addresses, and reach each other's
//! epmd, distribution, AMQP and management ports; a shovel's site reaches the central
//! host's AMQP port, and the central host a federated site's; the balancer reaches
//! every member's AMQP and management ports.
//!
//! A port is probed only where it means something now: on a host whose node runs,
//! and (but for epmd's) with warren's files already, since a node listens where its
//! current files say. `preflight` makes the same checks for the joins a plan holds,
//! before anything changes.

use super::Lines;
use crate::facts::{Facts, HostFacts, NodeState};
use crate::inventory::{Host, Inventory};
use crate::plan::{Blocker, HostPlan, Plan, Service};
use crate::platform::{Probe, Transport};
use crate::render::Rendered;
use std::time::Duration;

const EPMD: u16 = 4369;

/// A port and what listens there.
type Port = (u16, &'static str);
const TIMEOUT: Duration = Duration::from_secs(60);

/// The ports of `j` that host `i` connects to, with their names.
fn ports(inv: &Inventory, i: usize, j: usize) -> Vec<(u16, &'static str)> {
    let t = &inv.hosts[j];
    let amqp = if t.tls_only() {
        (t.ports.amqps, "AMQPS")
    } else {
        (t.ports.amqp, "AMQP")
    };
    let management = if t.tls_only() {
        (t.ports.management_tls, "management (HTTPS)")
    } else {
        (t.ports.management, "management")
    };
    let mut out = Vec::new();
    if inv.is_member(i) && inv.is_member(j) {
        out.extend([
            (EPMD, "epmd"),
            (t.ports.dist, "distribution"),
            amqp,
            management,
        ]);
    }
    // A link connects one way: a shovel from its site to the central host, a
    // federation from the central host to its site.
    let ci = inv.central_index();
    let connects = inv.sites.iter().any(|s| {
        let (from, to) = match s.link {
            crate::inventory::Link::Shovel => (s.host, ci),
            _ => (ci, s.host),
        };
        s.linked() && (from, to) == (i, j)
    });
    if connects {
        out.push(amqp);
    }
    if inv.load_balancer.as_ref().is_some_and(|lb| lb.host == i) && inv.is_member(j) {
        out.extend([amqp, management]);
    }
    let mut seen = Vec::new();
    out.retain(|p| {
        let new = !seen.contains(&p.0);
        seen.push(p.0);
        new
    });
    out
}

/// The host part of a node's name: what its peers must resolve.
fn name_of(h: &Host) -> String {
    h.node_name()
        .split_once('@')
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| h.name.clone())
}

/// Which of `ports` can be probed on host `t` now, and why the others cannot.
fn probeable(
    t: &Host,
    f: Option<&HostFacts>,
    restarts: bool,
    ports: &[(u16, &'static str)],
) -> (Vec<(u16, &'static str)>, Option<String>) {
    match f.map(|f| f.node.state) {
        Some(NodeState::Stopped) => (
            Vec::new(),
            Some(format!("not checked: {} is not running", t.node_name())),
        ),
        Some(_) if restarts => {
            let now: Vec<Port> = ports.iter().copied().filter(|p| p.0 == EPMD).collect();
            let later: Vec<Port> = ports.iter().copied().filter(|p| p.0 != EPMD).collect();
            let why = (!later.is_empty()).then(|| {
                format!(
                    "{} checked once {} runs with warren's files (after apply)",
                    later
                        .iter()
                        .map(|p| format!("{} {}", p.1, p.0))
                        .collect::<Vec<_>>()
                        .join(", "),
                    t.node_name()
                )
            });
            (now, why)
        }
        _ => (ports.to_vec(), None),
    }
}

/// What one host is asked: names to resolve and (address, port) targets to probe.
#[derive(Default)]
struct Ask {
    names: Vec<String>,
    targets: Vec<(String, u16)>,
}

/// Its answers: each name's addresses (or why not), each target open or not.
struct Answer {
    names: Vec<Result<Vec<String>, String>>,
    open: Result<Vec<bool>, String>,
}

/// Every host's questions at once, each host its own in order.
fn ask_all(probes: Vec<Option<&mut dyn Probe>>, asks: &[Ask]) -> Vec<Option<Answer>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = probes
            .into_iter()
            .zip(asks)
            .map(|(p, a)| {
                s.spawn(move || {
                    let p = p?;
                    if a.names.is_empty() && a.targets.is_empty() {
                        return None;
                    }
                    let names = a
                        .names
                        .iter()
                        .map(|n| {
                            let q = p.platform().resolve(n);
                            match p.query(&q, TIMEOUT) {
                                Ok(out) => {
                                    Ok(out.stdout.split_whitespace().map(String::from).collect())
                                }
                                Err(e) => Err(format!("{e:#}")),
                            }
                        })
                        .collect();
                    let open = if a.targets.is_empty() {
                        Ok(Vec::new())
                    } else {
                        let q = p.platform().probe_ports(&a.targets);
                        match p.query(&q, TIMEOUT) {
                            Ok(out) => Ok((0..a.targets.len())
                                .map(|k| {
                                    out.stdout.lines().any(|l| l.trim() == format!("open {k}"))
                                })
                                .collect()),
                            Err(e) => Err(format!("{e:#}")),
                        }
                    };
                    Some(Answer { names, open })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|j| j.join().ok().flatten())
            .collect()
    })
}

/// Whether the plan restarts the node (or reinstalls its service): until then it
/// listens where its current files say.
fn restarts(p: &HostPlan) -> bool {
    matches!(p.service, Service::Restart { .. }) || !p.reinstall.is_empty()
}

/// Whether the plan writes the host's hosts file (warren keeps the names there): a
/// name check there can wait for it.
fn writes_hosts(inv: &Inventory, p: &HostPlan) -> bool {
    inv.cluster.hosts_file
        && p.files
            .iter()
            .any(|c| c.path.to_ascii_lowercase().ends_with("hosts"))
}

/// One failed name lookup, as a sentence.
fn name_problem(
    resolver: &Host,
    target: &Host,
    got: &Result<Vec<String>, String>,
) -> Option<String> {
    let name = name_of(target);
    match got {
        Err(e) => Some(format!("cannot look up {name}: {e}")),
        Ok(a) if a.is_empty() => Some(format!(
            "{name} does not resolve on {}, so node {} cannot be reached from there",
            resolver.name,
            target.node_name()
        )),
        Ok(a)
            if target.address.parse::<std::net::IpAddr>().is_ok()
                && !a.contains(&target.address) =>
        {
            Some(format!(
                "{name} resolves to {} on {}, the inventory says {}",
                a.join(", "),
                resolver.name,
                target.address
            ))
        }
        Ok(_) => None,
    }
}

const NAME_FIX: &str = "set hosts_file = true in the inventory, or make DNS (or each hosts file) give every host's name its inventory address; names must resolve the same way everywhere";

/// The doctor's lines for names and ports among the hosts.
pub(super) fn checks(
    l: &mut Lines,
    inv: &Inventory,
    rendered: &Rendered,
    facts: &[Option<HostFacts>],
    probes: Vec<Option<&mut dyn Probe>>,
    wanted: &dyn Fn(&str) -> bool,
) {
    let n = inv.hosts.len();
    // Each host's plan, once: what it restarts and writes decides what can be checked.
    let plans: Vec<Option<HostPlan>> = (0..n)
        .map(|j| {
            facts[j]
                .as_ref()
                .map(|f| crate::plan::host_plan(&inv.hosts[j], &rendered.hosts[j], f))
        })
        .collect();
    // What each host is asked, and which (target, port) each probe is.
    let mut asks: Vec<Ask> = (0..n).map(|_| Ask::default()).collect();
    let mut probed: Vec<Vec<(usize, u16, &'static str)>> = vec![Vec::new(); n];
    let mut resolved: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut skipped: Vec<Vec<String>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (0..n).filter(|&j| j != i) {
            if !wanted(&inv.hosts[i].name) && !wanted(&inv.hosts[j].name) {
                continue;
            }
            let ps = ports(inv, i, j);
            if ps.is_empty() {
                continue;
            }
            if inv.is_member(i) && inv.is_member(j) {
                asks[i].names.push(name_of(&inv.hosts[j]));
                resolved[i].push(j);
            }
            let (now, why) = probeable(
                &inv.hosts[j],
                facts[j].as_ref(),
                plans[j].as_ref().is_some_and(restarts),
                &ps,
            );
            if let Some(why) = why {
                if !skipped[j].contains(&why) {
                    skipped[j].push(why);
                }
            }
            for (port, what) in now {
                asks[i].targets.push((inv.hosts[j].address.clone(), port));
                probed[i].push((j, port, what));
            }
        }
    }
    let answers = ask_all(probes, &asks);
    // Names, one line per resolving host.
    for i in 0..n {
        if resolved[i].is_empty() {
            continue;
        }
        let h = &inv.hosts[i];
        let Some(a) = &answers[i] else {
            l.warn(
                "names",
                &h.name,
                "not checked: the host could not be read",
                "see its reach line",
            );
            continue;
        };
        let problems: Vec<String> = resolved[i]
            .iter()
            .zip(&a.names)
            .filter_map(|(&j, got)| name_problem(h, &inv.hosts[j], got))
            .collect();
        let names: Vec<String> = resolved[i]
            .iter()
            .map(|&j| name_of(&inv.hosts[j]))
            .collect();
        if problems.is_empty() {
            l.ok(
                "names",
                &h.name,
                format!("resolves {} to the inventory's addresses", names.join(", ")),
            );
        } else if plans[i].as_ref().is_some_and(|p| writes_hosts(inv, p)) {
            l.warn(
                "names",
                &h.name,
                problems.join("; "),
                "`warren apply` writes the cluster's names to the hosts file first; run doctor again after it",
            );
        } else {
            l.fail("names", &h.name, problems.join("; "), NAME_FIX);
        }
    }
    // Ports, one line per host probed.
    for (j, t) in inv.hosts.iter().enumerate() {
        if !wanted(&t.name)
            && !(0..n).any(|i| wanted(&inv.hosts[i].name) && probed[i].iter().any(|p| p.0 == j))
        {
            continue;
        }
        let mut open: Vec<String> = Vec::new();
        let mut refused: Vec<(u16, &str, Vec<&str>)> = Vec::new();
        let mut unknown = Vec::new();
        for i in 0..n {
            for (k, &(tj, port, what)) in probed[i].iter().enumerate() {
                if tj != j {
                    continue;
                }
                match answers[i].as_ref().map(|a| &a.open) {
                    Some(Ok(o)) if o.get(k) == Some(&true) => {
                        let s = format!("{what} {port}");
                        if !open.contains(&s) {
                            open.push(s);
                        }
                    }
                    Some(Ok(_)) => match refused.iter_mut().find(|r| r.0 == port) {
                        Some(r) => r.2.push(&inv.hosts[i].name),
                        None => refused.push((port, what, vec![&inv.hosts[i].name])),
                    },
                    _ => {
                        if !unknown.contains(&inv.hosts[i].name) {
                            unknown.push(inv.hosts[i].name.clone());
                        }
                    }
                }
            }
        }
        let mut notes = skipped[j].clone();
        if !unknown.is_empty() {
            notes.push(format!(
                "not probed from {}, which could not be read",
                unknown.join(", ")
            ));
        }
        if !refused.is_empty() {
            let what: Vec<String> = refused
                .iter()
                .map(|(port, what, from)| {
                    format!(
                        "{what} port {port} refuses connections from {}",
                        from.join(", ")
                    )
                })
                .collect();
            let ports: Vec<String> = refused.iter().map(|r| r.0.to_string()).collect();
            l.fail(
                "ports",
                &t.name,
                format!("{} ({}): {}", t.name, t.address, what.join("; ")),
                format!(
                    "open TCP {} on {} (Windows Firewall, iptables or nftables) and in any firewall between the hosts",
                    ports.join(", "),
                    t.name
                ),
            );
        } else if open.is_empty() && notes.is_empty() {
            continue;
        } else if !notes.is_empty() {
            let found = if open.is_empty() {
                notes.join("; ")
            } else {
                format!(
                    "{} {}; {}",
                    open.join(", "),
                    accept(open.len()),
                    notes.join("; ")
                )
            };
            l.warn(
                "ports",
                &t.name,
                found,
                "run `warren doctor` again after `warren apply`",
            );
        } else {
            l.ok(
                "ports",
                &t.name,
                format!(
                    "{} {} from every host that needs them",
                    open.join(", "),
                    accept(open.len())
                ),
            );
        }
    }
}

/// Before anything changes: for every join the plan holds, the joining host and the
/// seed resolve each other's names to the inventory's addresses and reach each other's
/// epmd and distribution ports. A failure is a blocker naming the host and the port,
/// so no cluster is left half-joined because a name or a firewall was wrong.
pub fn preflight(
    inv: &Inventory,
    plan: &Plan,
    facts: &Facts,
    conns: &mut [Box<dyn Transport>],
) -> Vec<Blocker> {
    if plan.joins.is_empty() {
        return Vec::new();
    }
    let n = inv.hosts.len();
    let ci = inv.central_index();
    let index = |name: &str| {
        inv.hosts
            .iter()
            .position(|h| h.name == name)
            .expect("a plan host")
    };
    let mut asks: Vec<Ask> = (0..n).map(|_| Ask::default()).collect();
    // (resolver, target) and (prober, target, port, what), in each host's order.
    let mut names: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut probed: Vec<Vec<(usize, u16, &'static str)>> = vec![Vec::new(); n];
    for join in &plan.joins {
        let s = index(&join.host);
        for (from, to) in [(s, ci), (ci, s)] {
            if !writes_hosts(inv, &plan.hosts[from]) && !names[from].contains(&to) {
                asks[from].names.push(name_of(&inv.hosts[to]));
                names[from].push(to);
            }
            let t = &inv.hosts[to];
            let ps = [(EPMD, "epmd"), (t.ports.dist, "Erlang distribution")];
            let (now, _) = probeable(t, Some(&facts.hosts[to]), restarts(&plan.hosts[to]), &ps);
            for (port, what) in now {
                asks[from].targets.push((t.address.clone(), port));
                probed[from].push((to, port, what));
            }
        }
    }
    let probes: Vec<Option<&mut dyn Probe>> = conns
        .iter_mut()
        .map(|c| Some(&mut **c as &mut dyn Probe))
        .collect();
    let answers = ask_all(probes, &asks);
    let mut blockers = Vec::new();
    for i in 0..n {
        let h = &inv.hosts[i];
        let Some(a) = &answers[i] else { continue };
        for (&j, got) in names[i].iter().zip(&a.names) {
            if let Some(p) = name_problem(h, &inv.hosts[j], got) {
                blockers.push(Blocker {
                    host: h.name.clone(),
                    message: format!("{p}: the join would fail halfway; {NAME_FIX}, then rerun"),
                });
            }
        }
        for (k, &(j, port, what)) in probed[i].iter().enumerate() {
            let open = match &a.open {
                Ok(o) => o.get(k) == Some(&true),
                Err(e) => {
                    blockers.push(Blocker {
                        host: h.name.clone(),
                        message: format!("cannot probe {}'s ports: {e}", inv.hosts[j].name),
                    });
                    break;
                }
            };
            if !open {
                let t = &inv.hosts[j];
                blockers.push(Blocker {
                    host: h.name.clone(),
                    message: format!(
                        "cannot reach {what} port {port} on {} ({}), which the join needs both ways; open it in the firewall between the hosts (warren doctor checks them all), then rerun",
                        t.name, t.address
                    ),
                });
            }
        }
    }
    blockers
}

fn accept(n: usize) -> &'static str {
    if n == 1 {
        "accepts connections"
    } else {
        "accept connections"
    }
}

#[cfg(test)]
mod tests {
    use super::ports;

    /// Which ports each host must reach: between members everything distribution
    /// and clients need; a link one way only (a shovel from its site, a federation
    /// from the central host), over AMQPS to a host that listens with TLS only.
    #[test]
    fn each_host_reaches_what_it_talks_to() {
        let text = r#"
[cluster]
name = "t"
cookie = { env = "C" }

[[hosts]]
name = "central"
address = "10.0.0.10"
os = "linux"
role = "central"
tls = { ca = "ca.pem", cert = "central.pem", key = "central.key" }

[[hosts]]
name = "m"
address = "10.0.0.13"
os = "linux"
role = "site"
tls = { ca = "ca.pem", cert = "m.pem", key = "m.key" }

[[hosts]]
name = "a"
address = "10.0.0.11"
os = "windows"
password = { env = "P" }
role = "site"
tls = { ca = "ca.pem", cert = "a.pem", key = "a.key" }

[[hosts]]
name = "b"
address = "10.0.0.12"
os = "linux"
role = "site"

[[sites]]
host = "m"
exchange = "site.m"
queue = "site.m.data"

[[sites]]
host = "a"
exchange = "site.a"
queue = "site.a.data"
link = "shovel"
link_password = { env = "L" }

[[sites]]
host = "b"
exchange = "site.b"
queue = "site.b.data"
link = "federation"
link_password = { env = "L" }
"#;
        let inv = crate::inventory::parse(text, std::path::Path::new("inv.toml")).unwrap();
        let names =
            |i: usize, j: usize| -> Vec<u16> { ports(&inv, i, j).iter().map(|p| p.0).collect() };
        // Members: epmd, distribution, and AMQPS and HTTPS for TLS-only hosts.
        assert_eq!(names(1, 0), [4369, 25672, 5671, 15671]);
        assert_eq!(names(0, 1), [4369, 25672, 5671, 15671]);
        // The shovel's site connects to central, not the other way.
        assert_eq!(names(2, 0), [5671]);
        assert!(names(0, 2).is_empty());
        // central federates from b, b never connects to central.
        assert_eq!(names(0, 3), [5672]);
        assert!(names(3, 0).is_empty());
        // Linked sites have nothing to do with each other or with other members.
        assert!(names(2, 3).is_empty() && names(1, 2).is_empty());
    }
}
