//! What every template of a host sees (tera's context): the cluster, the host (its
//! ports, paths, link, plugins and TLS files), the nodes and members, the config
//! file's path and the firewall rules; and which config file the cluster's format is.

use super::firewall::firewall_rules;
use super::tls::{erl_path, tls_paths};
use crate::inventory::{ConfigFormat, Host, Inventory, Paths, Role};
use serde::Serialize;

#[derive(Serialize)]
struct NodeCtx<'a> {
    name: &'a str,
    node_name: String,
    address: &'a str,
    node_type: &'a str,
    role: &'a str,
}

#[derive(Serialize)]
struct HostCtx<'a> {
    name: &'a str,
    node_name: String,
    address: &'a str,
    os: &'a str,
    role: &'a str,
    node_type: &'a str,
    service: &'a str,
    ports: crate::inventory::Ports,
    paths: &'a Paths,
    /// How the host's broker reaches the central host: "cluster" (a member),
    /// "shovel" or "federation" (a standalone broker).
    link: &'a str,
    /// The cluster_name its broker carries: the cluster's, or for a linked site's
    /// standalone broker its own (federation tells brokers apart by it).
    cluster_name: String,
    /// The plugins it runs: the cluster's, and those its links need.
    plugins: Vec<String>,
    /// Where its TLS files are, for a host with `tls`.
    tls: Option<TlsCtx>,
}

/// A TLS host's files as RabbitMQ and Erlang read them: forward slashes on every
/// OS (Erlang takes `C:/...`), so one template serves both.
#[derive(Serialize)]
struct TlsCtx {
    ca: String,
    cert: String,
    key: String,
    dist_optfile: String,
    keep_plain: bool,
}

#[derive(Serialize)]
struct ClusterCtx<'a> {
    name: &'a str,
    replication: &'a str,
    partition_handling: &'a str,
    net_ticktime: Option<u32>,
    plugins: &'a [String],
    join: &'a str,
    config_format: &'a str,
    vhost: &'a str,
}

#[derive(Serialize)]
struct FirewallRule {
    name: String,
    ports: String,
}

pub(super) const HEADER: &str =
    "Managed by warren from inventory.toml: edit the inventory (or a template), not this file.";

/// The tera context every template of `host` sees.
pub(super) fn context(inv: &Inventory, host: &Host, config_file: &str) -> tera::Context {
    let c = &inv.cluster;
    let hi = inv
        .hosts
        .iter()
        .position(|h| h.name == host.name)
        .expect("an inventory host");
    let mut ctx = tera::Context::new();
    ctx.insert("header", HEADER);
    ctx.insert(
        "cluster",
        &ClusterCtx {
            name: &c.name,
            replication: c.replication.as_str(),
            partition_handling: c.partition_handling.as_str(),
            net_ticktime: c.net_ticktime,
            plugins: &c.plugins,
            join: c.join.as_str(),
            config_format: c.config_format.as_str(),
            vhost: &c.vhost,
        },
    );
    ctx.insert(
        "host",
        &HostCtx {
            name: &host.name,
            node_name: host.node_name(),
            address: &host.address,
            os: host.os.as_str(),
            role: host.role.as_str(),
            node_type: host.node_type.as_str(),
            service: host.service.as_str(),
            ports: host.ports,
            paths: &host.paths,
            link: inv
                .site_of(host)
                .map(|s| s.link.as_str())
                .unwrap_or("cluster"),
            cluster_name: match inv.site_of(host).filter(|s| s.linked()) {
                Some(_) => format!("{}-{}", c.name, host.name),
                None => c.name.clone(),
            },
            plugins: inv.plugins_of(hi),
            tls: host.tls.as_ref().zip(tls_paths(host)).map(|(t, p)| TlsCtx {
                ca: erl_path(&p.ca),
                cert: erl_path(&p.cert),
                key: erl_path(&p.key),
                dist_optfile: erl_path(&p.dist_optfile),
                keep_plain: t.keep_plain,
            }),
        },
    );
    // The seed (central) first: the node list of peer discovery and the hosts file
    // both read best with the node every other node joins at the top.
    let mut nodes: Vec<&Host> = inv.hosts.iter().collect();
    nodes.sort_by_key(|h| h.role != Role::Central);
    let nodes: Vec<NodeCtx> = nodes
        .iter()
        .map(|h| NodeCtx {
            name: &h.name,
            node_name: h.node_name(),
            address: &h.address,
            node_type: h.node_type.as_str(),
            role: h.role.as_str(),
        })
        .collect();
    ctx.insert("nodes", &nodes);
    // The cluster's members: what peer discovery lists (a linked site is none).
    let members: Vec<&NodeCtx> = nodes
        .iter()
        .filter(|n| {
            inv.hosts
                .iter()
                .position(|h| h.name == n.name)
                .is_some_and(|i| inv.is_member(i))
        })
        .collect();
    ctx.insert("members", &members);
    ctx.insert("config_file", config_file);
    let firewall: Vec<FirewallRule> = firewall_rules(host, inv.serves_metrics(hi))
        .into_iter()
        .map(|(n, ports)| FirewallRule {
            name: n.to_string(),
            ports,
        })
        .collect();
    ctx.insert("firewall", &firewall);
    ctx
}

pub(super) fn config_file_name(inv: &Inventory) -> &'static str {
    match inv.cluster.config_format {
        ConfigFormat::Conf => "rabbitmq.conf",
        ConfigFormat::ErlangTerms => "rabbitmq.config",
    }
}

pub(super) fn config_template(inv: &Inventory) -> &'static str {
    match inv.cluster.config_format {
        ConfigFormat::Conf => "common/rabbitmq.conf.tera",
        ConfigFormat::ErlangTerms => "common/rabbitmq.config.tera",
    }
}
