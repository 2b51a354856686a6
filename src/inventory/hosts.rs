//! `[[hosts]]` checked: each host's name, address, OS, transport (and WinRM's options),
//! role, service manager and ports; then the hosts together: their names and
//! addresses, one central host, a disc node, enough nodes for quorum queues.

use super::model::*;
use super::problem::{quoted, resolve_path, Problems};
use super::raw::*;
use super::secret_check::secret_ref;
use super::tls::tls;
use super::versions::versions;
use std::collections::BTreeMap;
use std::path::Path;

pub(super) fn host(
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

pub(super) fn hosts_together(p: &mut Problems, raw: &[RawHost], hosts: &[Host], cluster: &Cluster) {
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

fn is_hostname_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
