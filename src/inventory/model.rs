//! The checked inventory: every value validated, every default filled in, every
//! reference between hosts and sites resolved. Code past `validate` can rely on it.

use super::secret::SecretRef;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Inventory {
    /// The inventory file, as given on the command line.
    pub path: PathBuf,
    /// Its folder: relative secret paths and the `templates/` override are found here.
    pub dir: PathBuf,
    pub cluster: Cluster,
    pub hosts: Vec<Host>,
    pub sites: Vec<Site>,
    pub users: Vec<User>,
    /// HAProxy in front of the cluster's nodes (`[load_balancer]`).
    pub load_balancer: Option<LoadBalancer>,
}

/// HAProxy on a Linux host of the inventory, spreading client connections over the
/// cluster's nodes.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    /// Index into `Inventory::hosts`.
    pub host: usize,
    pub ports: BalancerPorts,
}

/// Where HAProxy listens: one frontend per client protocol, and its statistics page
/// on the host's loopback only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancerPorts {
    pub amqp: u16,
    pub mqtt: u16,
    pub management: u16,
    pub stats: u16,
}

impl BalancerPorts {
    /// RabbitMQ's own ports plus one: the balancer usually shares a host with a node,
    /// which holds 5672, 1883 and 15672.
    pub const DEFAULT: BalancerPorts = BalancerPorts {
        amqp: 5673,
        mqtt: 1884,
        management: 15673,
        stats: 8404,
    };
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub cookie: SecretRef,
    pub replication: Replication,
    pub partition_handling: PartitionHandling,
    /// Erlang's `net_ticktime` in seconds: how long a silent peer counts as up. `None`
    /// leaves Erlang's default (60 s).
    pub net_ticktime: Option<u32>,
    /// Every plugin every node runs; `rabbitmq_prometheus` among them unless
    /// `prometheus = false`.
    pub plugins: Vec<String>,
    /// Whether the nodes serve Prometheus metrics (the `rabbitmq_prometheus` plugin,
    /// its firewall rule, the rendered scrape configuration).
    pub prometheus: bool,
    pub join: JoinMethod,
    pub config_format: ConfigFormat,
    /// Whether warren writes every cluster host into each host's hosts file.
    pub hosts_file: bool,
    pub vhost: String,
}

macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }
        impl $name {
            pub const CHOICES: &'static [&'static str] = &[$($text),+];
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum!(
    /// How site queues are copied to other nodes.
    Replication { Mirrored = "mirrored", Quorum = "quorum" }
);
keyword_enum!(PartitionHandling {
    Ignore = "ignore",
    PauseMinority = "pause_minority",
    Autoheal = "autoheal",
});
keyword_enum!(
    /// How a node becomes a member: `rabbitmqctl join_cluster`, or peer discovery
    /// from the node list in the config file.
    JoinMethod { Cli = "cli", Config = "config" }
);
keyword_enum!(ConfigFormat {
    Conf = "rabbitmq.conf",
    ErlangTerms = "rabbitmq.config",
});
keyword_enum!(Os {
    Linux = "linux",
    Windows = "windows"
});
keyword_enum!(TransportKind {
    Ssh = "ssh",
    Winrm = "winrm"
});
keyword_enum!(
    /// How a site's broker reaches the central host: as a member of the cluster, or
    /// as a standalone broker whose queue a shovel (or whose exchange federation)
    /// carries to the central host.
    Link { Cluster = "cluster", Shovel = "shovel", Federation = "federation" }
);
keyword_enum!(Role {
    Site = "site",
    Central = "central"
});
keyword_enum!(NodeType {
    Disc = "disc",
    Ram = "ram"
});
keyword_enum!(
    /// Who starts and stops RabbitMQ. `auto` is decided from the host's facts; where
    /// no host is contacted (render) it means systemd on Linux, the Windows service on
    /// Windows.
    ServiceManager {
        Auto = "auto",
        Systemd = "systemd",
        Windows = "windows",
        Direct = "direct",
    }
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ports {
    pub amqp: u16,
    pub management: u16,
    pub mqtt: u16,
    pub dist: u16,
    /// The TLS listeners, for a host with `tls`.
    pub amqps: u16,
    pub management_tls: u16,
    pub mqtts: u16,
    /// The metrics endpoint of `rabbitmq_prometheus`: plain, and with TLS.
    pub prometheus: u16,
    pub prometheus_tls: u16,
}

impl Ports {
    pub const DEFAULT: Ports = Ports {
        amqp: 5672,
        management: 15672,
        mqtt: 1883,
        dist: 25672,
        amqps: 5671,
        management_tls: 15671,
        mqtts: 8883,
        prometheus: 15692,
        prometheus_tls: 15691,
    };
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub os: Os,
    pub transport: TransportKind,
    pub port: u16,
    pub user: String,
    /// SSH private key; `None` means the SSH agent.
    pub key: Option<PathBuf>,
    /// WinRM password (or an SSH password where no key is used).
    pub password: Option<SecretRef>,
    /// The known_hosts file the host's SSH key is checked against.
    pub known_hosts: Option<PathBuf>,
    /// Record the host's key when known_hosts does not have it yet (set by
    /// `apply --accept-new-host-keys`, never by the inventory).
    pub accept_new_host_key: bool,
    pub role: Role,
    pub node_type: NodeType,
    pub service: ServiceManager,
    pub ports: Ports,
    pub paths: Paths,
    /// How WinRM is spoken (only for `transport = "winrm"`).
    pub winrm: WinrmOptions,
    /// The host's certificate: its listeners speak TLS, and so do its node's
    /// distribution and CLI tools.
    pub tls: Option<Tls>,
    /// The versions the inventory pins for this host, and where an upgrade
    /// installs them from.
    pub versions: Versions,
}

/// The RabbitMQ and Erlang versions pinned for a host (`[cluster]`'s keys, each
/// overridden by the host's own), and what an upgrade installs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// RabbitMQ's version as the node reports it: `rabbitmq_version`, else the
    /// upstream part of `rabbitmq_package`. `None`: not pinned.
    pub rabbitmq: Option<crate::versions::Version>,
    /// Erlang/OTP's, the same way.
    pub erlang: Option<crate::versions::Version>,
    /// Linux: the apt package versions to install (`rabbitmq-server`, the `erlang-*`
    /// packages).
    pub rabbitmq_package: Option<String>,
    pub erlang_package: Option<String>,
    /// Windows: the installers, as paths on the host or http(s) URLs.
    pub rabbitmq_installer: Option<String>,
    pub erlang_installer: Option<String>,
}

impl Versions {
    pub fn pinned(&self) -> bool {
        self.rabbitmq.is_some() || self.erlang.is_some()
    }
}

/// A host's `tls` table: PEM files on the operator's machine that warren puts on the
/// host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// The CA certificate(s) peers and clients are checked against.
    pub ca: PathBuf,
    /// The host's certificate (chain), presented by every listener and the node.
    pub cert: PathBuf,
    /// Its private key: a secret, written readable by RabbitMQ only.
    pub key: PathBuf,
    /// Keep the plain AMQP, management and MQTT listeners open beside the TLS ones.
    pub keep_plain: bool,
}

/// A WinRM host's listener and authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinrmOptions {
    /// HTTPS (5986), or HTTP (5985) with every message sealed by NTLM.
    pub https: bool,
    /// Basic authentication (HTTPS only) instead of NTLM.
    pub basic: bool,
    /// CA certificates (PEM) the listener's certificate is checked against, besides
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Skip the certificate check: an explicit per-host choice that `plan` prints.
    pub insecure: bool,
}

impl Default for WinrmOptions {
    fn default() -> Self {
        WinrmOptions {
            https: true,
            basic: false,
            ca_file: None,
            insecure: false,
        }
    }
}

impl Host {
    /// The Erlang node name. Always the short host name, set explicitly in the
    /// node's environment file so that Windows' upper-case COMPUTERNAME cannot differ.
    pub fn node_name(&self) -> String {
        format!("rabbit@{}", self.name)
    }

    /// Its RabbitMQ listens with TLS only: a tls table without keep_plain.
    pub fn tls_only(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| !t.keep_plain)
    }
}

/// Where RabbitMQ keeps its files on a host; the defaults are the packages' own.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Paths {
    Linux {
        config_dir: String,
        data_dir: String,
        log_dir: String,
    },
    Windows {
        /// RABBITMQ_BASE: config, enabled_plugins and the database live here.
        base: String,
        /// RabbitMQ's sbin folder (rabbitmq-service.bat, rabbitmqctl.bat); `None`:
        /// the installed version's, found on the host from the registry.
        #[serde(skip_serializing_if = "Option::is_none")]
        sbin: Option<String>,
        /// The administering user's profile, where the CLI tools read the cookie.
        user_profile: String,
        /// The profile of the service account (LocalSystem).
        system_profile: String,
    },
}

impl Paths {
    pub const LINUX_KEYS: &'static [&'static str] = &["config_dir", "data_dir", "log_dir"];
    pub const WINDOWS_KEYS: &'static [&'static str] =
        &["base", "sbin", "user_profile", "system_profile"];

    /// The package defaults for `os`, with `overrides` (already checked) applied.
    pub fn for_os(os: Os, user: &str, overrides: &BTreeMap<String, String>) -> Paths {
        let get = |k: &str, d: String| overrides.get(k).cloned().unwrap_or(d);
        match os {
            Os::Linux => Paths::Linux {
                config_dir: get("config_dir", "/etc/rabbitmq".into()),
                data_dir: get("data_dir", "/var/lib/rabbitmq".into()),
                log_dir: get("log_dir", "/var/log/rabbitmq".into()),
            },
            Os::Windows => {
                let account = user.rsplit('\\').next().unwrap_or(user);
                let profile = get("user_profile", format!(r"C:\Users\{account}"));
                Paths::Windows {
                    // Machine-wide, not the installing admin's roaming profile
                    // (rabbitmq-server#626).
                    base: get("base", r"C:\ProgramData\RabbitMQ".into()),
                    sbin: overrides.get("sbin").cloned(),
                    system_profile: get(
                        "system_profile",
                        r"C:\Windows\System32\config\systemprofile".into(),
                    ),
                    user_profile: profile,
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Site {
    /// Index into `Inventory::hosts` of the host that owns this site.
    pub host: usize,
    pub exchange: String,
    pub exchange_type: String,
    pub queue: String,
    pub routing_key: String,
    /// Indexes of the hosts that hold a copy of the queue besides its own host: the
    /// mirrors (classic mirroring) or the other members (quorum).
    pub mirrors: Vec<usize>,
    pub link: Link,
    /// The password of the link's own user (`warren-link-HOST`): on the central
    /// broker for a shovel, on the site's broker for federation. Set when `link` is
    /// not `cluster`.
    pub link_password: Option<SecretRef>,
}

impl Site {
    pub fn linked(&self) -> bool {
        self.link != Link::Cluster
    }
}

/// One RabbitMQ broker warren manages: the cluster (read and changed through the
/// central node), or the standalone broker of a linked site (by index into
/// `Inventory::sites`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    Cluster,
    Site(usize),
}

/// The plugin that serves a node's metrics to Prometheus.
pub const PROMETHEUS_PLUGIN: &str = "rabbitmq_prometheus";

/// The user a shovel or federation link of the site on `host` logs in as.
pub fn link_user(host: &str) -> String {
    format!("warren-link-{host}")
}

/// The name of the shovel or federation upstream of the site on `host`.
pub fn link_name(host: &str) -> String {
    format!("warren-{host}")
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: SecretRef,
    pub tags: Vec<String>,
    pub permissions: Vec<Permission>,
    /// The site host this user belongs to (a site's producer): it may reach that
    /// site's exchange and queue and nothing of any other site.
    pub site: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Permission {
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl Inventory {
    /// The node names that hold a copy of `site`'s queue besides its own node.
    pub fn copy_nodes(&self, site: &Site) -> Vec<String> {
        site.mirrors
            .iter()
            .map(|&m| self.hosts[m].node_name())
            .collect()
    }

    /// Whether host `i` runs a standalone broker linked by shovel or federation,
    /// instead of a member of the cluster.
    pub fn is_linked(&self, i: usize) -> bool {
        self.sites.iter().any(|s| s.host == i && s.linked())
    }

    /// Whether host `i` is (or is to be) a member of the cluster.
    pub fn is_member(&self, i: usize) -> bool {
        !self.is_linked(i)
    }

    /// The plugins host `i` runs: the cluster's, with the shovel on a shovelled site
    /// and federation on the central host when a site is federated.
    pub fn plugins_of(&self, i: usize) -> Vec<String> {
        let mut out = self.cluster.plugins.clone();
        let mut add = |p: &str| {
            if !out.iter().any(|x| x == p) {
                out.push(p.to_string());
            }
        };
        if self
            .sites
            .iter()
            .any(|s| s.host == i && s.link == Link::Shovel)
        {
            add("rabbitmq_shovel");
            add("rabbitmq_shovel_management");
        }
        if self.hosts[i].role == Role::Central
            && self.sites.iter().any(|s| s.link == Link::Federation)
        {
            add("rabbitmq_federation");
            add("rabbitmq_federation_management");
        }
        out
    }

    /// Whether host `i` serves Prometheus metrics.
    pub fn serves_metrics(&self, i: usize) -> bool {
        self.plugins_of(i).iter().any(|p| p == PROMETHEUS_PLUGIN)
    }

    /// The cluster first, then every linked site's broker.
    pub fn brokers(&self) -> Vec<Broker> {
        std::iter::once(Broker::Cluster)
            .chain(
                self.sites
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.linked())
                    .map(|(i, _)| Broker::Site(i)),
            )
            .collect()
    }

    /// The host warren reads and changes `b` through.
    pub fn broker_host(&self, b: Broker) -> usize {
        match b {
            Broker::Cluster => self.central_index(),
            Broker::Site(i) => self.sites[i].host,
        }
    }

    /// The users that live on `b`: every user of no site, and the users of the
    /// sites `b` holds.
    pub fn users_on(&self, b: Broker) -> impl Iterator<Item = &User> {
        self.users.iter().filter(move |u| match (u.site, b) {
            (None, _) => true,
            (Some(h), Broker::Cluster) => self.is_member(h),
            (Some(h), Broker::Site(i)) => self.sites[i].host == h,
        })
    }

    /// The password of user `name`: an inventory user's, or a link user's (its
    /// file is created with a random password when it does not exist yet).
    pub fn password_of(&self, name: &str) -> Result<super::Secret<String>, String> {
        if let Some(u) = self.users.iter().find(|u| u.name == name) {
            return u.password.read();
        }
        match self
            .sites
            .iter()
            .find(|s| s.linked() && link_user(&self.hosts[s.host].name) == name)
        {
            Some(s) => s
                .link_password
                .as_ref()
                .ok_or_else(|| format!("site {name} has no link_password"))?
                .read_or_create_random(),
            None => Err(format!("{name} is not a user of the inventory")),
        }
    }

    pub fn central(&self) -> &Host {
        &self.hosts[self.central_index()]
    }

    /// The index of the central host (the seed), which validation guarantees.
    pub fn central_index(&self) -> usize {
        self.hosts
            .iter()
            .position(|h| h.role == Role::Central)
            .expect("validated inventory has a central host")
    }

    /// Host indexes, the central host first: the order nodes are changed and read in.
    pub fn central_first(&self) -> Vec<usize> {
        let c = self.central_index();
        std::iter::once(c)
            .chain((0..self.hosts.len()).filter(|&i| i != c))
            .collect()
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// What permissions (configure, write, read patterns, as RabbitMQ matches them
    /// against resource names) let a user reach of the sites other than `own`: one
    /// line per exchange or queue, e.g. "write on exchange site.b (site b)". `Err`
    /// names a pattern that is not a regular expression warren can evaluate.
    pub fn reach_beyond(
        &self,
        own: usize,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<Vec<String>, String> {
        let mut patterns = Vec::new();
        for (what, pattern) in [("configure", configure), ("write", write), ("read", read)] {
            let re = regex::Regex::new(pattern).map_err(|_| {
                format!(
                    "{what} pattern \"{pattern}\" is not a regular expression warren can evaluate"
                )
            })?;
            patterns.push((what, re));
        }
        let mut out = Vec::new();
        for s in self.sites.iter().filter(|s| s.host != own) {
            let site = &self.hosts[s.host].name;
            for (kind, name) in [("exchange", &s.exchange), ("queue", &s.queue)] {
                for (what, re) in &patterns {
                    if re.is_match(name) {
                        out.push(format!("{what} on {kind} {name} (site {site})"));
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn site_of(&self, host: &Host) -> Option<&Site> {
        self.sites
            .iter()
            .find(|s| self.hosts[s.host].name == host.name)
    }
}
