//! One host's facts, read in parallel with the others': its managed files (secrets
//! by hash), settings, service manager and node (see `node`), the management port
//! it runs with; and the declared plugins a node has stopped.

use super::cluster::credentials;
use super::node::{api_local_messages, local_messages, read_node};
use super::{FileState, HostFacts, NodeFacts, NodeState, QUERY_TIMEOUT};
use crate::inventory::{Host, Inventory, Role, ServiceManager};
use crate::platform::{Probe, Read};
use crate::rabbitmq::api::Credentials;
use crate::render::HostRender;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;

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

/// Whether the host's enabled_plugins file, as it is now, names `plugin`.
pub(super) fn enabled_in_file(f: &HostFacts, d: &HostRender, plugin: &str) -> bool {
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
