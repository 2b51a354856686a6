//! Raw inventory → checked model. Every problem is collected (not just the first), each
//! naming the key it concerns and how to fix it, so `warren check` can list them all.
//! Here: the order of the checks, and `[cluster]`; the hosts, their versions, the
//! sites and users, TLS, the balancer and the secrets each have a file of their own,
//! and `problem` holds what they all share.

use super::balancer::load_balancer;
use super::hosts::{host, hosts_together};
use super::model::*;
use super::problem::{Problem, Problems};
use super::raw::*;
use super::secret::SecretRef;
use super::secret_check::secret_ref;
use super::sites::{site_users_isolated, sites, users};
use super::tls::tls_together;
use std::collections::BTreeSet;
use std::path::Path;

pub const DEFAULT_PLUGINS: &[&str] = &["rabbitmq_management", "rabbitmq_mqtt"];

/// Checks `raw` and builds the model. `dir` is the inventory's folder.
pub fn validate(raw: RawInventory, path: &Path, dir: &Path) -> Result<Inventory, Vec<Problem>> {
    let mut p = validate_all(raw, path, dir);
    // A `[cluster]` key's problem is found once per host that inherits it.
    let mut seen = BTreeSet::new();
    if let Err(list) = &mut p {
        list.retain(|x| seen.insert((x.key.clone(), x.message.clone())));
    }
    p
}

fn validate_all(raw: RawInventory, path: &Path, dir: &Path) -> Result<Inventory, Vec<Problem>> {
    let mut p = Problems::default();
    let cluster = cluster(&mut p, &raw.cluster, dir);
    let hosts: Vec<Host> = raw
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| host(&mut p, i, h, &cluster.ports, &raw.cluster, dir))
        .collect();
    let cluster = cluster.model;
    hosts_together(&mut p, &raw.hosts, &hosts, &cluster);
    let sites = sites(&mut p, &raw.sites, &hosts, cluster.replication, dir);
    let users = users(&mut p, &raw.users, &cluster.vhost, dir, &hosts);
    let load_balancer = raw
        .load_balancer
        .as_ref()
        .and_then(|b| load_balancer(&mut p, b, &hosts));
    if p.0.is_empty() {
        let inv = Inventory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            cluster,
            hosts,
            sites,
            users,
            load_balancer,
        };
        site_users_isolated(&mut p, &inv);
        tls_together(&mut p, &inv);
        if p.0.is_empty() {
            Ok(inv)
        } else {
            Err(p.0)
        }
    } else {
        Err(p.0)
    }
}

/// Below a few seconds, a busy node or a slow link is taken for a dead one (RabbitMQ's
/// net tick guide); above ten minutes, a lost node goes unnoticed for too long.
const NET_TICKTIME_MIN: u32 = 5;
const NET_TICKTIME_MAX: u32 = 600;

struct ClusterParts {
    model: Cluster,
    ports: RawPorts,
}

fn cluster(p: &mut Problems, c: &RawCluster, dir: &Path) -> ClusterParts {
    if !is_simple_name(&c.name) {
        p.add(
            "cluster.name",
            format!(
                "\"{}\" is not a usable cluster name; use letters, digits, '.', '_' or '-'",
                c.name
            ),
        );
    }
    let cookie = secret_ref(p, "cluster.cookie", &c.cookie, dir);
    let replication = p.keyword(
        "cluster.replication",
        c.replication.as_deref(),
        Replication::parse,
        Replication::CHOICES,
        Replication::Mirrored,
    );
    let partition_handling = p.keyword(
        "cluster.partition_handling",
        c.partition_handling.as_deref(),
        PartitionHandling::parse,
        PartitionHandling::CHOICES,
        PartitionHandling::Ignore,
    );
    if let Some(t) = c.net_ticktime {
        if !(NET_TICKTIME_MIN..=NET_TICKTIME_MAX).contains(&t) {
            p.add(
                "cluster.net_ticktime",
                format!("{t} s is out of range; use {NET_TICKTIME_MIN} to {NET_TICKTIME_MAX} seconds (Erlang's default is 60), or leave the key out"),
            );
        }
    }
    let join = p.keyword(
        "cluster.join",
        c.join.as_deref(),
        JoinMethod::parse,
        JoinMethod::CHOICES,
        JoinMethod::Config,
    );
    let config_format = p.keyword(
        "cluster.config_format",
        c.config_format.as_deref(),
        ConfigFormat::parse,
        ConfigFormat::CHOICES,
        ConfigFormat::Conf,
    );
    let plugins = match &c.plugins {
        None => DEFAULT_PLUGINS.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            let mut seen = BTreeSet::new();
            for (i, name) in list.iter().enumerate() {
                let key = format!("cluster.plugins[{i}]");
                if !is_plugin_name(name) {
                    p.add(
                        key,
                        format!("\"{name}\" is not a plugin name; plugin names are lower-case letters, digits and '_', like \"rabbitmq_mqtt\""),
                    );
                } else if !seen.insert(name.as_str()) {
                    p.add(key, format!("\"{name}\" is listed twice; list it once"));
                }
            }
            list.clone()
        }
    };
    let prometheus = c.prometheus.unwrap_or(true);
    let mut plugins = plugins;
    let listed = plugins.iter().position(|x| x == PROMETHEUS_PLUGIN);
    match (prometheus, listed) {
        (true, None) => plugins.push(PROMETHEUS_PLUGIN.to_string()),
        (false, Some(i)) => p.add(
            format!("cluster.plugins[{i}]"),
            format!("\"{PROMETHEUS_PLUGIN}\" is listed while cluster.prometheus = false turns metrics off; remove one of the two"),
        ),
        _ => {}
    }
    let vhost = c.vhost.clone().unwrap_or_else(|| "/".into());
    if vhost.is_empty() || vhost.len() > 255 || vhost.chars().any(char::is_control) {
        p.add(
            "cluster.vhost",
            "a virtual host name must be 1 to 255 bytes without control characters",
        );
    }
    ClusterParts {
        model: Cluster {
            name: c.name.clone(),
            cookie: cookie.unwrap_or(SecretRef::Env(String::new())),
            replication,
            partition_handling,
            net_ticktime: c.net_ticktime,
            plugins,
            prometheus,
            join,
            config_format,
            hosts_file: c.hosts_file.unwrap_or(false),
            vhost,
        },
        ports: c.ports.clone(),
    }
}

fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn is_plugin_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
