//! The desired state, rendered: every file each host should have (content, owner, mode,
//! and what a change to it requires), and the cluster's definitions. Pure: the same
//! inventory, templates and cookie give byte-identical output. Here: what a rendered
//! file is, rendering a host and the whole inventory, and writing a render locally;
//! each OS, TLS, the balancer and Prometheus have a file of their own.

pub mod balancer;
mod context;
pub mod definitions;
mod firewall;
mod linux;
mod prometheus;
pub mod templates;
mod tls;
mod windows;

use crate::inventory::{Host, Inventory, Paths, Secret};
use crate::platform::Setting;
use anyhow::{Context, Result};
pub use firewall::firewall_rules;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
pub use templates::Templates;
pub use tls::{erl_path, tls_paths, TlsPaths};

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
            files: linux::linux_files(inv, t, host, cookie, config_dir, data_dir)?,
            settings: Vec::new(),
            service_stamp: None,
            bootstrap: None,
        }),
        Paths::Windows {
            base,
            user_profile,
            system_profile,
            ..
        } => windows::windows_render(inv, t, host, cookie, base, user_profile, system_profile),
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

/// Who may read a Windows cookie file: the service (LocalSystem), Administrators, and
/// the user whose CLI tools read it; nobody else, nothing inherited.
pub fn windows_cookie_acl(user: &str) -> String {
    crate::platform::normalize_owner(&format!("SYSTEM,Administrators,{user}"))
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
    if let Some(why) = crate::inventory::secret_check::refused_cookie(cookie.expose()) {
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
    let definitions = definitions::render(inv, &cookie)?;
    let prometheus = prometheus::scrape_config(inv, &t)?;
    Ok(Rendered {
        hosts,
        definitions,
        prometheus,
        overridden: t.overridden,
    })
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
