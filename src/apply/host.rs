//! One host's steps: leftovers, settings, files, the service's stop and start (or
//! reinstall), plugins; and a node's rolling upgrade.

use super::{Ctx, Executor, WEIGHT_NODE, WEIGHT_STOP};
use crate::inventory::Host;
use crate::plan::{HostPlan, Service};
use crate::platform::Transport;
use anyhow::{bail, Result};
use std::time::Duration;

impl<'a> Ctx<'a> {
    /// One host's files, settings and service, as its plan says.
    pub(super) fn host(&self, i: usize, t: &mut dyn Transport, hp: &HostPlan) -> Result<()> {
        self.host_then(i, t, hp, &mut |_| Ok(()))
    }

    /// `host`, with `before_start` run between the files and the node's start (when
    /// the plan starts it).
    pub(super) fn host_then(
        &self,
        i: usize,
        t: &mut dyn Transport,
        hp: &HostPlan,
        before_start: &mut dyn FnMut(&mut dyn Transport) -> Result<()>,
    ) -> Result<()> {
        let h = &self.inv.hosts[i];
        for l in &hp.leftovers {
            let script = t.platform().remove_file(l);
            let out = t.run(&script, Duration::from_secs(30))?;
            if !out.ok() {
                bail!("{}: deleting {l} failed: {}", h.name, out.last_line());
            }
            self.note(format!(
                "{}: deleted {l}, left by an interrupted run",
                h.name
            ));
        }
        for c in &hp.settings {
            self.progress
                .host(&h.name, &format!("setting {}", c.setting.key));
            let script = t.platform().apply_setting(&c.setting);
            let out = t.run(&script, Duration::from_secs(120))?;
            if !out.ok() {
                bail!(
                    "{}: setting {} failed: {}",
                    h.name,
                    c.setting.key,
                    out.last_line()
                );
            }
            self.note(format!("{}: set {}", h.name, c.setting.key));
        }
        if let Service::Restart { reasons, .. } = &hp.service {
            self.progress.host(
                &h.name,
                &format!("stopping RabbitMQ ({})", reasons.join(", ")),
            );
            crate::platform::stop(t, hp.manager)?;
            // The stop is a part of the restart's weight: the bar moves with it.
            self.progress.advance(WEIGHT_STOP);
        }
        self.write_files(h, t, hp)?;
        let wrote: Vec<&str> = hp
            .files
            .iter()
            .map(|f| crate::util::file_name(&f.path))
            .collect();
        match &hp.service {
            Service::AwaitBoot => {
                self.progress
                    .host(&h.name, "waiting for RabbitMQ to finish booting");
                crate::platform::await_startup(t, crate::platform::START_TIMEOUT)?;
                self.did(&h.name, "RabbitMQ finished booting".into(), WEIGHT_NODE);
            }
            Service::StartApp => {
                self.progress
                    .host(&h.name, "starting the rabbit application");
                crate::platform::start_app(t)?;
                self.did(
                    &h.name,
                    "started the rabbit application".into(),
                    WEIGHT_NODE,
                );
            }
            Service::Leave if wrote.is_empty() => {}
            Service::Leave => {
                self.did(
                    &h.name,
                    format!("wrote {} (no restart needed)", wrote.join(", ")),
                    1,
                );
            }
            Service::Start | Service::Restart { .. } => {
                before_start(t)?;
                let daemon_reload = hp.daemon_reload();
                // Starts are capped over all hosts (see `platform::start_slot`); the
                // seed, which every join waits for, never queues for a slot.
                let _slot = (i != self.inv.central_index()).then(crate::platform::start_slot);
                if let Some(up) = hp.upgrade.as_ref().filter(|_| hp.service == Service::Start) {
                    // A node that is down is upgraded before it starts.
                    self.install(h, t, up)?;
                }
                let verb = if !hp.reinstall.is_empty() || self.reinstalls_after(t, hp) {
                    self.progress.host(
                        &h.name,
                        &format!(
                            "reinstalling the RabbitMQ service ({})",
                            hp.reinstall.join(", ")
                        ),
                    );
                    crate::platform::reinstall(t, hp.manager)?;
                    "reinstalled the service and started"
                } else {
                    self.progress.host(&h.name, "starting RabbitMQ");
                    crate::platform::start(t, hp.manager, daemon_reload)?;
                    if hp.service == Service::Start {
                        "started"
                    } else {
                        "restarted"
                    }
                };
                if hp
                    .files
                    .iter()
                    .any(|f| f.effect == crate::render::Effect::StopWriteStart && f.restarts)
                {
                    // The CLI must read the cookie warren wrote, or every later
                    // command on this host would fail to reach the node.
                    crate::platform::check_cookie_source(t)?;
                }
                let weight = match hp.service {
                    Service::Restart { .. } => WEIGHT_NODE - WEIGHT_STOP,
                    _ => WEIGHT_NODE,
                };
                if wrote.is_empty() {
                    self.did(&h.name, format!("{verb} RabbitMQ"), weight);
                } else {
                    self.did(
                        &h.name,
                        format!("wrote {}; {verb} RabbitMQ", wrote.join(", ")),
                        weight,
                    );
                }
                if hp.service != Service::Start {
                    self.report.lock().unwrap().restarted.push(h.name.clone());
                }
            }
        }
        if hp.revive {
            self.progress
                .host(&h.name, "reviving the node from maintenance mode");
            crate::platform::revive(t)?;
            self.did(&h.name, "revived from maintenance mode".into(), 1);
        }
        if !hp.start_plugins.is_empty() {
            let list = hp.start_plugins.join(", ");
            self.progress
                .host(&h.name, &format!("starting plugins {list}"));
            crate::platform::start_plugins(t, &hp.start_plugins)?;
            self.did(&h.name, format!("started plugins {list} again"), 1);
        }
        Ok(())
    }

    /// Writes the host's changed files, as its plan has them.
    fn write_files(&self, h: &Host, t: &mut dyn Transport, hp: &HostPlan) -> Result<()> {
        for f in &hp.files {
            self.progress.host(&h.name, &format!("writing {}", f.path));
            t.upload(
                &f.path,
                f.content.bytes(),
                f.owner.as_deref(),
                f.mode,
                f.in_place,
            )?;
        }
        Ok(())
    }

    /// Installs a node's upgrade (its node stopped).
    fn install(
        &self,
        h: &Host,
        t: &mut dyn Transport,
        up: &crate::plan::upgrade::NodeUpgrade,
    ) -> Result<()> {
        if up.install == crate::platform::Install::default() {
            return Ok(());
        }
        self.progress
            .host(&h.name, &format!("installing ({})", up.changes.join("; ")));
        crate::platform::install(t, &up.install)?;
        self.note(format!("{}: installed {}", h.name, up.changes.join("; ")));
        Ok(())
    }

    /// Whether the node starts through a service reinstall after its upgrade: the
    /// Windows service runs the Erlang and RabbitMQ it was installed with.
    fn reinstalls_after(&self, t: &mut dyn Transport, hp: &HostPlan) -> bool {
        hp.upgrade
            .as_ref()
            .is_some_and(|up| up.install != crate::platform::Install::default())
            && t.platform().reinstall().is_some()
    }

    /// One node's rolling upgrade: drained (maintenance mode), stopped, its files
    /// written, the new versions installed, started (Windows: the service
    /// reinstalled), revived. The caller waits for the queue copies around it and
    /// gives the masters back.
    pub(super) fn upgrade(&self, i: usize, t: &mut dyn Transport, hp: &HostPlan) -> Result<()> {
        let h = &self.inv.hosts[i];
        let Some(up) = &hp.upgrade else {
            return Ok(());
        };
        self.progress.host(
            &h.name,
            "draining (maintenance mode: clients disconnected, masters handed over)",
        );
        crate::platform::drain(t)?;
        self.note(format!(
            "{}: drained {} (maintenance mode)",
            h.name, hp.node
        ));
        self.progress
            .host(&h.name, "stopping RabbitMQ for its upgrade");
        crate::platform::stop(t, hp.manager)?;
        // From here the node must be started again whatever fails: a rerun finds it
        // down and brings it up (installed or not) before anything else.
        let installed = self
            .write_files(h, t, hp)
            .and_then(|_| self.install(h, t, up));
        let _slot = (i != self.inv.central_index()).then(crate::platform::start_slot);
        if let Err(e) = installed {
            // Not left stopped: started again on what it has (the old version, when
            // apt or the installer failed), and the run stops with the reason.
            self.progress
                .host(&h.name, "starting RabbitMQ again after a failed upgrade");
            let again = if t.platform().reinstall().is_some() {
                crate::platform::reinstall(t, hp.manager)
            } else {
                crate::platform::start(t, hp.manager, hp.daemon_reload())
            };
            let _ = again.and_then(|_| crate::platform::revive(t));
            return Err(e.context(format!(
                "{}: the upgrade was not installed; RabbitMQ was started again on what the host has",
                h.name
            )));
        }
        if !hp.reinstall.is_empty() || self.reinstalls_after(t, hp) {
            self.progress
                .host(&h.name, "reinstalling the RabbitMQ service and starting it");
            crate::platform::reinstall(t, hp.manager)?;
        } else {
            self.progress.host(&h.name, "starting RabbitMQ");
            crate::platform::start(t, hp.manager, hp.daemon_reload())?;
        }
        if hp
            .files
            .iter()
            .any(|f| f.effect == crate::render::Effect::StopWriteStart && f.restarts)
        {
            crate::platform::check_cookie_source(t)?;
        }
        self.progress
            .host(&h.name, "reviving (out of maintenance mode)");
        crate::platform::revive(t)?;
        self.did(
            &h.name,
            format!("upgraded: {}", up.changes.join("; ")),
            WEIGHT_NODE,
        );
        self.report.lock().unwrap().restarted.push(h.name.clone());
        Ok(())
    }
}

impl<'a> Executor<'a> {
    /// One host's step alone (the transcripts drive hosts one by one).
    pub fn host(&mut self, i: usize, hp: &HostPlan) -> Result<()> {
        let ctx = Ctx {
            inv: self.inv,
            progress: self.progress,
            force: self.force,
            report: &self.report,
        };
        ctx.host(i, &mut *self.conns[i], hp)
    }

    /// One host's upgrade step alone (the transcripts drive hosts one by one).
    pub fn upgrade_host(&mut self, i: usize, hp: &HostPlan) -> Result<()> {
        let ctx = Ctx {
            inv: self.inv,
            progress: self.progress,
            force: self.force,
            report: &self.report,
        };
        ctx.upgrade(i, &mut *self.conns[i], hp)
    }
}
