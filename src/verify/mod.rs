//! `warren verify`: checks of the live cluster against the inventory, each with the
//! host it concerns, pass or fail, a one-line detail and, where there is an obvious
//! fix, a hint. Everything is read from the hosts and from RabbitMQ itself.

use crate::facts::{self, ClusterFacts, HostFacts};
use crate::inventory::{Inventory, Replication, PROMETHEUS_PLUGIN};
use crate::plan::cluster::{self as cplan, ClusterPlan, Resource};
use crate::platform::{Probe, Transport};
use crate::rabbitmq::api::{self, enc, Credentials};
use crate::render::Rendered;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

mod balancer;
mod links;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub host: String,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn add(
        &mut self,
        name: &str,
        host: &str,
        ok: bool,
        detail: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.0.push(Check {
            name: name.to_string(),
            host: host.to_string(),
            ok,
            detail: detail.into(),
            hint: if ok { None } else { hint.map(str::to_string) },
        });
    }
}

const APPLY: &str = "run `warren plan` to see the drift and `warren apply` to repair it";

/// Runs every check. Never stops at the first failure: one unreachable host fails its
/// own checks and the cluster's are still read through the others.
pub fn run(inv: &Inventory, rendered: &Rendered) -> Vec<Check> {
    run_reading_lock(inv, rendered).0
}

/// `run`, and who holds the lock of a run in progress on the central host (read
/// first: the checks may fail because of what that run is doing).
pub fn run_reading_lock(
    inv: &Inventory,
    rendered: &Rendered,
) -> (Vec<Check>, Option<crate::lock::Holder>) {
    let mut c = Checks::default();

    // Hosts: reachable, RabbitMQ running, cookie, the node's own view of the cluster.
    let mut conns: Vec<Option<Box<dyn Transport>>> = Vec::new();
    for (h, r) in inv.hosts.iter().zip(facts::connect_all(inv)) {
        match r {
            Ok(t) => {
                c.add(
                    "reachable",
                    &h.name,
                    true,
                    format!("{} over {}", h.address, h.transport),
                    None,
                );
                conns.push(Some(t));
            }
            Err(e) => {
                c.add(
                    "reachable",
                    &h.name,
                    false,
                    format!("{e:#}"),
                    Some(match h.transport {
                        crate::inventory::TransportKind::Ssh => {
                            "check that the host is up and its SSH server answers"
                        }
                        crate::inventory::TransportKind::Winrm => {
                            "check that the host is up and its WinRM listener answers (winrm enumerate winrm/config/listener)"
                        }
                    }),
                );
                conns.push(None);
            }
        }
    }
    let holder = conns[inv.central_index()]
        .as_mut()
        .and_then(|t| crate::lock::read(&mut **t as &mut dyn Probe).ok())
        .flatten();
    let creds = facts::credentials(inv);
    // The cluster's members: a linked site's broker is none of them.
    let all_nodes: BTreeSet<String> = inv
        .hosts
        .iter()
        .enumerate()
        .filter(|(i, _)| inv.is_member(*i))
        .map(|(_, h)| h.node_name())
        .collect();
    let mut host_facts: Vec<Option<HostFacts>> = Vec::new();
    let mut versions: BTreeSet<String> = BTreeSet::new();
    // Every host's facts at once, read as `plan` reads them.
    let read = facts::read_hosts(
        inv,
        &rendered.hosts,
        conns
            .iter_mut()
            .map(|c| c.as_mut().map(|t| &mut **t as &mut dyn Probe))
            .collect(),
    );
    for (hi, ((h, d), r)) in inv.hosts.iter().zip(&rendered.hosts).zip(read).enumerate() {
        let Some(r) = r else {
            host_facts.push(None);
            continue;
        };
        let f = match r {
            Ok(f) => f,
            Err(e) => {
                c.add("facts", &h.name, false, format!("{e:#}"), None);
                host_facts.push(None);
                continue;
            }
        };
        let running = f.running() && f.node.membership.is_some();
        c.add(
            "rabbitmq running",
            &h.name,
            running,
            match f.node.state {
                _ if running => format!("{} answers", h.node_name()),
                facts::NodeState::Booting => format!("{} is still booting", h.node_name()),
                facts::NodeState::AppStopped => format!(
                    "{}: the Erlang VM runs with the rabbit application stopped",
                    h.node_name()
                ),
                _ => format!("{} is not running", h.node_name()),
            },
            Some("start RabbitMQ on the host (warren apply starts it)"),
        );
        let whose = if inv.is_linked(hi) {
            "the site's own cookie"
        } else {
            "the cluster's cookie"
        };
        if let Some(cookie) = d
            .files
            .iter()
            .find(|x| x.effect == crate::render::Effect::StopWriteStart)
        {
            let want = crate::util::sha256_hex(cookie.content.bytes());
            let ok = matches!(f.files.get(&cookie.path), Some(facts::FileState::Hash { sha256, .. }) if *sha256 == want);
            c.add(
                "cookie",
                &h.name,
                ok,
                if ok {
                    format!("{whose} (compared by hash)")
                } else {
                    format!("{} differs from {whose}", cookie.path)
                },
                Some(APPLY),
            );
        }
        if let Some(v) = &f.node.version {
            versions.insert(v.clone());
        }
        if let Some(m) = f.node.membership.as_ref().filter(|_| inv.is_linked(hi)) {
            let alone = m.nodes == [m.node.clone()];
            c.add(
                "standalone",
                &h.name,
                alone,
                if alone {
                    format!("{} is a broker of its own, in no cluster", m.node)
                } else {
                    format!("{} is in a cluster with {}", m.node, m.nodes.join(", "))
                },
                Some("a linked site's broker is no cluster member: `warren plan` says how to take it out"),
            );
        } else if let Some(m) = &f.node.membership {
            let seen: BTreeSet<String> = m.nodes.iter().cloned().collect();
            let running: BTreeSet<String> = m.running.iter().cloned().collect();
            let missing: Vec<&String> = all_nodes.difference(&seen).collect();
            let extra: Vec<&String> = seen.difference(&all_nodes).collect();
            let down: Vec<&String> = all_nodes
                .difference(&running)
                .filter(|n| seen.contains(*n))
                .collect();
            let ok = missing.is_empty() && extra.is_empty() && down.is_empty();
            let detail = if ok {
                format!("sees all {} nodes running", all_nodes.len())
            } else {
                let mut parts = Vec::new();
                if !missing.is_empty() {
                    parts.push(format!("not in its cluster: {}", join(&missing)));
                }
                if !extra.is_empty() {
                    parts.push(format!("not in the inventory: {}", join(&extra)));
                }
                if !down.is_empty() {
                    parts.push(format!("not running: {}", join(&down)));
                }
                parts.join("; ")
            };
            c.add(
                "cluster view",
                &h.name,
                ok,
                detail,
                Some("start the nodes that are down; `warren apply` joins the missing ones"),
            );
            c.add(
                "partitions",
                &h.name,
                m.partitions.is_empty(),
                if m.partitions.is_empty() { "none".to_string() } else { format!("partitioned from {}", m.partitions.join(", ")) },
                Some("restore the network between the nodes, then restart the nodes of the minority side"),
            );
        }
        host_facts.push(Some(f));
    }
    let all_versions: Vec<String> = versions.into_iter().collect();
    c.add(
        "versions",
        "cluster",
        all_versions.len() <= 1,
        if all_versions.is_empty() {
            "no node reported its version".to_string()
        } else {
            all_versions.join(" / ")
        },
        Some("upgrade the nodes to the same RabbitMQ and Erlang versions"),
    );

    // The cluster, through the first node whose management API answers.
    let order = inv.central_first();
    let via = order
        .iter()
        .copied()
        .filter(|&i| inv.is_member(i))
        .find(|&i| {
            host_facts[i].as_ref().is_some_and(|f| f.node.api.is_some()) && conns[i].is_some()
        });
    let Some(vi) = via else {
        c.add(
            "management API",
            "cluster",
            false,
            "no node's management API answers",
            Some("start RabbitMQ; `warren apply` enables the management plugin"),
        );
        return (c.0, holder);
    };
    let port = host_facts[vi].as_ref().map(|f| f.api_port).unwrap_or(15672);
    let cred = host_facts[vi]
        .as_ref()
        .and_then(|f| f.node.api.clone())
        .expect("api checked");
    let t = conns[vi].as_mut().expect("connected");
    // The management API's queue and node details are statistics that RabbitMQ
    // refreshes every few seconds, so right after a restart or a master move they
    // can describe a moment ago. A failing statistics check is read again until the
    // statistics have had time to catch up; only a failure that outlasts that is
    // reported. Not when a host check has failed already: verify fails anyway, and
    // a node that is down explains queues away from home, so waiting would only
    // delay the answer. Users and permissions are read live and are not waited for.
    let settle = c.0.iter().all(|k| k.ok);
    let deadline = std::time::Instant::now() + SETTLE;
    let mut last = None;
    loop {
        let checks = match facts::gather_cluster(&mut **t, port, &cred) {
            Ok(cf) => {
                let checks = cluster_checks(inv, &cf);
                last = Some(cf);
                checks
            }
            Err(e) => {
                let mut x = Checks::default();
                x.add(
                    "cluster resources",
                    &inv.hosts[vi].name,
                    false,
                    format!("{e:#}"),
                    None,
                );
                x
            }
        };
        let stale = checks
            .0
            .iter()
            .any(|k| !k.ok && SETTLING_CHECKS.contains(&k.name.as_str()));
        if !settle || !stale || std::time::Instant::now() >= deadline {
            c.0.extend(checks.0);
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if let Some(cf) = &last {
        plugins(&mut c, inv, cf, &mut conns);
        policies(
            &mut c,
            inv,
            cf,
            &mut **conns[vi].as_mut().expect("connected"),
        );
    }
    listeners(&mut c, inv, &mut conns);
    path(&mut c, inv, &mut conns, &creds);
    links::check(&mut c, inv, &host_facts, &mut conns);
    balancer::check(&mut c, inv, &host_facts, &mut conns, &creds);
    (c.0, holder)
}

/// Each site queue's policy is warren's (mirrored replication). The queue's
/// statistics name it; where they do not (late after a change, or lost for good, as
/// 3.10 can after a partition), `rabbitmqctl list_queues` on the node warren reads
/// the cluster through has the last word.
fn policies(c: &mut Checks, inv: &Inventory, cf: &ClusterFacts, t: &mut dyn Probe) {
    if inv.cluster.replication != Replication::Mirrored {
        return;
    }
    let want = |s: &crate::inventory::Site| {
        crate::render::definitions::policy_name(&inv.hosts[s.host].name)
    };
    let mut got: std::collections::BTreeMap<String, String> = cf
        .queues
        .iter()
        .filter(|q| q.vhost == inv.cluster.vhost)
        .filter_map(|q| Some((q.name.clone(), q.policy.clone()?)))
        .collect();
    let members: Vec<&crate::inventory::Site> = inv.sites.iter().filter(|s| !s.linked()).collect();
    if members.iter().any(|s| got.get(&s.queue) != Some(&want(s))) {
        let q = t.platform().read(crate::platform::Read::QueuePolicies {
            vhost: &inv.cluster.vhost,
        });
        if let Ok(out) = t.query(&q, Duration::from_secs(60)) {
            if out.ok() {
                got = out
                    .stdout
                    .lines()
                    .filter_map(|l| l.split_once('\t'))
                    .map(|(n, p)| (n.to_string(), p.trim().to_string()))
                    .filter(|(_, p)| !p.is_empty())
                    .collect();
            }
        }
    }
    for s in members {
        let have = got.get(&s.queue).map(String::as_str);
        c.add(
            "policy",
            &inv.hosts[s.host].name,
            have == Some(want(s).as_str()),
            format!("{} has policy {}", s.queue, have.unwrap_or("none")),
            Some(APPLY),
        );
    }
}

/// The declared plugins on every running node. The node statistics say which run;
/// where they say one is missing (as they do for a few seconds after a restart), the
/// node itself is asked, and its answer counts.
fn plugins(
    c: &mut Checks,
    inv: &Inventory,
    cf: &ClusterFacts,
    conns: &mut [Option<Box<dyn Transport>>],
) {
    // (host index, whether its statistics miss a declared plugin), running nodes only.
    let nodes: Vec<(usize, bool)> = cf
        .nodes
        .iter()
        .filter(|n| n.running)
        .filter_map(|n| {
            let i = inv.hosts.iter().position(|h| h.node_name() == n.name)?;
            let miss = inv
                .plugins_of(i)
                .iter()
                .any(|p| !n.applications.iter().any(|a| &a.name == p));
            Some((i, miss))
        })
        .collect();
    // The nodes whose statistics miss a plugin are asked through their CLI, all at
    // once (right after a restart that is every restarted node).
    let mut asked: Vec<Option<anyhow::Result<facts::PluginStates>>> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(i, t)| {
                let ask = nodes.iter().any(|&(k, miss)| k == i && miss);
                s.spawn(move || match (ask, t.as_mut()) {
                    (true, Some(t)) => Some(facts::plugin_states(&mut **t, inv, i)),
                    _ => None,
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|j| j.join().ok().flatten())
            .collect()
    });
    for (i, miss) in nodes {
        let host = inv.hosts[i].name.clone();
        let states = match (miss, asked[i].take()) {
            (false, _) => facts::PluginStates::default(),
            (true, None) => continue, // unreachable: reported above
            (true, Some(Ok(s))) => s,
            (true, Some(Err(e))) => {
                c.add("plugins", &host, false, format!("{e:#}"), None);
                continue;
            }
        };
        let mut wrong = Vec::new();
        if !states.not_enabled.is_empty() {
            wrong.push(format!("not enabled: {}", states.not_enabled.join(", ")));
        }
        if !states.not_running.is_empty() {
            wrong.push(format!("not running: {}", states.not_running.join(", ")));
        }
        c.add(
            "plugins",
            &host,
            wrong.is_empty(),
            if wrong.is_empty() {
                format!("{} running", inv.plugins_of(i).join(", "))
            } else {
                wrong.join("; ")
            },
            Some(APPLY),
        );
    }
}

/// How long a failing cluster check is read again before it is reported: two of
/// RabbitMQ's statistics intervals (5 s by default) and a margin.
const SETTLE: Duration = Duration::from_secs(12);

/// The cluster checks worth reading again: those from the API's statistics, and a
/// failed reading (the others are read live).
const SETTLING_CHECKS: [&str; 3] = ["alarms", "queue placement", "cluster resources"];

/// Alarms, queue placement, policies, users and permissions, from one reading of
/// the cluster.
fn cluster_checks(inv: &Inventory, cf: &ClusterFacts) -> Checks {
    let mut c = Checks::default();
    for n in &cf.nodes {
        let host = host_of(inv, &n.name);
        let mut alarms = Vec::new();
        if n.mem_alarm {
            alarms.push("memory");
        }
        if n.disk_free_alarm {
            alarms.push("disk");
        }
        c.add(
            "alarms",
            &host,
            alarms.is_empty(),
            if alarms.is_empty() {
                "none".to_string()
            } else {
                format!("{} alarm: publishers are blocked", alarms.join(" and "))
            },
            Some("free memory or disk space on the host"),
        );
    }
    // Site queues: master on the site's node, copies present and synchronised.
    let problems = crate::apply::placement_problems(inv, &cf.queues);
    for s in inv.sites.iter().filter(|s| !s.linked()) {
        let site = &inv.hosts[s.host];
        let mine: Vec<&str> = problems
            .iter()
            .filter(|p| {
                p.text.starts_with(&format!("queue {} ", s.queue))
                    || p.text.starts_with(&format!("queue {}:", s.queue))
            })
            .map(|p| p.text.as_str())
            .collect();
        let copies = inv.copy_nodes(s);
        let hint = if mine.iter().any(|p| p.contains("not synchronised")) {
            format!(
                "synchronise it: rabbitmqctl sync_queue -p {} {} (or `warren apply`)",
                inv.cluster.vhost, s.queue
            )
        } else {
            APPLY.to_string()
        };
        c.add(
            "queue placement",
            &site.name,
            mine.is_empty(),
            if mine.is_empty() {
                let at = cf
                    .queues
                    .iter()
                    .find(|q| q.name == s.queue)
                    .and_then(|q| q.master().map(str::to_string))
                    .unwrap_or_default();
                match inv.cluster.replication {
                    Replication::Mirrored => format!(
                        "{} on {at}, copies on {} in sync",
                        s.queue,
                        copies.join(", ")
                    ),
                    Replication::Quorum => format!(
                        "{}: leader {at}, members {} and {} online",
                        s.queue,
                        site.node_name(),
                        copies.join(", ")
                    ),
                }
            } else {
                mine.join("; ")
            },
            Some(&hint),
        );
    }
    // Each site's user reaches nothing of the other sites, by the permissions
    // RabbitMQ holds for it (which may have been changed by hand).
    site_users(&mut c, inv, cf, crate::inventory::Broker::Cluster);
    users_as_declared(&mut c, inv, cf, crate::inventory::Broker::Cluster);
    c
}

/// Each site's user on broker `b` reaches nothing of the other sites, by the
/// permissions RabbitMQ holds for it (which may have been changed by hand).
fn site_users(c: &mut Checks, inv: &Inventory, cf: &ClusterFacts, b: crate::inventory::Broker) {
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
fn users_as_declared(
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

fn host_of(inv: &Inventory, node: &str) -> String {
    inv.hosts
        .iter()
        .find(|h| h.node_name() == node)
        .map(|h| h.name.clone())
        .unwrap_or_else(|| node.to_string())
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// From the central host, every node's AMQP, management, MQTT and metrics ports answer: the
/// TLS ones on a host with `tls`, the plain ones unless it closed them (then they
/// must not answer). A shovelled site may sit behind a firewall the central host
/// cannot cross (its shovel connects out): its link checks speak for it.
fn listeners(c: &mut Checks, inv: &Inventory, conns: &mut [Option<Box<dyn Transport>>]) {
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
pub fn der_sha256(pem: &str) -> Result<String, String> {
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

/// The path the backend will use, on a queue of warren's own placed like each site's
/// queue: published through the site's node, routed, and consumed through the central
/// node. The user's queues and messages are not touched; what warren creates is
/// removed afterwards. Every site's path at once: the queues are made through the
/// central node, then each site publishes through its own node side by side, then
/// the central node consumes.
fn path(
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
