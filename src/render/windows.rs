//! A Windows host's render: its files (CRLF where cmd.exe reads them, a cookie for the
//! service and one for the CLI's user), its settings (RABBITMQ_BASE, firewall rules),
//! the stamp of the environment its service is installed from, and bootstrap.ps1.

use super::context::{config_file_name, config_template, context};
use super::firewall::firewall_rules;
use super::tls::tls_files;
use super::{
    cookie_file, hosts_block, text_file, windows_cookie_acl, Effect, FileSpec, HostRender,
    Ownership, RenderedFile, Templates,
};
use crate::inventory::{Host, Inventory, Secret};
use crate::platform::Setting;
use crate::util::sha256_hex;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

pub(super) fn windows_render(
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
    // The cookie the CLI tools read, which bootstrap.ps1 checks after writing it.
    ctx.insert("cli_cookie", &format!(r"{user_profile}\.erlang.cookie"));
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
