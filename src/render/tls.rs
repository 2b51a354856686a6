//! A TLS host's files: where they go (beside its config file), the CA and certificate
//! as the inventory's files have them, the key as a secret, and TLS distribution's
//! options.

use super::{
    text_file, windows_cookie_acl, Content, Effect, FileSpec, Ownership, RenderedFile, Templates,
};
use crate::inventory::{Host, Paths, Secret};
use anyhow::Result;
use std::path::Path;

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

/// A TLS host's files: the CA and certificate as the inventory's files have them, the
/// key as a secret (readable by RabbitMQ and the CLI's user only), and TLS
/// distribution's options. RabbitMQ reads them at start. `linux_owners` is (owner of
/// the certificates, owner of the key); on Windows the key gets the cookie's ACL.
pub(super) fn tls_files(
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
