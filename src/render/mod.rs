//! The desired state, rendered: every file each host should have (content, owner, mode,
//! and what a change to it requires), and the cluster's definitions. Pure: the same
//! inventory, templates and cookie give byte-identical output.

pub mod balancer;
pub mod definitions;
pub mod templates;

use crate::inventory::{ConfigFormat, Host, Inventory, Paths, Role, Secret, ServiceManager};
use crate::platform::Setting;
use crate::util::sha256_hex;
use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
pub use templates::Templates;

/// What a change to a file requires before it takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Nothing: read when used (hosts entries, the setup script itself).
    None,
    /// Restart RabbitMQ on the host.
    Restart,
    /// Stop RabbitMQ before the file is written, start it after: the cookie, which the
    /// CLI reads too, so a running node could no longer be stopped once it changed.
    StopWriteStart,
    /// `systemctl daemon-reload`, then restart.
    DaemonReloadRestart,
    /// Reinstall the Windows service (stop, remove, install, start): it reads its
    /// environment file only when installed.
    ReinstallService,
    /// HAProxy's configuration: HAProxy is reloaded once the cluster is done
    /// (`plan::balancer`); RabbitMQ is not touched.
    ReloadBalancer,
}

/// Whether warren owns the whole file or one marked block inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Ownership {
    Whole,
    /// Lines from `begin` to `end` (both included); the rest of the file is the host's.
    Block {
        begin: String,
        end: String,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    /// Shown only as "(sensitive value)" and diffed by hash.
    Secret(Secret<String>),
}

impl Content {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Content::Text(t) => t.as_bytes(),
            Content::Secret(s) => s.expose().as_bytes(),
        }
    }
    pub fn is_secret(&self) -> bool {
        matches!(self, Content::Secret(_))
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Text(t) => write!(f, "{t:?}"),
            Content::Secret(s) => write!(f, "{s:?}"),
        }
    }
}

/// One file as a host should have it.
#[derive(Debug, Clone)]
pub struct RenderedFile {
    /// The path on the host, in the host's own syntax (`C:\...` on Windows).
    pub path: String,
    pub content: Content,
    /// Owner (user) on Linux; Windows files inherit their folder's ACL.
    pub owner: Option<String>,
    pub mode: Option<u32>,
    pub ownership: Ownership,
    pub effect: Effect,
    /// The template it came from; `None` for the cookie.
    pub template: Option<&'static str>,
}

impl RenderedFile {
    /// Where `render --out DIR` writes it: under `DIR/HOST/`, the drive's colon dropped.
    pub fn local_path(&self, out: &Path, host: &str) -> PathBuf {
        let mut p = out.join(host);
        let unified = self.path.replace('\\', "/");
        for part in unified.split('/').filter(|s| !s.is_empty()) {
            p.push(part.trim_end_matches(':'));
        }
        p
    }
}

/// Everything one host should have.
#[derive(Debug, Clone)]
pub struct HostRender {
    pub host: String,
    pub files: Vec<RenderedFile>,
    /// Host settings outside RabbitMQ's files (Windows: RABBITMQ_BASE machine-wide,
    /// firewall rules for the cluster's ports).
    pub settings: Vec<Setting>,
    /// The SHA-256 of the environment file the service must have been installed
    /// from, where the service reads it only at install (Windows).
    pub service_stamp: Option<String>,
    /// For hosts without remote access: a script that does the host's whole part
    /// from the rendered folder (Windows: `bootstrap.ps1`). Written by `render` only.
    pub bootstrap: Option<String>,
}

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

/// Where warren puts a TLS host's files, in the host's own syntax.
pub struct TlsPaths {
    pub ca: String,
    pub cert: String,
    pub key: String,
    /// The options file of TLS distribution (`-ssl_dist_optfile`).
    pub dist_optfile: String,
}

/// The paths of `host`'s TLS files, if it has `tls`: beside its config file.
pub fn tls_paths(host: &Host) -> Option<TlsPaths> {
    host.tls.as_ref()?;
    let (dir, sep) = match &host.paths {
        Paths::Linux { config_dir, .. } => (config_dir.as_str(), "/"),
        Paths::Windows { base, .. } => (base.as_str(), "\\"),
    };
    let at = |name: &str| format!("{dir}{sep}{name}");
    Some(TlsPaths {
        ca: at("tls-ca.pem"),
        cert: at("tls-cert.pem"),
        key: at("tls-key.pem"),
        dist_optfile: at("inter_node_tls.config"),
    })
}

/// A host path as Erlang and RabbitMQ's config read it (forward slashes).
pub fn erl_path(p: &str) -> String {
    p.replace('\\', "/")
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

const HEADER: &str =
    "Managed by warren from inventory.toml: edit the inventory (or a template), not this file.";

/// The tera context every template of `host` sees.
fn context(inv: &Inventory, host: &Host, config_file: &str) -> tera::Context {
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

fn config_file_name(inv: &Inventory) -> &'static str {
    match inv.cluster.config_format {
        ConfigFormat::Conf => "rabbitmq.conf",
        ConfigFormat::ErlangTerms => "rabbitmq.config",
    }
}

fn config_template(inv: &Inventory) -> &'static str {
    match inv.cluster.config_format {
        ConfigFormat::Conf => "common/rabbitmq.conf.tera",
        ConfigFormat::ErlangTerms => "common/rabbitmq.config.tera",
    }
}

pub const HOSTS_BEGIN: &str = "# BEGIN warren cluster ";
pub const HOSTS_END: &str = "# END warren cluster ";

/// Renders every file `host` should have. `cookie` is the cluster's Erlang cookie.
pub fn render_host(
    inv: &Inventory,
    t: &Templates,
    host: &Host,
    cookie: &Secret<String>,
) -> Result<HostRender> {
    match &host.paths {
        Paths::Linux {
            config_dir,
            data_dir,
            ..
        } => Ok(HostRender {
            host: host.name.clone(),
            files: linux_files(inv, t, host, cookie, config_dir, data_dir)?,
            settings: Vec::new(),
            service_stamp: None,
            bootstrap: None,
        }),
        Paths::Windows {
            base,
            user_profile,
            system_profile,
            ..
        } => windows_render(inv, t, host, cookie, base, user_profile, system_profile),
    }
}

struct FileSpec {
    path: String,
    template: &'static str,
    owner: Option<&'static str>,
    mode: Option<u32>,
    effect: Effect,
}

fn text_file(
    t: &Templates,
    ctx: &tera::Context,
    spec: FileSpec,
    crlf: bool,
) -> Result<RenderedFile> {
    let mut text = t.render(spec.template, ctx)?;
    if crlf {
        text = text.replace("\r\n", "\n").replace('\n', "\r\n");
    }
    Ok(RenderedFile {
        path: spec.path,
        content: Content::Text(text),
        owner: spec.owner.map(str::to_string),
        mode: spec.mode,
        ownership: Ownership::Whole,
        effect: spec.effect,
        template: Some(spec.template),
    })
}

fn hosts_block(
    inv: &Inventory,
    t: &Templates,
    ctx: &tera::Context,
    path: &str,
    crlf: bool,
) -> Result<RenderedFile> {
    let mut f = text_file(
        t,
        ctx,
        FileSpec {
            path: path.to_string(),
            template: "common/hosts.tera",
            owner: None,
            mode: None,
            effect: Effect::None,
        },
        crlf,
    )?;
    f.ownership = Ownership::Block {
        begin: format!("{HOSTS_BEGIN}{}", inv.cluster.name),
        end: format!("{HOSTS_END}{}", inv.cluster.name),
    };
    Ok(f)
}

fn cookie_file(
    path: String,
    cookie: &Secret<String>,
    owner: Option<&str>,
    mode: Option<u32>,
) -> RenderedFile {
    RenderedFile {
        path,
        content: Content::Secret(cookie.clone()),
        owner: owner.map(str::to_string),
        mode,
        ownership: Ownership::Whole,
        effect: Effect::StopWriteStart,
        template: None,
    }
}

fn linux_files(
    inv: &Inventory,
    t: &Templates,
    host: &Host,
    cookie: &Secret<String>,
    config_dir: &str,
    data_dir: &str,
) -> Result<Vec<RenderedFile>> {
    let config_file = format!("{config_dir}/{}", config_file_name(inv));
    let ctx = context(inv, host, &config_file);
    let conf = |path: String, template: &'static str, effect: Effect| FileSpec {
        path,
        template,
        owner: Some("root"),
        mode: Some(0o644),
        effect,
    };
    let mut files = vec![
        text_file(
            t,
            &ctx,
            conf(config_file.clone(), config_template(inv), Effect::Restart),
            false,
        )?,
        text_file(
            t,
            &ctx,
            conf(
                format!("{config_dir}/enabled_plugins"),
                "common/enabled_plugins.tera",
                Effect::Restart,
            ),
            false,
        )?,
        text_file(
            t,
            &ctx,
            conf(
                format!("{config_dir}/rabbitmq-env.conf"),
                "linux/rabbitmq-env.conf.tera",
                Effect::Restart,
            ),
            false,
        )?,
        cookie_file(
            format!("{data_dir}/.erlang.cookie"),
            cookie,
            Some("rabbitmq"),
            Some(0o400),
        ),
    ];
    files.extend(tls_files(t, &ctx, host, Some(("root", "rabbitmq")), false)?);
    if matches!(host.service, ServiceManager::Systemd | ServiceManager::Auto) {
        files.push(text_file(
            t,
            &ctx,
            conf(
                "/etc/systemd/system/rabbitmq-server.service.d/warren.conf".into(),
                "linux/systemd-warren.conf.tera",
                Effect::DaemonReloadRestart,
            ),
            false,
        )?);
    }
    if inv.cluster.hosts_file {
        files.push(hosts_block(inv, t, &ctx, "/etc/hosts", false)?);
    }
    files.extend(balancer::haproxy_cfg(inv, t, &ctx, host)?);
    Ok(files)
}

/// Who may read a Windows cookie file: the service (LocalSystem), Administrators, and
/// the user whose CLI tools read it; nobody else, nothing inherited.
pub fn windows_cookie_acl(user: &str) -> String {
    crate::platform::normalize_owner(&format!("SYSTEM,Administrators,{user}"))
}

fn windows_render(
    inv: &Inventory,
    t: &Templates,
    host: &Host,
    cookie: &Secret<String>,
    base: &str,
    user_profile: &str,
    system_profile: &str,
) -> Result<HostRender> {
    let config_file = format!(r"{base}\{}", config_file_name(inv));
    let mut ctx = context(inv, host, &config_file);
    let files = windows_files(
        inv,
        t,
        host,
        cookie,
        &ctx,
        base,
        user_profile,
        system_profile,
    )?;
    let env_file = files
        .iter()
        .find(|f| f.effect == Effect::ReinstallService)
        .expect("windows_files renders rabbitmq-env-conf.bat");
    let service_stamp = Some(sha256_hex(env_file.content.bytes()));
    let mut settings = vec![Setting {
        key: "env:RABBITMQ_BASE".into(),
        value: base.to_string(),
        reinstall: true,
    }];
    let metrics = inv
        .hosts
        .iter()
        .position(|h| h.name == host.name)
        .is_some_and(|i| inv.serves_metrics(i));
    for (name, ports) in firewall_rules(host, metrics) {
        settings.push(Setting {
            key: format!("firewall:{name}"),
            value: format!("TCP {ports} Inbound Allow True"),
            reinstall: false,
        });
    }
    // bootstrap.ps1 copies each file from the rendered folder it sits in.
    let bootstrap_files: Vec<BootstrapFile> = files
        .iter()
        .map(|f| BootstrapFile {
            source: f
                .local_path(Path::new(""), "")
                .to_string_lossy()
                .replace('/', "\\")
                .trim_start_matches('\\')
                .to_string(),
            target: f.path.clone(),
            acl: f.owner.clone(),
            effect: f.effect,
            block: match &f.ownership {
                Ownership::Block { begin, end } => Some((begin.clone(), end.clone())),
                Ownership::Whole => None,
            },
        })
        .collect();
    ctx.insert("files", &bootstrap_files);
    ctx.insert("service_stamp", &service_stamp);
    ctx.insert("seed", &inv.central().node_name());
    ctx.insert(
        "join_by_config",
        &(inv.cluster.join == crate::inventory::JoinMethod::Config),
    );
    let mut bootstrap = t.render("windows/bootstrap.ps1.tera", &ctx)?;
    bootstrap = bootstrap.replace("\r\n", "\n").replace('\n', "\r\n");
    Ok(HostRender {
        host: host.name.clone(),
        files,
        settings,
        service_stamp,
        bootstrap: Some(bootstrap),
    })
}

#[derive(Serialize)]
struct BootstrapFile {
    /// Relative to the host's rendered folder.
    source: String,
    target: String,
    acl: Option<String>,
    effect: Effect,
    block: Option<(String, String)>,
}

/// The inbound rules a Windows host needs for the cluster: (rule name, ports).
/// `metrics`: the host serves Prometheus metrics.
pub fn firewall_rules(host: &Host, metrics: bool) -> Vec<(&'static str, String)> {
    let p = host.ports;
    let mut rules = vec![
        ("warren-epmd", "4369".to_string()),
        ("warren-distribution", p.dist.to_string()),
        ("warren-cli", "35672-35682".to_string()),
    ];
    if !host.tls_only() {
        rules.extend([
            ("warren-amqp", p.amqp.to_string()),
            ("warren-management", p.management.to_string()),
            ("warren-mqtt", p.mqtt.to_string()),
        ]);
    }
    if host.tls.is_some() {
        rules.extend([
            ("warren-amqps", p.amqps.to_string()),
            ("warren-management-tls", p.management_tls.to_string()),
            ("warren-mqtts", p.mqtts.to_string()),
        ]);
    }
    if metrics && !host.tls_only() {
        rules.push(("warren-prometheus", p.prometheus.to_string()));
    }
    if metrics && host.tls.is_some() {
        rules.push(("warren-prometheus-tls", p.prometheus_tls.to_string()));
    }
    rules
}

#[allow(clippy::too_many_arguments)]
fn windows_files(
    inv: &Inventory,
    t: &Templates,
    host: &Host,
    cookie: &Secret<String>,
    ctx: &tera::Context,
    base: &str,
    user_profile: &str,
    system_profile: &str,
) -> Result<Vec<RenderedFile>> {
    let config_file = format!(r"{base}\{}", config_file_name(inv));
    let spec = |path: String, template: &'static str, effect: Effect| FileSpec {
        path,
        template,
        owner: None,
        mode: None,
        effect,
    };
    let acl = windows_cookie_acl(&host.user);
    let mut files = vec![
        text_file(
            t,
            ctx,
            spec(config_file.clone(), config_template(inv), Effect::Restart),
            false,
        )?,
        text_file(
            t,
            ctx,
            spec(
                format!(r"{base}\enabled_plugins"),
                "common/enabled_plugins.tera",
                Effect::Restart,
            ),
            false,
        )?,
        text_file(
            t,
            ctx,
            spec(
                format!(r"{base}\rabbitmq-env-conf.bat"),
                "windows/rabbitmq-env-conf.bat.tera",
                Effect::ReinstallService,
            ),
            true,
        )?,
        // The service (LocalSystem) reads the first, the CLI tools of the
        // administering user the second; both must hold the cluster's cookie.
        cookie_file(
            format!(r"{system_profile}\.erlang.cookie"),
            cookie,
            Some(&acl),
            None,
        ),
        cookie_file(
            format!(r"{user_profile}\.erlang.cookie"),
            cookie,
            Some(&acl),
            None,
        ),
    ];
    files.extend(tls_files(t, ctx, host, None, true)?);
    if inv.cluster.hosts_file {
        files.push(hosts_block(
            inv,
            t,
            ctx,
            r"C:\Windows\System32\drivers\etc\hosts",
            true,
        )?);
    }
    Ok(files)
}

/// A TLS host's files: the CA and certificate as the inventory's files have them, the
/// key as a secret (readable by RabbitMQ and the CLI's user only), and TLS
/// distribution's options. RabbitMQ reads them at start. `linux_owners` is (owner of
/// the certificates, owner of the key); on Windows the key gets the cookie's ACL.
fn tls_files(
    t: &Templates,
    ctx: &tera::Context,
    host: &Host,
    linux_owners: Option<(&'static str, &'static str)>,
    crlf: bool,
) -> Result<Vec<RenderedFile>> {
    let (Some(tls), Some(paths)) = (&host.tls, tls_paths(host)) else {
        return Ok(Vec::new());
    };
    let read = |p: &Path, marker: &str| {
        crate::inventory::tls::read_pem(p, marker).map_err(anyhow::Error::msg)
    };
    let public = |path: String, text: String| RenderedFile {
        path,
        content: Content::Text(text),
        owner: linux_owners.map(|(o, _)| o.to_string()),
        mode: linux_owners.map(|_| 0o644),
        ownership: Ownership::Whole,
        effect: Effect::Restart,
        template: None,
    };
    let key = RenderedFile {
        path: paths.key.clone(),
        content: Content::Secret(Secret::new(read(&tls.key, "PRIVATE KEY-----")?)),
        owner: Some(match linux_owners {
            Some((_, o)) => o.to_string(),
            None => windows_cookie_acl(&host.user),
        }),
        mode: linux_owners.map(|_| 0o400),
        ownership: Ownership::Whole,
        effect: Effect::Restart,
        template: None,
    };
    let mut optfile = text_file(
        t,
        ctx,
        FileSpec {
            path: paths.dist_optfile.clone(),
            template: "common/inter_node_tls.config.tera",
            owner: linux_owners.map(|(o, _)| o),
            mode: linux_owners.map(|_| 0o644),
            effect: Effect::Restart,
        },
        crlf,
    )?;
    optfile.effect = Effect::Restart;
    Ok(vec![
        public(paths.ca, read(&tls.ca, "CERTIFICATE-----")?),
        public(paths.cert, read(&tls.cert, "CERTIFICATE-----")?),
        key,
        optfile,
    ])
}

/// The whole desired state: every host's files and the cluster's definitions.
pub struct Rendered {
    pub hosts: Vec<HostRender>,
    pub definitions: String,
    /// The Prometheus scrape configuration of every broker's nodes; `None` when no
    /// host serves metrics.
    pub prometheus: Option<String>,
    /// Templates taken from the inventory's `templates/` folder, as (name, file).
    pub overridden: Vec<(String, PathBuf)>,
}

/// Renders the given hosts (all when `only` is `None`). Reads the cookie, creating its
/// file when the inventory names one that does not exist yet.
pub fn render(inv: &Inventory, only: Option<&str>) -> Result<Rendered> {
    let t = Templates::load(&inv.dir.join("templates"))?;
    let cookie = inv
        .cluster
        .cookie
        .read_or_create_random()
        .map_err(|e| anyhow::anyhow!("{}: cluster.cookie: {e}", inv.path.display()))?;
    if let Some(why) = crate::inventory::secret::refused_cookie(cookie.expose()) {
        anyhow::bail!(
            "{}: cluster.cookie: the cookie in {} {why}",
            inv.path.display(),
            inv.cluster.cookie
        );
    }
    let mut hosts = Vec::new();
    for (i, h) in inv.hosts.iter().enumerate() {
        if only.is_none_or(|n| n == h.name) {
            let cookie = if inv.is_linked(i) {
                linked_cookie(&cookie, &h.name)
            } else {
                cookie.clone()
            };
            hosts.push(
                render_host(inv, &t, h, &cookie)
                    .with_context(|| format!("rendering host {}", h.name))?,
            );
        }
    }
    let definitions = definitions::render(inv)?;
    let prometheus = scrape_config(inv, &t)?;
    Ok(Rendered {
        hosts,
        definitions,
        prometheus,
        overridden: t.overridden,
    })
}

#[derive(Serialize)]
struct ScrapeJob {
    name: String,
    path: &'static str,
    params: Vec<ScrapeParam>,
    scheme: &'static str,
    ca_file: Option<String>,
    targets: Vec<ScrapeTarget>,
}

#[derive(Serialize)]
struct ScrapeParam {
    name: &'static str,
    values: Vec<String>,
}

#[derive(Serialize, Clone)]
struct ScrapeTarget {
    target: String,
    cluster: String,
    host: String,
    role: &'static str,
    link: &'static str,
}

/// The Prometheus scrape jobs of every broker warren manages (the cluster's nodes,
/// each linked site's own): its nodes' totals, and its per-queue numbers. A broker's
/// nodes share TLS or not (validation refuses a mix in one cluster), so one scheme
/// serves each job.
fn scrape_config(inv: &Inventory, t: &Templates) -> Result<Option<String>> {
    let mut jobs = Vec::new();
    for b in inv.brokers() {
        let members: Vec<usize> = match b {
            crate::inventory::Broker::Cluster => inv
                .central_first()
                .into_iter()
                .filter(|&i| inv.is_member(i))
                .collect(),
            crate::inventory::Broker::Site(s) => vec![inv.sites[s].host],
        };
        let members: Vec<usize> = members
            .into_iter()
            .filter(|&i| inv.serves_metrics(i))
            .collect();
        let Some(&first) = members.first() else {
            continue;
        };
        let cluster = match b {
            crate::inventory::Broker::Cluster => inv.cluster.name.clone(),
            crate::inventory::Broker::Site(_) => {
                format!("{}-{}", inv.cluster.name, inv.hosts[first].name)
            }
        };
        let tls = inv.hosts[first].tls.as_ref();
        let targets: Vec<ScrapeTarget> = members
            .iter()
            .map(|&i| {
                let h = &inv.hosts[i];
                let port = match h.tls {
                    Some(_) => h.ports.prometheus_tls,
                    None => h.ports.prometheus,
                };
                let address = match h.address.contains(':') {
                    true => format!("[{}]:{port}", h.address),
                    false => format!("{}:{port}", h.address),
                };
                ScrapeTarget {
                    target: address,
                    cluster: cluster.clone(),
                    host: h.name.clone(),
                    role: h.role.as_str(),
                    link: inv.site_of(h).map(|s| s.link.as_str()).unwrap_or("cluster"),
                }
            })
            .collect();
        let ca_file = tls.map(|t| {
            t.ca.strip_prefix(&inv.dir)
                .unwrap_or(&t.ca)
                .to_string_lossy()
                .into_owned()
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        jobs.push(ScrapeJob {
            name: format!("rabbitmq-{cluster}"),
            path: "/metrics",
            params: Vec::new(),
            scheme,
            ca_file: ca_file.clone(),
            targets: targets.clone(),
        });
        // The per-queue families only: /metrics/detailed without `family` returns
        // nothing, and /metrics/per-object would return every object's every metric.
        jobs.push(ScrapeJob {
            name: format!("rabbitmq-{cluster}-queues"),
            path: "/metrics/detailed",
            params: vec![
                ScrapeParam {
                    name: "family",
                    values: vec!["queue_coarse_metrics".into(), "queue_consumer_count".into()],
                },
                ScrapeParam {
                    name: "vhost",
                    values: vec![inv.cluster.vhost.clone()],
                },
            ],
            scheme,
            ca_file,
            targets,
        });
    }
    if jobs.is_empty() {
        return Ok(None);
    }
    let mut ctx = tera::Context::new();
    ctx.insert("header", HEADER);
    ctx.insert("cluster", &inv.cluster.name);
    ctx.insert("vhost", &inv.cluster.vhost);
    ctx.insert("jobs", &jobs);
    Ok(Some(t.render("common/prometheus.yml.tera", &ctx)?))
}

/// The cookie of a linked site's standalone broker: its own, derived from the
/// cluster's and the host's name, so that a site on another network never holds the
/// cookie that opens the cluster (and a rerun derives the same one).
pub fn linked_cookie(cluster: &Secret<String>, host: &str) -> Secret<String> {
    let digest = Sha256::new()
        .chain_update(b"warren linked site cookie\0")
        .chain_update(cluster.expose().as_bytes())
        .chain_update(b"\0")
        .chain_update(host.as_bytes())
        .finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    Secret::new(hex[..32].to_string())
}

/// Writes a render under `out`: `out/HOST/...` per host, `out/cluster/definitions.json`
/// and `out/cluster/prometheus.yml`.
/// Folders of hosts being written are emptied first, so a file that is no longer
/// rendered does not linger; nothing else under `out` is touched.
pub fn write_tree(out: &Path, r: &Rendered, with_cluster: bool) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for h in &r.hosts {
        let dir = out.join(&h.host);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        for f in &h.files {
            let p = f.local_path(out, &h.host);
            write_local(&p, f.content.bytes(), f.content.is_secret())?;
            written.push(p);
        }
        if let Some(script) = &h.bootstrap {
            let p = dir.join("bootstrap.ps1");
            write_local(&p, script.as_bytes(), false)?;
            written.push(p);
        }
    }
    if with_cluster {
        // It holds the users' password hashes: private, like the cookie.
        let p = out.join("cluster").join("definitions.json");
        write_local(&p, r.definitions.as_bytes(), true)?;
        written.push(p);
        if let Some(scrape) = &r.prometheus {
            let p = out.join("cluster").join("prometheus.yml");
            write_local(&p, scrape.as_bytes(), false)?;
            written.push(p);
        }
    }
    Ok(written)
}

fn write_local(p: &Path, bytes: &[u8], private: bool) -> Result<()> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    use std::io::Write;
    let mut f = opts
        .open(p)
        .with_context(|| format!("cannot write {}", p.display()))?;
    // A file left by an earlier render keeps its mode through `open`: set it.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", p.display()))?;
    }
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", p.display()))
}
