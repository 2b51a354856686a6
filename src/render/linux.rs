//! A Linux host's files: the config file, enabled_plugins, rabbitmq-env.conf, the
//! cookie, the TLS files, systemd's drop-in, the hosts block, and haproxy.cfg on the
//! balancer's host.

use super::context::{config_file_name, config_template, context};
use super::tls::tls_files;
use super::{
    balancer, cookie_file, hosts_block, text_file, Effect, FileSpec, RenderedFile, Templates,
};
use crate::inventory::{Host, Inventory, Secret, ServiceManager};
use anyhow::Result;

pub(super) fn linux_files(
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
