//! The linked sites: each site's broker and its shovel or federation link, then the
//! link read back until it runs.

use super::Executor;
use crate::facts;
use crate::inventory::{Broker, Inventory};
use crate::platform::Probe;
use crate::rabbitmq::api;
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

/// How long apply waits for a shovel or federation link to run.
const LINK_WAIT_SECS: u64 = 60;

/// What a site's link reports: shovel status on the site's broker, federation link
/// status on the central node.
pub struct LinkState {
    pub name: String,
    pub running: bool,
    /// Its state, and RabbitMQ's reason when it is not running.
    pub text: String,
    /// Who connects to whom (for the fix in a message).
    pub from: String,
    pub to: String,
    pub port: u16,
}

/// The host whose broker runs site `si`'s link: the site for a shovel, the central
/// host for federation (the downstream pulls).
pub fn link_runner(inv: &Inventory, si: usize) -> usize {
    match inv.sites[si].link {
        crate::inventory::Link::Shovel => inv.sites[si].host,
        _ => inv.central_index(),
    }
}

/// Reads the state of site `si`'s link through `p`, the connection to the host
/// that runs it (`link_runner`).
pub fn link_state(inv: &Inventory, si: usize, p: &mut dyn Probe) -> Result<LinkState> {
    let site = &inv.sites[si];
    let sh = &inv.hosts[site.host];
    let central = inv.central();
    let name = crate::inventory::link_name(&sh.name);
    let vhost = &inv.cluster.vhost;
    let describe = |state: &str, why: Option<&serde_json::Value>| match why {
        Some(w) if !w.is_null() => format!(
            "{state}: {}",
            w.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| w.to_string())
        ),
        _ => state.to_string(),
    };
    match site.link {
        crate::inventory::Link::Shovel => {
            let (port, creds) = facts::node_api(p, inv, site.host)?;
            let all: Vec<api::ShovelStatus> = api::get(p, port, &creds, "/api/shovels")?;
            let me = all.iter().find(|x| x.name == name && &x.vhost == vhost);
            Ok(LinkState {
                running: me.is_some_and(|x| x.state == "running"),
                text: me
                    .map(|x| describe(&x.state, x.reason.as_ref()))
                    .unwrap_or_else(|| "not reported".into()),
                name,
                from: sh.name.clone(),
                to: central.name.clone(),
                port: crate::render::definitions::link_port(inv, inv.central_index(), site.host),
            })
        }
        _ => {
            let (port, creds) = facts::node_api(p, inv, inv.central_index())?;
            let all: Vec<api::FederationLink> = api::get(p, port, &creds, "/api/federation-links")?;
            let mine: Vec<&api::FederationLink> = all
                .iter()
                .filter(|x| x.upstream == name && &x.vhost == vhost)
                .filter(|x| x.exchange.as_deref() == Some(site.exchange.as_str()))
                .collect();
            Ok(LinkState {
                running: !mine.is_empty() && mine.iter().all(|x| x.status == "running"),
                text: mine
                    .first()
                    .map(|x| describe(&x.status, x.error.as_ref()))
                    .unwrap_or_else(|| "not reported".into()),
                name,
                from: central.name.clone(),
                to: sh.name.clone(),
                port: crate::render::definitions::link_port(inv, site.host, site.host),
            })
        }
    }
}

impl<'a> Executor<'a> {
    /// Every linked site's broker (its exchange, queue, users and link), then each
    /// link read back until it runs.
    pub(super) fn links(&mut self) -> Result<()> {
        let brokers: Vec<Broker> = self
            .inv
            .brokers()
            .into_iter()
            .filter(|b| *b != Broker::Cluster)
            .collect();
        if brokers.is_empty() {
            return Ok(());
        }
        for &b in &brokers {
            crate::interrupt::checkpoint()?;
            self.cluster_ops(b, &|_, _| true, false)?;
        }
        for b in brokers {
            let Broker::Site(si) = b else { continue };
            self.await_link(si)?;
        }
        Ok(())
    }

    /// Waits until the link of site `si` runs (shovel: as its site's broker reports
    /// it; federation: as the central node does).
    fn await_link(&mut self, si: usize) -> Result<()> {
        let inv = self.inv;
        let site = &inv.sites[si];
        let host = inv.hosts[site.host].name.clone();
        let deadline = Instant::now() + Duration::from_secs(LINK_WAIT_SECS);
        loop {
            crate::interrupt::checkpoint()?;
            let runner = link_runner(inv, si);
            let state = link_state(inv, si, &mut *self.conns[runner])?;
            if state.running {
                self.did(&host, format!("{} {} running", site.link, state.name));
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} {} of site {host} is not running after {LINK_WAIT_SECS} s ({}); it is set up and RabbitMQ retries it every {} s: check that {} reaches {} on port {} (AMQP, or AMQPS to a TLS host), then rerun",
                    site.link,
                    state.name,
                    state.text,
                    crate::render::definitions::LINK_RECONNECT_DELAY,
                    state.from,
                    state.to,
                    state.port
                );
            }
            self.progress.host(
                &host,
                &format!("waiting for {} {}: {}", site.link, state.name, state.text),
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
