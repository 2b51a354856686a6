//! Facts: what the hosts report, gathered in parallel through read-only `Probe`s. A
//! fact is a command (or API call) plus a parser. A host that cannot be reached or read
//! is an error for that host, never "unchanged".

pub mod balancer;

use crate::inventory::{Broker, Host, Inventory, Role, Secret, ServiceManager};
pub use crate::platform::FileState;
use crate::platform::{Probe, Read, Transport};
use crate::rabbitmq::api::{self, Credentials};
use crate::render::{HostRender, RenderedFile};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Cluster membership as one node sees it, from RabbitMQ's own node lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub node: String,
    /// Every node of the cluster this node belongs to (itself included).
    pub nodes: Vec<String>,
    pub running: Vec<String>,
    pub ram: Vec<String>,
    pub partitions: Vec<String>,
}

/// Where a node is in its life, as the node itself answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// No RabbitMQ OS process.
    Stopped,
    /// The Erlang VM runs and the rabbit application is starting.
    Booting,
    /// The Erlang VM runs with the rabbit application stopped: `rabbitmqctl stop_app`,
    /// or a join interrupted between its `stop_app` and `start_app`.
    AppStopped,
    Running,
}

#[derive(Debug, Clone)]
pub struct NodeFacts {
    /// The RabbitMQ OS process, from its pid file.
    pub pid: Option<u32>,
    pub state: NodeState,
    /// `None` when the node is not running (or did not answer).
    pub membership: Option<Membership>,
    pub version: Option<String>,
    /// The running node's own RabbitMQ and Erlang/OTP versions (its `/api/overview`).
    pub rabbitmq_version: Option<String>,
    pub erlang_version: Option<String>,
    /// The management API answered, with these credentials.
    pub api: Option<Credentials>,
    /// Messages in this node's queues; read for nodes that would have to be reset.
    pub messages: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct HostFacts {
    pub host: String,
    /// The service manager the host runs, as its facts show it (`auto` resolves to it).
    pub manager: ServiceManager,
    pub files: BTreeMap<String, FileState>,
    pub node: NodeFacts,
    /// The management port the running node uses (from its current config).
    pub api_port: u16,
    /// Declared plugins the node has enabled but is not running: a plugin that
    /// crashed (rabbitmq_shovel 3.10 does when a cluster node goes down) stays
    /// stopped until it is enabled again. Read live, and only for nodes whose
    /// statistics show a declared plugin missing.
    pub stopped_plugins: Vec<String>,
    /// The host's own name (hostname, Windows' COMPUTERNAME).
    pub hostname: Option<String>,
    /// Host settings outside RabbitMQ's files, by key (Windows: RABBITMQ_BASE,
    /// firewall rules), as they are now.
    pub settings: BTreeMap<String, String>,
    /// The SHA-256 of the environment file the service was installed from (Windows).
    pub service_stamp: Option<String>,
    /// What the SSH server says it runs, e.g. `SSH-2.0-OpenSSH_for_Windows_7.7`.
    pub server: Option<String>,
    /// OpenSSH's DefaultShell on a Windows host, when set.
    pub ssh_shell: Option<String>,
    /// Temporary files an interrupted upload left (`PATH.warren-new`).
    pub leftovers: Vec<String>,
    /// The versions installed on the host, by package: Linux `rabbitmq-server` and
    /// `erlang-base` (dpkg's versions), Windows `rabbitmq` and `erlang` (the
    /// installers' versions, from the registry).
    pub packages: BTreeMap<String, String>,
}

impl HostFacts {
    /// RabbitMQ's OS process runs (booting, with its app stopped, or fully running).
    pub fn running(&self) -> bool {
        self.node.state != NodeState::Stopped
    }
}

/// Everything warren manages in the cluster, as the central node's API reports it.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    pub vhosts: Vec<api::VhostInfo>,
    pub users: Vec<api::UserInfo>,
    pub permissions: Vec<api::PermissionInfo>,
    pub policies: Vec<api::PolicyInfo>,
    pub exchanges: Vec<api::ExchangeInfo>,
    pub queues: Vec<api::QueueInfo>,
    pub bindings: Vec<api::BindingInfo>,
    pub nodes: Vec<api::NodeInfo>,
    pub parameters: Vec<api::ParameterInfo>,
    pub feature_flags: Vec<api::FeatureFlag>,
}

/// The cluster's state could not be read yet: why, in one sentence.
#[derive(Debug, Clone)]
pub struct Unreadable(pub String);

pub struct Facts {
    pub hosts: Vec<HostFacts>,
    pub cluster: std::result::Result<ClusterFacts, Unreadable>,
    /// Each linked site's standalone broker, by index into `Inventory::sites`.
    pub links: BTreeMap<usize, std::result::Result<ClusterFacts, Unreadable>>,
    /// HAProxy on the `[load_balancer]` host; `None` without one. An error says why
    /// it could not be read.
    pub balancer: Option<std::result::Result<balancer::BalancerFacts, String>>,
}

impl Facts {
    /// What broker `b` holds, as read.
    pub fn broker(&self, b: Broker) -> &std::result::Result<ClusterFacts, Unreadable> {
        match b {
            Broker::Cluster => &self.cluster,
            Broker::Site(i) => &self.links[&i],
        }
    }
}

/// The service manager a host really has: `auto` is decided by its facts.
pub fn manager(h: &Host, f: &HostFacts) -> ServiceManager {
    match h.service {
        ServiceManager::Auto => f.manager,
        m => m,
    }
}

/// The credentials warren tries for the management API, in order.
pub fn credentials(inv: &Inventory) -> Vec<Credentials> {
    let mut out = Vec::new();
    for u in &inv.users {
        if u.tags.iter().any(|t| t == "administrator") {
            if let Ok(pw) = u.password.read() {
                out.push(Credentials {
                    user: u.name.clone(),
                    password: pw,
                });
            }
        }
    }
    out.push(Credentials {
        user: "guest".into(),
        password: Secret::new("guest".into()),
    });
    out
}

/// The management API port of host `i` and the inventory credentials it accepts now.
pub fn node_api(p: &mut dyn Probe, inv: &Inventory, i: usize) -> Result<(u16, Credentials)> {
    let h = &inv.hosts[i];
    let port = h.ports.management;
    match api::accepted(p, port, &credentials(inv))? {
        Some(c) => Ok((port, c)),
        None => bail!(
            "{}: the management API on port {port} accepts neither the inventory's administrator nor guest (from localhost); check the users, then rerun",
            h.name
        ),
    }
}

/// Connects to every host in parallel. Returns each host's connection or the error
/// that kept warren from it.
pub fn connect_all(inv: &Inventory) -> Vec<Result<Box<dyn Transport>>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = inv
            .hosts
            .iter()
            .map(|h| s.spawn(move || connect(h)))
            .collect();
        handles
            .into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err(anyhow!("connection thread panicked")))
            })
            .collect()
    })
}

pub fn connect(h: &Host) -> Result<Box<dyn Transport>> {
    crate::platform::connect(h)
}

/// Read-only views of the connections: what fact gathering (and so `plan`) gets.
pub fn probes(conns: &mut [Box<dyn Transport>]) -> Vec<&mut dyn Probe> {
    conns
        .iter_mut()
        .map(|c| &mut **c as &mut dyn Probe)
        .collect()
}

/// Gathers every host's facts in parallel through the given read-only handles.
pub fn gather_hosts(
    inv: &Inventory,
    desired: &[HostRender],
    conns: &mut [&mut dyn Probe],
) -> Vec<Result<HostFacts>> {
    let some: Vec<Option<&mut dyn Probe>> = conns
        .iter_mut()
        .map(|c| Some(&mut **c as &mut dyn Probe))
        .collect();
    read_hosts(inv, desired, some)
        .into_iter()
        .map(|r| r.expect("every host has a handle"))
        .collect()
}

/// The same for the hosts that have a handle (`verify` reads the reachable ones):
/// `None` where there is none.
pub fn read_hosts(
    inv: &Inventory,
    desired: &[HostRender],
    conns: Vec<Option<&mut dyn Probe>>,
) -> Vec<Option<Result<HostFacts>>> {
    let creds = credentials(inv);
    std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .into_iter()
            .zip(&inv.hosts)
            .zip(desired)
            .map(|((c, h), d)| {
                let creds = &creds;
                s.spawn(move || c.map(|p| host_facts(p, inv, h, d, creds)))
            })
            .collect();
        handles
            .into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Some(Err(anyhow!("fact thread panicked"))))
            })
            .collect()
    })
}

pub fn host_facts(
    p: &mut dyn Probe,
    inv: &Inventory,
    h: &Host,
    desired: &HostRender,
    creds: &[Credentials],
) -> Result<HostFacts> {
    let files: Vec<(&str, bool)> = desired
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.content.is_secret()))
        .collect();
    let q = p.platform().read_host(&files, &desired.settings);
    let out = p.query(&q, QUERY_TIMEOUT)?;
    if !out.ok() {
        bail!(
            "{}: reading the managed files failed: {}",
            h.name,
            out.last_line()
        );
    }
    let reading = crate::platform::parse_reading(&out.stdout)
        .with_context(|| format!("{}: unexpected answer while reading files", h.name))?;
    if reading.cli_missing {
        bail!(
            "{}: RabbitMQ's command-line tools were not found (no RabbitMQ Server entry in the registry, or no rabbitmqctl.bat in paths.sbin); install RabbitMQ, or set paths.sbin in the inventory",
            h.name
        );
    }
    let (files, pid) = (reading.files, reading.pid);
    let manager = reading.manager.unwrap_or(ServiceManager::Direct);
    let api_port = current_management_port(&files, desired).unwrap_or(h.ports.management);
    let mut node = NodeFacts {
        pid,
        state: NodeState::Stopped,
        membership: None,
        version: None,
        rabbitmq_version: None,
        erlang_version: None,
        api: None,
        messages: None,
    };
    if pid.is_some() {
        node.state = read_node(p, h, api_port, creds, &mut node)?;
    }
    if node.state == NodeState::Running {
        let seed = inv.central().node_name();
        let member = node
            .membership
            .as_ref()
            .is_some_and(|m| m.nodes.contains(&seed));
        if !member && h.role != Role::Central {
            let by_api = match &node.api {
                Some(c) => api_local_messages(p, api_port, c, &h.node_name()),
                None => None,
            };
            node.messages = Some(match (by_api, node.messages) {
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => local_messages(p, h)?,
            });
        }
    }
    Ok(HostFacts {
        host: h.name.clone(),
        manager,
        files,
        node,
        api_port,
        stopped_plugins: Vec::new(),
        hostname: reading.hostname,
        settings: reading.settings,
        service_stamp: reading.service_stamp,
        server: p.server_version(),
        ssh_shell: reading.ssh_shell,
        leftovers: reading.leftovers,
        packages: reading.packages,
    })
}

/// The management port the node runs with now: from its current config file when
/// that names one, else the inventory's.
fn current_management_port(
    files: &BTreeMap<String, FileState>,
    desired: &HostRender,
) -> Option<u16> {
    let conf = desired.files.iter().find(|f| {
        f.template
            .is_some_and(|t| t.starts_with("common/rabbitmq.conf"))
    })?;
    let FileState::Text { content, .. } = files.get(&conf.path)? else {
        return None;
    };
    let text = String::from_utf8_lossy(content);
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("management.tcp.port") {
            return v.trim().trim_start_matches('=').trim().parse().ok();
        }
        if let Some(i) = line.find("{tcp_config, [{port, ") {
            let rest = &line[i + "{tcp_config, [{port, ".len()..];
            return rest.split('}').next()?.trim().parse().ok();
        }
    }
    None
}

/// The node list with only what a node's membership needs: every node's full
/// statistics, twenty times over on a 20-node cluster, are most of a plan's reading.
const NODE_LIST: &str = "/api/nodes?columns=name,running,type,partitions";

/// The node's own view: through the management API when it answers (fast), else
/// one `rabbitmqctl eval` (a fresh node may have no management plugin yet).
fn read_node(
    p: &mut dyn Probe,
    h: &Host,
    port: u16,
    creds: &[Credentials],
    node: &mut NodeFacts,
) -> Result<NodeState> {
    for c in creds {
        let Ok(r) = p.get(port, "/api/overview", Some((&c.user, c.password.expose()))) else {
            break; // nothing listens: no management plugin
        };
        if r.status != 200 {
            continue;
        }
        let overview: api::Overview = api::parse(&r.body)
            .with_context(|| format!("{}: /api/overview: unexpected answer", h.name))?;
        let nodes: Vec<api::NodeInfo> = api::get(p, port, c, NODE_LIST)?;
        node.version = Some(format!(
            "RabbitMQ {}, Erlang {}",
            overview.rabbitmq_version, overview.erlang_version
        ));
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        node.rabbitmq_version = some(&overview.rabbitmq_version);
        node.erlang_version = some(&overview.erlang_version);
        // The node's own partitions: the nodes it lost and found again.
        let Some(partitions) = nodes
            .iter()
            .find(|n| n.name == overview.node)
            .and_then(|n| n.partitions.clone())
        else {
            // Incomplete statistics (after a partition, or a node whose API answers
            // while it still boots): the node's own live view instead.
            return match answer(p, h)? {
                Answer::Member(m, messages) => {
                    node.membership = Some(m);
                    node.messages = Some(messages);
                    node.api = Some(c.clone());
                    Ok(NodeState::Running)
                }
                Answer::Not(state) => Ok(state),
            };
        };
        node.membership = Some(membership_of(overview.node, &nodes, partitions));
        node.api = Some(c.clone());
        return Ok(NodeState::Running);
    }
    match answer(p, h)? {
        Answer::Member(m, messages) => {
            node.membership = Some(m);
            node.messages = Some(messages);
            Ok(NodeState::Running)
        }
        Answer::Not(state) => Ok(state),
    }
}

enum Answer {
    /// A running node: its membership, and the messages in its own queues.
    Member(Membership, u64),
    Not(NodeState),
}

/// How long a node whose OS process runs may take to answer the CLI at all (a VM
/// just started registers with epmd within seconds).
const ANSWER_WAIT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct NodeStateAnswer {
    state: String,
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default)]
    disc: Vec<String>,
    #[serde(default)]
    running: Vec<String>,
    #[serde(default)]
    partitions: Vec<String>,
    #[serde(default)]
    messages: u64,
}

/// The node's membership, or why it has none to give: still booting, or its rabbit
/// application stopped. Both are states the plan finishes (wait, `start_app`), never
/// errors; a node that does not answer at all within `ANSWER_WAIT` is one. One CLI
/// call (`Read::NodeState`) per try.
fn answer(p: &mut dyn Probe, h: &Host) -> Result<Answer> {
    let q = p.platform().read(Read::NodeState);
    let deadline = std::time::Instant::now() + ANSWER_WAIT;
    loop {
        let out = p.query(&q, QUERY_TIMEOUT)?;
        if out.ok() {
            return parse_node_state(&out.stdout, h);
        }
        // A node in between (registering with epmd, starting or stopping) may fail
        // the call in several ways: asked again until `ANSWER_WAIT`.
        if std::time::Instant::now() > deadline {
            bail!(
                "{}: RabbitMQ runs but `rabbitmqctl eval` (its state) failed: {}",
                h.name,
                out.last_line()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn parse_node_state(stdout: &str, h: &Host) -> Result<Answer> {
    let line = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let a: NodeStateAnswer = serde_json::from_str(line)
        .with_context(|| format!("{}: the node's state: unexpected answer {line:?}", h.name))?;
    match a.state.as_str() {
        "running" => {
            let mut nodes = a.nodes.clone();
            nodes.sort();
            let ram = a
                .nodes
                .into_iter()
                .filter(|n| !a.disc.contains(n))
                .collect();
            Ok(Answer::Member(
                Membership {
                    node: h.node_name(),
                    nodes,
                    running: a.running,
                    ram,
                    partitions: a.partitions,
                },
                a.messages,
            ))
        }
        "booting" => Ok(Answer::Not(NodeState::Booting)),
        _ => Ok(Answer::Not(NodeState::AppStopped)),
    }
}

/// A running node's membership and the messages in its own queues, in one CLI call;
/// an error when the node is not running.
pub fn node_state(p: &mut dyn Probe, h: &Host) -> Result<(Membership, u64)> {
    let q = p.platform().read(Read::NodeState);
    let out = p.query(&q, QUERY_TIMEOUT)?;
    if !out.ok() {
        bail!(
            "{}: RabbitMQ runs but `rabbitmqctl eval` (its state) failed: {}",
            h.name,
            out.last_line()
        );
    }
    match parse_node_state(&out.stdout, h)? {
        Answer::Member(m, messages) => Ok((m, messages)),
        Answer::Not(NodeState::Booting) => bail!("{}: RabbitMQ is still booting", h.name),
        Answer::Not(_) => bail!(
            "{}: RabbitMQ runs with its rabbit application stopped",
            h.name
        ),
    }
}

/// How many messages the queues on `node` hold, from its management API: `None`
/// when the API does not say for every queue (statistics not in yet after a start),
/// so that only the CLI decides then. The list of queues itself is RabbitMQ's own.
pub fn api_local_messages(
    p: &mut dyn Probe,
    port: u16,
    c: &Credentials,
    node: &str,
) -> Option<u64> {
    let queues: Vec<api::QueueInfo> =
        api::get(p, port, c, "/api/queues?columns=name,vhost,node,messages").ok()?;
    let mut sum = 0;
    for q in queues.iter().filter(|q| q.node.as_deref() == Some(node)) {
        sum += q.messages?;
    }
    Some(sum)
}

/// A node's membership from its own management API (`/api/nodes` lists the nodes of
/// its cluster from RabbitMQ's own database), or `None` when the API does not answer
/// with any of `creds` or its statistics lack the node's partitions.
pub fn api_membership(
    p: &mut dyn Probe,
    port: u16,
    creds: &[Credentials],
    node: &str,
) -> Option<(Membership, Credentials)> {
    for c in creds {
        let r = p
            .get(port, NODE_LIST, Some((&c.user, c.password.expose())))
            .ok()?; // nothing listens: no management plugin (yet)
        if r.status != 200 {
            continue;
        }
        let nodes: Vec<api::NodeInfo> = api::parse(&r.body).ok()?;
        let partitions = nodes.iter().find(|n| n.name == node)?.partitions.clone()?;
        return Some((
            membership_of(node.to_string(), &nodes, partitions),
            c.clone(),
        ));
    }
    None
}

/// `node`'s membership from the node list its management API gives.
fn membership_of(node: String, nodes: &[api::NodeInfo], partitions: Vec<String>) -> Membership {
    let names = |keep: &dyn Fn(&api::NodeInfo) -> bool| -> Vec<String> {
        nodes
            .iter()
            .filter(|n| keep(n))
            .map(|n| n.name.clone())
            .collect()
    };
    let mut all = names(&|_| true);
    all.sort();
    Membership {
        node,
        nodes: all,
        running: names(&|n| n.running),
        ram: names(&|n| n.node_type == "ram"),
        partitions,
    }
}

/// How many messages the node's queues hold (before a reset would drop them).
pub fn local_messages(p: &mut dyn Probe, h: &Host) -> Result<u64> {
    let q = p.platform().read(Read::LocalMessages);
    let out = p.query(&q, QUERY_TIMEOUT)?;
    if !out.ok() {
        bail!(
            "{}: `rabbitmqctl list_queues` failed: {}",
            h.name,
            out.last_line()
        );
    }
    let rows: Vec<BTreeMap<String, serde_json::Value>> =
        serde_json::from_str(out.stdout.trim()).unwrap_or_default();
    Ok(rows
        .iter()
        .filter_map(|r| r.get("messages").and_then(|m| m.as_u64()))
        .sum())
}

/// Reads everything warren manages in the cluster through `p`, the central host.
pub fn gather_cluster(p: &mut dyn Probe, port: u16, c: &Credentials) -> Result<ClusterFacts> {
    Ok(ClusterFacts {
        vhosts: api::get(p, port, c, "/api/vhosts")?,
        users: api::get(p, port, c, "/api/users")?,
        permissions: api::get(p, port, c, "/api/permissions")?,
        policies: api::get(p, port, c, "/api/policies")?,
        exchanges: api::get(p, port, c, "/api/exchanges")?,
        queues: api::get(p, port, c, "/api/queues")?,
        bindings: api::get(p, port, c, "/api/bindings")?,
        nodes: api::get(p, port, c, "/api/nodes")?,
        parameters: api::get(p, port, c, "/api/parameters")?,
        feature_flags: api::get(p, port, c, "/api/feature-flags")?,
    })
}

/// All facts: hosts in parallel, then the cluster through the central host.
/// `Err` lists the hosts that could not be read, one line each.
pub fn gather(
    inv: &Inventory,
    desired: &[HostRender],
    conns: &mut [&mut dyn Probe],
) -> Result<Facts> {
    let results = gather_hosts(inv, desired, conns);
    let mut hosts = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(f) => hosts.push(f),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    let cluster = read_cluster(inv, &hosts, conns);
    let links: BTreeMap<usize, std::result::Result<ClusterFacts, Unreadable>> = inv
        .brokers()
        .into_iter()
        .filter_map(|b| match b {
            Broker::Site(si) => Some((si, read_broker(inv.sites[si].host, &hosts, conns))),
            Broker::Cluster => None,
        })
        .collect();
    if let Ok(cf) = &cluster {
        let ask: Vec<bool> = inv
            .hosts
            .iter()
            .enumerate()
            .zip(desired)
            .zip(&hosts)
            .map(|(((i, h), d), f)| {
                // A node's statistics come from the broker it belongs to.
                let read = match inv.sites.iter().position(|s| s.host == i && s.linked()) {
                    Some(si) => links[&si].as_ref().ok(),
                    None => Some(cf),
                };
                let plugins = inv.plugins_of(i);
                let missing: Vec<&String> = read
                    .into_iter()
                    .flat_map(|cf| cf.nodes.iter())
                    .filter(|n| n.name == h.node_name() && n.running)
                    .flat_map(|n| {
                        plugins
                            .iter()
                            .filter(|p| !n.applications.iter().any(|a| &a.name == *p))
                    })
                    .collect();
                // A plugin the node's enabled_plugins file does not name yet is not
                // a stopped plugin: the file changes, and the restart starts it.
                !missing.is_empty() && missing.iter().all(|p| enabled_in_file(f, d, p))
            })
            .collect();
        // Statistics lag behind a restart: only the node itself can say, through
        // its CLI; every node that needs asking is asked at once.
        let answers: Vec<Option<Vec<String>>> = std::thread::scope(|s| {
            let handles: Vec<_> = conns
                .iter_mut()
                .zip(&ask)
                .enumerate()
                .map(|(i, (c, &ask))| {
                    s.spawn(move || {
                        ask.then(|| {
                            plugin_states(&mut **c, inv, i)
                                .map(|s| s.not_running)
                                .unwrap_or_default()
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|j| j.join().ok().flatten())
                .collect()
        });
        for (f, a) in hosts.iter_mut().zip(answers) {
            if let Some(stopped) = a {
                f.stopped_plugins = stopped;
            }
        }
    }
    let balancer = inv.load_balancer.as_ref().and_then(|lb| {
        balancer::read(inv, &hosts[lb.host], &mut *conns[lb.host])
            .map(|r| r.map_err(|e| format!("{e:#}")))
    });
    Ok(Facts {
        hosts,
        cluster,
        links,
        balancer,
    })
}

/// Whether the host's enabled_plugins file, as it is now, names `plugin`.
fn enabled_in_file(f: &HostFacts, d: &HostRender, plugin: &str) -> bool {
    d.files
        .iter()
        .filter(|rf| rf.template == Some("common/enabled_plugins.tera"))
        .any(|rf| match f.files.get(&rf.path) {
            Some(FileState::Text { content, .. }) => String::from_utf8_lossy(content)
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == plugin),
            _ => false,
        })
}

/// The declared plugins a node lacks, as `rabbitmq-plugins` on the host reports them
/// live (the API's node statistics lag a few seconds behind a crash or a restart).
#[derive(Debug, Clone, Default)]
pub struct PluginStates {
    /// Declared, but not in the node's enabled plugins.
    pub not_enabled: Vec<String>,
    /// Enabled (explicitly or as a dependency), but not running.
    pub not_running: Vec<String>,
}

/// The plugin states of host `i` (through its own connection `p`).
pub fn plugin_states(p: &mut dyn Probe, inv: &Inventory, i: usize) -> Result<PluginStates> {
    #[derive(serde::Deserialize)]
    struct Listing {
        plugins: Vec<Plugin>,
    }
    #[derive(serde::Deserialize)]
    struct Plugin {
        name: String,
        enabled: String,
        running: bool,
    }
    let q = p.platform().read(Read::Plugins);
    let out = p.query(&q, QUERY_TIMEOUT)?;
    if !out.ok() {
        bail!(
            "{}: rabbitmq-plugins list failed: {}",
            p.host(),
            out.last_line()
        );
    }
    let listing: Listing = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("{}: unexpected answer from rabbitmq-plugins list", p.host()))?;
    let mut states = PluginStates::default();
    for want in &inv.plugins_of(i) {
        match listing.plugins.iter().find(|x| &x.name == want) {
            Some(x) if x.enabled == "enabled" || x.enabled == "implicit" => {
                if !x.running {
                    states.not_running.push(want.clone());
                }
            }
            _ => states.not_enabled.push(want.clone()),
        }
    }
    Ok(states)
}

/// The cluster, read through the central node.
pub fn read_cluster(
    inv: &Inventory,
    hosts: &[HostFacts],
    conns: &mut [&mut dyn Probe],
) -> std::result::Result<ClusterFacts, Unreadable> {
    read_broker(inv.central_index(), hosts, conns)
}

/// The broker of host `ci` (the central node, or a linked site's), read through it.
pub fn read_broker(
    ci: usize,
    hosts: &[HostFacts],
    conns: &mut [&mut dyn Probe],
) -> std::result::Result<ClusterFacts, Unreadable> {
    let cf = &hosts[ci];
    match &cf.node.api {
        None if cf.node.state != NodeState::Running => Err(Unreadable(format!(
            "RabbitMQ on {} {}",
            cf.host,
            match cf.node.state {
                NodeState::Booting => "is still booting",
                NodeState::AppStopped => "runs with its rabbit application stopped",
                _ => "is not running",
            }
        ))),
        None => Err(Unreadable(format!(
            "the management API of {} does not answer yet (its plugin is enabled by this apply)",
            cf.host
        ))),
        Some(c) => gather_cluster(&mut *conns[ci], cf.api_port, c)
            .map_err(|e| Unreadable(format!("{e:#}"))),
    }
}

pub use crate::platform::await_startup;

/// The file facts for one desired file.
pub fn file_state<'a>(facts: &'a HostFacts, f: &RenderedFile) -> &'a FileState {
    facts.files.get(&f.path).unwrap_or(&FileState::Missing)
}
