//! Raw inventory → checked model. Every problem is collected (not just the first), each
//! naming the key it concerns and how to fix it, so `warren check` can list them all.

use super::balancer::load_balancer;
use super::model::*;
use super::raw::*;
use super::secret::SecretRef;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with the inventory: the key it concerns and a sentence that says
/// what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Parses a keyword such as `replication = "quorum"`; `None` when absent.
    fn keyword<T>(
        &mut self,
        key: &str,
        value: Option<&str>,
        parse: fn(&str) -> Option<T>,
        choices: &[&str],
        default: T,
    ) -> T {
        match value {
            None => default,
            Some(v) => match parse(v) {
                Some(t) => t,
                None => {
                    self.add(
                        key,
                        format!("\"{v}\" is not one of {}; use one of them", quoted(choices)),
                    );
                    default
                }
            },
        }
    }
}

fn quoted(choices: &[&str]) -> String {
    choices
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

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
        JoinMethod::Cli,
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

fn host(
    p: &mut Problems,
    i: usize,
    h: &RawHost,
    cluster_ports: &RawPorts,
    raw_cluster: &RawCluster,
    dir: &Path,
) -> Host {
    let key = |k: &str| format!("hosts[{i}].{k}");
    if !is_hostname_label(&h.name) {
        p.add(
            key("name"),
            format!(
                "\"{}\" cannot be a RabbitMQ node's host name (rabbit@{}); use the host's short name: letters, digits and '-', not starting or ending with '-'",
                h.name, h.name
            ),
        );
    }
    if h.address.is_empty() || h.address.chars().any(|c| c.is_whitespace() || c == '/') {
        p.add(
            key("address"),
            format!(
                "\"{}\" is not an address; give an IP address or a DNS name",
                h.address
            ),
        );
    }
    let os = p.keyword(
        key("os").as_str(),
        Some(&h.os),
        Os::parse,
        Os::CHOICES,
        Os::Linux,
    );
    let default_transport = match os {
        Os::Linux => TransportKind::Ssh,
        Os::Windows => TransportKind::Winrm,
    };
    let transport = p.keyword(
        &key("transport"),
        h.transport.as_deref(),
        TransportKind::parse,
        TransportKind::CHOICES,
        default_transport,
    );
    if os == Os::Linux && transport == TransportKind::Winrm {
        p.add(
            key("transport"),
            "WinRM only reaches Windows hosts; use \"ssh\" for a Linux host",
        );
    }
    let winrm = winrm_options(p, &key("winrm"), transport, h.winrm.as_ref(), dir);
    let port = h.port.unwrap_or(match transport {
        TransportKind::Ssh => 22,
        TransportKind::Winrm if winrm.https => 5986,
        TransportKind::Winrm => 5985,
    });
    let user = h.user.clone().unwrap_or_else(|| match os {
        Os::Linux => "root".into(),
        Os::Windows => "Administrator".into(),
    });
    if user.is_empty() {
        p.add(
            key("user"),
            "the user is empty; name the account warren logs in as",
        );
    }
    let role = p.keyword(
        &key("role"),
        Some(&h.role),
        Role::parse,
        Role::CHOICES,
        Role::Site,
    );
    let node_type = p.keyword(
        &key("node_type"),
        h.node_type.as_deref(),
        NodeType::parse,
        NodeType::CHOICES,
        NodeType::Disc,
    );
    let service = p.keyword(
        &key("service"),
        h.service.as_deref(),
        ServiceManager::parse,
        ServiceManager::CHOICES,
        ServiceManager::Auto,
    );
    match (os, service) {
        (Os::Linux, ServiceManager::Windows) => p.add(
            key("service"),
            "\"windows\" is the Windows service manager; use \"auto\", \"systemd\" or \"direct\" on Linux",
        ),
        (Os::Windows, ServiceManager::Systemd) => p.add(
            key("service"),
            "Windows has no systemd; use \"auto\" or \"windows\"",
        ),
        _ => {}
    }
    let key_path = h.key.as_deref().map(|k| resolve_path(dir, k));
    if key_path.is_some() && transport == TransportKind::Winrm {
        p.add(
            key("key"),
            "WinRM does not use an SSH key; remove `key` and give `password`",
        );
    }
    let password = h
        .password
        .as_ref()
        .and_then(|s| secret_ref(p, &key("password"), s, dir));
    if transport == TransportKind::Winrm && h.password.is_none() {
        p.add(
            key("password"),
            "a WinRM host needs a password reference; add password = { env = \"VAR\" } or { file = \"path\" }",
        );
    }
    let known_hosts = h.known_hosts.as_deref().map(|k| resolve_path(dir, k));
    let ports = ports(p, &key("ports"), cluster_ports, &h.ports);
    let tls = h.tls.as_ref().and_then(|t| tls(p, &key("tls"), t, dir));
    let versions = versions(p, i, os, &raw_cluster.versions(), &h.versions());
    let allowed = match os {
        Os::Linux => Paths::LINUX_KEYS,
        Os::Windows => Paths::WINDOWS_KEYS,
    };
    for (k, v) in &h.paths {
        if !allowed.contains(&k.as_str()) {
            p.add(
                key(&format!("paths.{k}")),
                format!(
                    "unknown path for a {os} host; use one of {}",
                    quoted(allowed)
                ),
            );
        } else if v.is_empty() {
            p.add(
                key(&format!("paths.{k}")),
                "the path is empty; give a folder or remove the key",
            );
        }
    }
    Host {
        name: h.name.clone(),
        address: h.address.clone(),
        os,
        transport,
        port,
        paths: Paths::for_os(os, &user, &h.paths),
        user,
        key: key_path,
        password,
        known_hosts,
        accept_new_host_key: false,
        role,
        node_type,
        service,
        ports,
        winrm,
        tls,
        versions,
    }
}

/// A host's pinned versions: `[cluster]`'s keys, each overridden by the host's own;
/// each problem named by the key it comes from (reported once, however many hosts
/// share a `[cluster]` key).
fn versions(
    p: &mut Problems,
    i: usize,
    os: Os,
    cluster: &RawVersions,
    host: &RawVersions,
) -> Versions {
    use crate::versions::{debian_upstream, erlang_refusal, Version};
    let pick = |k: &str, c: &Option<String>, h: &Option<String>| -> Option<(String, String)> {
        match (h, c) {
            (Some(v), _) => Some((format!("hosts[{i}].{k}"), v.clone())),
            (None, Some(v)) => Some((format!("cluster.{k}"), v.clone())),
            _ => None,
        }
    };
    let rv = pick(
        "rabbitmq_version",
        &cluster.rabbitmq_version,
        &host.rabbitmq_version,
    );
    let ev = pick(
        "erlang_version",
        &cluster.erlang_version,
        &host.erlang_version,
    );
    let rp = pick(
        "rabbitmq_package",
        &cluster.rabbitmq_package,
        &host.rabbitmq_package,
    );
    let ep = pick(
        "erlang_package",
        &cluster.erlang_package,
        &host.erlang_package,
    );
    let ri = pick(
        "rabbitmq_installer",
        &cluster.rabbitmq_installer,
        &host.rabbitmq_installer,
    );
    let ei = pick(
        "erlang_installer",
        &cluster.erlang_installer,
        &host.erlang_installer,
    );
    // Packages are apt's (Linux), installers Windows': a host's own key of the other
    // kind is a mistake; `[cluster]` holds both for mixed clusters.
    for (k, own, want) in [
        ("rabbitmq_package", &host.rabbitmq_package, Os::Linux),
        ("erlang_package", &host.erlang_package, Os::Linux),
        ("rabbitmq_installer", &host.rabbitmq_installer, Os::Windows),
        ("erlang_installer", &host.erlang_installer, Os::Windows),
    ] {
        if own.is_some() && os != want {
            let instead = if want == Os::Linux {
                "rabbitmq_installer / erlang_installer (the installers, on Windows)"
            } else {
                "rabbitmq_package / erlang_package (apt's versions, on Linux)"
            };
            p.add(
                format!("hosts[{i}].{k}"),
                format!("is for {want} hosts, and this one runs {os}; use {instead}"),
            );
        }
    }
    for (k, v) in [&rp, &ep, &ri, &ei].into_iter().flatten() {
        if v.trim().is_empty() || v.chars().any(|c| c.is_control() || c == '\'' || c == '"') {
            p.add(k.clone(), format!("\"{v}\" is empty or holds quotes or control characters; give the version or path as it is"));
        }
    }
    let parsed = |kv: &Option<(String, String)>,
                  what: &str,
                  example: &str,
                  parts: std::ops::RangeInclusive<usize>,
                  p: &mut Problems| {
        let (k, v) = kv.as_ref()?;
        match Version::parse(v).filter(|x| parts.contains(&x.0.len())) {
            Some(x) => Some(x),
            None => {
                p.add(k.clone(), format!("\"{v}\" is not a {what} version; write it as RabbitMQ reports it, like \"{example}\""));
                None
            }
        }
    };
    let mut rabbitmq = parsed(&rv, "RabbitMQ", "3.10.8", 3..=3, p);
    let mut erlang = parsed(&ev, "Erlang/OTP", "25.2.3", 2..=4, p);
    // A package names its upstream version: it must be the pinned one.
    for (pkg, version, what, slot) in [
        (&rp, &rv, "RabbitMQ", &mut rabbitmq),
        (&ep, &ev, "Erlang", &mut erlang),
    ] {
        let Some((pk, pv)) = pkg else { continue };
        let Some(up) = Version::parse(debian_upstream(pv)) else {
            p.add(pk.clone(), format!("\"{pv}\" is not a Debian package version; give apt's version as `apt-cache policy` lists it, like \"3.10.8-1.1+deb12u1\""));
            continue;
        };
        match (version, slot.as_ref()) {
            (Some((vk, _)), Some(pinned)) => {
                let agrees = up.0.len() >= pinned.0.len() && up.0[..pinned.0.len()] == pinned.0[..];
                if !agrees {
                    p.add(pk.clone(), format!("\"{pv}\" is {what} {up}, but {vk} says {pinned}; make them name the same release (or leave {vk} out)"));
                }
            }
            (None, _) => *slot = Some(up),
            _ => {}
        }
    }
    if let (Some(r), Some(e)) = (&rabbitmq, &erlang) {
        if let Some(why) = erlang_refusal(r, e) {
            let k = ev
                .as_ref()
                .or(ep.as_ref())
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            p.add(k, format!("{why}; pin an Erlang version in that range"));
        }
    } else if let Some(r) = &rabbitmq {
        if crate::versions::erlang_range(r).is_none() {
            let k = rv
                .as_ref()
                .or(rp.as_ref())
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            p.add(k, format!("warren knows the upgrade rules and Erlang requirements of RabbitMQ 3.9 to 4.0 only (RabbitMQ's compatibility matrix), not {r}; pin a release of those series"));
        }
    }
    Versions {
        rabbitmq,
        erlang,
        rabbitmq_package: rp.map(|(_, v)| v),
        erlang_package: ep.map(|(_, v)| v),
        rabbitmq_installer: ri.map(|(_, v)| v),
        erlang_installer: ei.map(|(_, v)| v),
    }
}

/// TLS distribution is all or nothing among the cluster's members: a node that speaks
/// it cannot talk to one that does not. A link to a host whose plain listeners are
/// closed needs a certificate on the other end too (to check that host's).
fn tls_together(p: &mut Problems, inv: &Inventory) {
    let members: Vec<usize> = (0..inv.hosts.len()).filter(|&i| inv.is_member(i)).collect();
    let with: Vec<&str> = members
        .iter()
        .filter(|&&i| inv.hosts[i].tls.is_some())
        .map(|&i| inv.hosts[i].name.as_str())
        .collect();
    if !with.is_empty() {
        for &i in &members {
            if inv.hosts[i].tls.is_none() {
                p.add(
                    format!("hosts[{i}].tls"),
                    format!(
                        "{} has tls, so the cluster's nodes talk to each other over TLS, and {} would not be able to: give it tls too, or remove tls from the others",
                        with.join(", "),
                        inv.hosts[i].name
                    ),
                );
            }
        }
    }
    // One balancer frontend leads to every member: they must all speak TLS only, or
    // all keep their plain listeners, for a client to speak to whichever it meets.
    if with.len() == members.len()
        && inv.load_balancer.is_some()
        && super::balancer::wire(inv) == super::balancer::Wire::Mixed
    {
        let closed: Vec<&str> = members
            .iter()
            .filter(|&&i| inv.hosts[i].tls_only())
            .map(|&i| inv.hosts[i].name.as_str())
            .collect();
        for &i in &members {
            if inv.hosts[i].tls.as_ref().is_some_and(|t| t.keep_plain) {
                p.add(
                    format!("hosts[{i}].tls.keep_plain"),
                    format!(
                        "the load balancer leads clients to every member, and {} listen with TLS only while {} keeps its plain listeners, so a client could meet either; set keep_plain the same on every member",
                        closed.join(", "),
                        inv.hosts[i].name
                    ),
                );
            }
        }
    }
    let ci = inv.central_index();
    for (si, s) in inv.sites.iter().enumerate() {
        if !s.linked() {
            continue;
        }
        // The end that connects, and the end it connects to.
        let (from, to) = match s.link {
            Link::Shovel => (s.host, ci),
            _ => (ci, s.host),
        };
        let closed = inv.hosts[to].tls_only();
        if closed && inv.hosts[from].tls.is_none() {
            p.add(
                format!("sites[{si}].link"),
                format!(
                    "the {} connects from {} to {} over TLS (its plain AMQP listener is closed), and {} has no tls to check {}'s certificate with: give {} tls, or keep_plain = true on {}",
                    s.link, inv.hosts[from].name, inv.hosts[to].name, inv.hosts[from].name, inv.hosts[to].name, inv.hosts[from].name, inv.hosts[to].name
                ),
            );
        }
    }
}

/// A host's `tls` table: all three files named (the CA, the certificate, its key).
fn tls(p: &mut Problems, key: &str, t: &RawTls, dir: &Path) -> Option<Tls> {
    let mut file = |k: &str, v: &Option<String>, what: &str| match v.as_deref() {
        Some(f) if !f.is_empty() => Some(resolve_path(dir, f)),
        _ => {
            p.add(
                format!("{key}.{k}"),
                format!("TLS needs {what}: add {k} = \"PATH\" (a PEM file, relative to the inventory), or remove tls"),
            );
            None
        }
    };
    let ca = file(
        "ca",
        &t.ca,
        "the CA certificate that signed the cluster's certificates",
    );
    let cert = file("cert", &t.cert, "the host's certificate");
    let k = file("key", &t.key, "the certificate's private key");
    Some(Tls {
        ca: ca?,
        cert: cert?,
        key: k?,
        keep_plain: t.keep_plain.unwrap_or(false),
    })
}

/// A WinRM host's `winrm` table, checked: HTTPS unless it says `scheme = "http"`
/// (then every message is sealed by NTLM), Basic only over HTTPS.
fn winrm_options(
    p: &mut Problems,
    key: &str,
    transport: TransportKind,
    raw: Option<&super::raw::RawWinrm>,
    dir: &Path,
) -> WinrmOptions {
    let mut o = WinrmOptions::default();
    let Some(w) = raw else {
        return o;
    };
    if transport != TransportKind::Winrm {
        p.add(
            key,
            "winrm settings apply only to transport = \"winrm\"; remove them or change the transport",
        );
        return o;
    }
    match w.scheme.as_deref() {
        None | Some("https") => {}
        Some("http") => o.https = false,
        Some(other) => p.add(
            format!("{key}.scheme"),
            format!("\"{other}\" is not a WinRM scheme; use \"https\" (port 5986) or \"http\" (port 5985, messages sealed by NTLM)"),
        ),
    }
    match w.auth.as_deref() {
        None | Some("ntlm") => {}
        Some("basic") if o.https => o.basic = true,
        Some("basic") => p.add(
            format!("{key}.auth"),
            "Basic authentication over HTTP would send the password in clear; use scheme = \"https\" or auth = \"ntlm\"",
        ),
        Some(other) => p.add(
            format!("{key}.auth"),
            format!("\"{other}\" is not a WinRM authentication warren speaks; use \"ntlm\" or \"basic\" (HTTPS only)"),
        ),
    }
    o.ca_file = w.ca_file.as_deref().map(|f| resolve_path(dir, f));
    o.insecure = w.insecure_skip_verify.unwrap_or(false);
    if (o.ca_file.is_some() || o.insecure) && !o.https {
        p.add(
            format!("{key}.ca_file"),
            "certificates are checked over HTTPS only; remove ca_file and insecure_skip_verify, or use scheme = \"https\"",
        );
    }
    if o.ca_file.is_some() && o.insecure {
        p.add(
            format!("{key}.insecure_skip_verify"),
            "insecure_skip_verify = true would ignore ca_file; keep one of them",
        );
    }
    o
}

fn ports(p: &mut Problems, key: &str, cluster: &RawPorts, host: &RawPorts) -> Ports {
    let d = Ports::DEFAULT;
    let ports = Ports {
        amqp: host.amqp.or(cluster.amqp).unwrap_or(d.amqp),
        management: host
            .management
            .or(cluster.management)
            .unwrap_or(d.management),
        mqtt: host.mqtt.or(cluster.mqtt).unwrap_or(d.mqtt),
        dist: host.dist.or(cluster.dist).unwrap_or(d.dist),
        amqps: host.amqps.or(cluster.amqps).unwrap_or(d.amqps),
        management_tls: host
            .management_tls
            .or(cluster.management_tls)
            .unwrap_or(d.management_tls),
        mqtts: host.mqtts.or(cluster.mqtts).unwrap_or(d.mqtts),
        prometheus: host
            .prometheus
            .or(cluster.prometheus)
            .unwrap_or(d.prometheus),
        prometheus_tls: host
            .prometheus_tls
            .or(cluster.prometheus_tls)
            .unwrap_or(d.prometheus_tls),
    };
    let named = [
        ("amqp", ports.amqp),
        ("management", ports.management),
        ("mqtt", ports.mqtt),
        ("dist", ports.dist),
        ("amqps", ports.amqps),
        ("management_tls", ports.management_tls),
        ("mqtts", ports.mqtts),
        ("prometheus", ports.prometheus),
        ("prometheus_tls", ports.prometheus_tls),
    ];
    for (i, (a, pa)) in named.iter().enumerate() {
        if *pa == 0 || *pa == 4369 {
            p.add(
                format!("{key}.{a}"),
                format!("port {pa} is not usable (0 is no port, 4369 is epmd's); choose another"),
            );
        }
        for (b, pb) in &named[i + 1..] {
            if pa == pb {
                p.add(
                    format!("{key}.{b}"),
                    format!("port {pb} is also the {a} port; give each listener its own port"),
                );
            }
        }
    }
    ports
}

fn hosts_together(p: &mut Problems, raw: &[RawHost], hosts: &[Host], cluster: &Cluster) {
    if hosts.is_empty() {
        p.add(
            "hosts",
            "the inventory lists no hosts; add a [[hosts]] table per server",
        );
        return;
    }
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut addresses: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, h) in hosts.iter().enumerate() {
        // Host names compare without case: Windows and DNS ignore it, and two nodes
        // whose names differ only in case would break Erlang distribution.
        if let Some(j) = names.insert(h.name.to_ascii_lowercase(), i) {
            p.add(
                format!("hosts[{i}].name"),
                format!(
                    "\"{}\" is also the name of hosts[{j}]; give each host its own name",
                    raw[i].name
                ),
            );
        }
        if let Some(j) = addresses.insert(h.address.as_str(), i) {
            p.add(
                format!("hosts[{i}].address"),
                format!(
                    "{} is also the address of hosts[{j}] ({}); give each host its own address",
                    h.address, hosts[j].name
                ),
            );
        }
    }
    let central: Vec<usize> = (0..hosts.len())
        .filter(|&i| hosts[i].role == Role::Central)
        .collect();
    match central.as_slice() {
        [] => p.add(
            "hosts",
            "no host has role = \"central\"; mark the management host as central (it is the seed every node joins)",
        ),
        [c] => {
            if hosts[*c].node_type == NodeType::Ram {
                p.add(
                    format!("hosts[{c}].node_type"),
                    "the central host is the seed every node joins and must keep the cluster's state on disk; make it \"disc\"",
                );
            }
        }
        [_, rest @ ..] => {
            for c in rest {
                p.add(
                    format!("hosts[{c}].role"),
                    format!("\"{}\" is a second central host; keep one central host and make the others \"site\"", hosts[*c].name),
                );
            }
        }
    }
    if !hosts.iter().any(|h| h.node_type == NodeType::Disc) {
        p.add(
            "hosts",
            "no host is a disc node; RabbitMQ needs at least one, so set node_type = \"disc\" on one (the default)",
        );
    }
    if cluster.replication == Replication::Quorum && hosts.len() < 3 {
        p.add(
            "cluster.replication",
            format!(
                "quorum queues need at least three nodes to survive one node's loss, and the inventory has {}; add hosts or use \"mirrored\"",
                hosts.len()
            ),
        );
    }
}

fn sites(
    p: &mut Problems,
    raw: &[RawSite],
    hosts: &[Host],
    replication: Replication,
    dir: &Path,
) -> Vec<Site> {
    let index: BTreeMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    // The hosts of linked sites: standalone brokers, never members, never copies.
    let linked: Vec<usize> = raw
        .iter()
        .filter(|s| s.link.as_deref().is_some_and(|l| l != "cluster"))
        .filter_map(|s| index.get(s.host.as_str()).copied())
        .collect();
    let members = hosts.len() - linked.len();
    if replication == Replication::Quorum && hosts.len() >= 3 && members < 3 {
        p.add(
            "cluster.replication",
            format!(
                "quorum queues need at least three cluster members to survive one node's loss, and {members} of the hosts are members (the others are linked sites); add hosts or use \"mirrored\""
            ),
        );
    }
    let central = hosts.iter().position(|h| h.role == Role::Central);
    let mut used_hosts = BTreeMap::new();
    let mut exchanges = BTreeMap::new();
    let mut queues = BTreeMap::new();
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let key = |k: &str| format!("sites[{i}].{k}");
        let Some(&h) = index.get(s.host.as_str()) else {
            p.add(
                key("host"),
                format!(
                    "\"{}\" is not a host in this inventory; name one of its [[hosts]]",
                    s.host
                ),
            );
            continue;
        };
        if hosts[h].role != Role::Site {
            p.add(
                key("host"),
                format!(
                    "\"{}\" is the central host; a site belongs on a host with role = \"site\"",
                    s.host
                ),
            );
        }
        if let Some(j) = used_hosts.insert(h, i) {
            p.add(
                key("host"),
                format!(
                    "\"{}\" already has a site (sites[{j}]); give each site host one site",
                    s.host
                ),
            );
        }
        for (what, name, seen) in [
            ("exchange", &s.exchange, &mut exchanges),
            ("queue", &s.queue, &mut queues),
        ] {
            if let Some(why) = refused_resource_name(name) {
                p.add(
                    key(what),
                    format!("RabbitMQ would refuse the {what} name \"{name}\": {why}"),
                );
            }
            if let Some(j) = seen.insert(name.clone(), i) {
                p.add(
                    key(what),
                    format!("\"{name}\" is also the {what} of sites[{j}]; give each site its own"),
                );
            }
        }
        let exchange_type = s.exchange_type.clone().unwrap_or_else(|| "topic".into());
        if !["direct", "topic", "fanout", "headers"].contains(&exchange_type.as_str()) {
            p.add(
                key("exchange_type"),
                format!("\"{exchange_type}\" is not an exchange type; use \"direct\", \"topic\", \"fanout\" or \"headers\""),
            );
        }
        let link = p.keyword(
            &key("link"),
            s.link.as_deref(),
            Link::parse,
            Link::CHOICES,
            Link::Cluster,
        );
        let link_password = match (&s.link_password, link) {
            (Some(r), Link::Shovel | Link::Federation) => {
                secret_ref(p, &key("link_password"), r, dir)
            }
            (None, Link::Shovel | Link::Federation) => {
                p.add(
                    key("link_password"),
                    format!(
                        "a {link} site needs the password of its link user ({}): add link_password = {{ file = \"PATH\" }} (warren creates the file) or {{ env = \"VARIABLE\" }}",
                        link_user(&s.host)
                    ),
                );
                None
            }
            (Some(_), Link::Cluster) => {
                p.add(
                    key("link_password"),
                    "a cluster member has no link user; remove link_password, or set link = \"shovel\" or \"federation\"",
                );
                None
            }
            (None, Link::Cluster) => None,
        };
        let mut mirrors = Vec::new();
        if link != Link::Cluster {
            if s.mirrors.is_some() {
                p.add(
                    key("mirrors"),
                    format!("a {link} site is a standalone broker: its queue has no copies on other nodes (the central host's queue of the same name receives its messages); remove mirrors, or set link = \"cluster\""),
                );
            }
        } else {
            match &s.mirrors {
                None => mirrors.extend(central.filter(|&c| c != h)),
                Some(list) => {
                    for (m, name) in list.iter().enumerate() {
                        let mkey = key(&format!("mirrors[{m}]"));
                        match index.get(name.as_str()) {
                        None => p.add(
                            mkey,
                            format!("\"{name}\" is not a host in this inventory; name one of its [[hosts]]"),
                        ),
                        Some(&x) if x == h => p.add(
                            mkey,
                            format!("\"{name}\" is the site's own host; a mirror must be on another host"),
                        ),
                        Some(&x) if linked.contains(&x) => p.add(
                            mkey,
                            format!("\"{name}\" is a linked site's standalone broker, not a cluster member; name a member"),
                        ),
                        Some(&x) if mirrors.contains(&x) => {
                            p.add(mkey, format!("\"{name}\" is listed twice; list it once"))
                        }
                        Some(&x) => mirrors.push(x),
                    }
                    }
                }
            }
            if mirrors.is_empty() && s.mirrors.is_some() {
                p.add(key("mirrors"), "the list is empty, so the queue would have no copy; name at least one host or remove the key to mirror on the central host");
            }
            if replication == Replication::Quorum {
                fill_quorum_members(h, &mut mirrors, hosts, &linked);
            }
        }
        out.push(Site {
            host: h,
            exchange: s.exchange.clone(),
            exchange_type,
            queue: s.queue.clone(),
            routing_key: s.routing_key.clone().unwrap_or_else(|| "#".into()),
            mirrors,
            link,
            link_password,
        });
    }
    out
}

/// A quorum queue needs three members so that one node's loss keeps a majority: the
/// site's own node, its listed mirrors (the central host by default), and then the
/// next site hosts after it in inventory order, wrapping around. Deterministic, and it
/// spreads the third members over the sites.
fn fill_quorum_members(site: usize, members: &mut Vec<usize>, hosts: &[Host], linked: &[usize]) {
    let n = hosts.len();
    for step in 1..n {
        if members.len() >= 2 {
            break;
        }
        let candidate = (site + step) % n;
        if !members.contains(&candidate)
            && hosts[candidate].role == Role::Site
            && !linked.contains(&candidate)
        {
            members.push(candidate);
        }
    }
    for step in 1..n {
        if members.len() >= 2 {
            break;
        }
        let candidate = (site + step) % n;
        if !members.contains(&candidate) {
            members.push(candidate);
        }
    }
}

fn users(p: &mut Problems, raw: &[RawUser], vhost: &str, dir: &Path, hosts: &[Host]) -> Vec<User> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for (i, u) in raw.iter().enumerate() {
        let key = |k: &str| format!("users[{i}].{k}");
        if u.name.is_empty() || u.name.len() > 255 || u.name.chars().any(char::is_control) {
            p.add(
                key("name"),
                "a user name must be 1 to 255 bytes without control characters",
            );
        }
        if u.name == "guest" {
            p.add(
                key("name"),
                "\"guest\" is RabbitMQ's built-in user that only logs in from localhost; declare your own user",
            );
        }
        if let Some(j) = seen.insert(u.name.clone(), i) {
            p.add(
                key("name"),
                format!("\"{}\" is also users[{j}]; declare each user once", u.name),
            );
        }
        for (t, tag) in u.tags.iter().enumerate() {
            if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                p.add(
                    key(&format!("tags[{t}]")),
                    format!("\"{tag}\" is not a user tag; tags are lower-case words like \"administrator\" or \"monitoring\""),
                );
            }
        }
        let password = secret_ref(p, &key("password"), &u.password, dir);
        let mut permissions = Vec::new();
        for (j, perm) in u.permissions.iter().enumerate() {
            let pv = perm.vhost.clone().unwrap_or_else(|| vhost.to_string());
            if pv != vhost {
                p.add(
                    key(&format!("permissions[{j}].vhost")),
                    format!("\"{pv}\" is not the cluster's virtual host \"{vhost}\"; warren manages one virtual host, set by cluster.vhost"),
                );
            }
            permissions.push(Permission {
                vhost: pv,
                configure: perm.configure.clone(),
                write: perm.write.clone(),
                read: perm.read.clone(),
            });
        }
        let site = u.site.as_ref().and_then(|name| {
            let found = hosts
                .iter()
                .position(|h| &h.name == name && h.role == Role::Site);
            if found.is_none() {
                let sites: Vec<&str> = hosts
                    .iter()
                    .filter(|h| h.role == Role::Site)
                    .map(|h| h.name.as_str())
                    .collect();
                p.add(
                    key("site"),
                    format!(
                        "\"{name}\" is not a site host; name one of {}, or leave site out for a user that is not a site's",
                        quoted(&sites)
                    ),
                );
            }
            found
        });
        out.push(User {
            name: u.name.clone(),
            password: password.unwrap_or(SecretRef::Env(String::new())),
            tags: u.tags.clone(),
            permissions,
            site,
        });
    }
    out
}

/// A site's user reaches nothing of the other sites: no permission pattern of it may
/// match another site's exchange or queue.
fn site_users_isolated(p: &mut Problems, inv: &Inventory) {
    for (i, u) in inv.users.iter().enumerate() {
        let Some(own) = u.site else { continue };
        for (j, perm) in u.permissions.iter().enumerate() {
            let key = format!("users[{i}].permissions[{j}]");
            match inv.reach_beyond(own, &perm.configure, &perm.write, &perm.read) {
                Ok(reach) if reach.is_empty() => {}
                Ok(reach) => p.add(
                    key,
                    format!(
                        "{} is the user of site {} but may {}; narrow the patterns to that site's own names, e.g. write = \"^{}$\"",
                        u.name,
                        inv.hosts[own].name,
                        reach.join(", "),
                        inv.site_of(&inv.hosts[own])
                            .map(|s| crate::util::regex_escape(&s.exchange))
                            .unwrap_or_default()
                    ),
                ),
                Err(e) => p.add(key, format!("{e}; a site's user needs patterns warren can check")),
            }
        }
    }
}

fn secret_ref(p: &mut Problems, key: &str, r: &RawSecretRef, dir: &Path) -> Option<SecretRef> {
    match (&r.file, &r.env) {
        (Some(f), None) if !f.is_empty() => Some(SecretRef::File(resolve_path(dir, f))),
        (None, Some(v)) if !v.is_empty() => Some(SecretRef::Env(v.clone())),
        _ => {
            p.add(
                key,
                "give exactly one of file = \"path\" or env = \"VARIABLE\" (the secret itself never goes in the inventory)",
            );
            None
        }
    }
}

/// Relative paths are relative to the inventory's folder; `~/` is the user's home.
/// A PEM file's text, if it holds a block whose BEGIN line ends in `marker`.
pub fn read_pem(path: &Path, marker: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e}; fix the path or the file's permissions",
            path.display()
        )
    })?;
    if !text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.ends_with(marker))
    {
        return Err(format!(
            "{} is not a PEM file with a {} block; give the PEM file (openssl x509 -in FILE -outform PEM converts one)",
            path.display(),
            marker.trim_end_matches('-')
        ));
    }
    Ok(text)
}

pub fn resolve_path(dir: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

/// What a command needs to read besides the inventory itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// What rendering reads: the cookie and the users' passwords.
    Render,
    /// Also the credentials warren logs in to hosts with: SSH keys, WinRM passwords.
    Hosts,
}

/// Reads every secret the inventory names that `needs` requires, so that a missing
/// variable or an unreadable file is reported before anything runs. A cookie file that
/// does not exist yet is fine: warren creates it. The values are dropped at once.
pub fn check_secrets(inv: &Inventory, needs: Needs) -> Vec<Problem> {
    let mut p = Problems::default();
    let cookie = &inv.cluster.cookie;
    let cookie_missing = matches!(cookie, SecretRef::File(f) if !f.exists());
    if !cookie_missing {
        match cookie.read() {
            Err(e) => p.add(
                "cluster.cookie",
                format!("{e}; fix the reference or the file's permissions"),
            ),
            Ok(v) => {
                if let Some(why) = refused_cookie(v.expose()) {
                    p.add("cluster.cookie", format!("the cookie in {cookie} {why}"));
                }
            }
        }
    }
    for (i, h) in inv.hosts.iter().enumerate() {
        if needs == Needs::Render {
            break;
        }
        if let Some(r) = &h.password {
            if let Err(e) = r.read() {
                p.add(
                    format!("hosts[{i}].password"),
                    format!("{e}; set it or fix the reference"),
                );
            }
        }
    }
    for (i, h) in inv.hosts.iter().enumerate() {
        if let Some(t) = &h.tls {
            for (k, path, marker) in [
                ("ca", &t.ca, "CERTIFICATE-----"),
                ("cert", &t.cert, "CERTIFICATE-----"),
                ("key", &t.key, "PRIVATE KEY-----"),
            ] {
                if let Err(why) = read_pem(path, marker) {
                    p.add(format!("hosts[{i}].tls.{k}"), why);
                }
            }
        }
    }
    for (i, s) in inv.sites.iter().enumerate() {
        // A link password file that does not exist yet is fine: warren creates it.
        if let Some(r) = &s.link_password {
            if !matches!(r, SecretRef::File(f) if !f.exists()) {
                if let Err(e) = r.read() {
                    p.add(
                        format!("sites[{i}].link_password"),
                        format!("{e}; set it or fix the reference"),
                    );
                }
            }
        }
    }
    for (i, u) in inv.users.iter().enumerate() {
        match u.password.read() {
            Err(e) => p.add(
                format!("users[{i}].password"),
                format!("{e}; set it or fix the reference"),
            ),
            Ok(v) if v.expose().is_empty() => p.add(
                format!("users[{i}].password"),
                format!(
                    "the password from {} is empty; RabbitMQ would refuse every login",
                    u.password
                ),
            ),
            Ok(_) => {}
        }
    }
    p.0
}

/// SSH key files that cannot be read: not a problem of the inventory (it validates,
/// renders and plans offline without them), but warren cannot connect to these hosts
/// until they can. `warren check` reports them as warnings; connecting says the same.
pub fn key_warnings(inv: &Inventory) -> Vec<Problem> {
    let mut p = Problems::default();
    for (i, h) in inv.hosts.iter().enumerate() {
        if let Some(k) = &h.key {
            if let Err(e) = std::fs::File::open(k) {
                p.add(
                    format!("hosts[{i}].key"),
                    format!(
                        "cannot read the SSH key {}: {e}; plan, apply and verify need it to log in to {}: create it (ssh-keygen -t ed25519 -f {}) or fix the path",
                        k.display(),
                        h.name,
                        k.display()
                    ),
                );
            }
        }
    }
    p.0
}

/// Why an Erlang cookie would not work, if it would not.
pub fn refused_cookie(c: &str) -> Option<&'static str> {
    if c.is_empty() {
        Some("is empty; put a random string of letters and digits in it, or delete the file and warren makes one")
    } else if c.len() > 255 {
        Some("is longer than 255 characters, Erlang's limit; use a shorter random string")
    } else if !c
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        Some("has characters other than letters, digits, '_' and '-', which Windows service installs and the CLI quote differently; use only those")
    } else {
        None
    }
}

/// Why RabbitMQ would refuse an exchange or queue name, if it would.
pub fn refused_resource_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty (RabbitMQ would generate a name); give it a name")
    } else if name.len() > 255 {
        Some("it is longer than 255 bytes; shorten it")
    } else if name.starts_with("amq.") {
        Some("names starting with \"amq.\" are reserved for RabbitMQ; choose another prefix")
    } else if name.chars().any(char::is_control) {
        Some("it contains control characters; remove them")
    } else {
        None
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

fn is_hostname_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
