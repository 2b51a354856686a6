//! Facts: what the hosts report, gathered in parallel through read-only `Probe`s. A
//! fact is a command (or API call) plus a parser. A host that cannot be reached or read
//! is an error for that host, never "unchanged". Here: what the facts are, and
//! gathering them all; a host's, a node's, a broker's and HAProxy's each have a file.

pub mod balancer;
mod cluster;
mod host;
mod node;

pub use cluster::{credentials, gather_cluster, node_api, read_broker, read_cluster};
pub use host::{gather_hosts, host_facts, plugin_states, read_hosts, PluginStates};
pub use node::{api_local_messages, api_membership, local_messages, node_state};

use crate::inventory::{Broker, Host, Inventory, ServiceManager};
pub use crate::platform::FileState;
use crate::platform::{Probe, Transport};
use crate::rabbitmq::api::{self, Credentials};
use crate::render::{HostRender, RenderedFile};
use anyhow::{anyhow, bail, Result};
use host::enabled_in_file;
use std::collections::BTreeMap;
use std::time::Duration;

pub(super) const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

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

pub use crate::platform::await_startup;

/// The file facts for one desired file.
pub fn file_state<'a>(facts: &'a HostFacts, f: &RenderedFile) -> &'a FileState {
    facts.files.get(&f.path).unwrap_or(&FileState::Missing)
}
