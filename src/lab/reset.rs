//! `warren lab reset`: a fresh cluster in seconds. Every host's processes stop but its
//! sshd, its RabbitMQ folders become a fresh install's again, its /run is emptied as by
//! a reboot, and its node starts standalone with a new cookie; the lab folder gets back
//! the inventory `lab up` wrote. Namespaces, links, sshd and keys stay, which is what
//! makes it quicker than down and up. A host that is not healthy, or that boots
//! systemd, is rebuilt instead.

use super::host::{fresh_files, remove, EMPTY_RUN};
use super::{net, sys, wait_for_rabbitmq, Lab, LabHost};
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// What `lab up` puts at the top of a lab folder; `reset` removes everything else
/// (the cookie warren created beside the inventory, files a run or a test left).
const MADE_BY_UP: [&str; 8] = [
    super::FOLDER_MARK,
    "hosts",
    "id_ed25519",
    "id_ed25519.pub",
    "authorized_keys",
    "known_hosts",
    "inventory.toml",
    "secrets",
];

impl Lab {
    /// Makes every host of this running lab a freshly installed server again, each on
    /// a thread of its own, and waits until every node answers.
    pub fn reset(&self) -> Result<()> {
        Self::preflight()?;
        let Some((size, _)) = self.running() else {
            bail!(
                "no lab runs from {}; build one with {}",
                self.dir.display(),
                self.command("up")
            );
        };
        let hosts = self.hosts(size);
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = hosts
                .iter()
                .map(|h| {
                    let hosts = &hosts;
                    s.spawn(move || {
                        if !h.systemd && self.healthy(h) {
                            self.reset_host(h, hosts)
                        } else {
                            eprintln!("lab: rebuilding {} ({})", h.name, h.address);
                            self.build_host(h, hosts)
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|j| j.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for (h, r) in hosts.iter().zip(results) {
            r.with_context(|| format!("cannot reset lab host {}", h.name))?;
        }
        self.write_known_hosts(&hosts)?;
        self.clear_folder()?;
        // The inventory as `lab up` writes it, the tests' and the operator's edits gone.
        std::fs::remove_file(self.dir.join("inventory.toml")).ok();
        self.write_inventory(&hosts)?;
        wait_for_rabbitmq(self, &hosts)?;
        println!(
            "lab: {} hosts reset, each a freshly installed server; inventory {}",
            hosts.len(),
            self.dir.join("inventory.toml").display()
        );
        Ok(())
    }

    /// Host `h`, whose sshd runs, made a freshly installed server again.
    fn reset_host(&self, h: &LabHost, all: &[LabHost]) -> Result<()> {
        let dir = self.host_dir(h);
        let sshd: u32 = std::fs::read_to_string(dir.join("sshd.pid"))?
            .trim()
            .parse()
            .context("sshd.pid")?;
        // RabbitMQ, epmd, HAProxy, and whatever a session left running. The node
        // need not stop gracefully: its data goes next.
        net::stop_processes(&h.netns, &[sshd], Duration::ZERO);
        // Rules a test added to cut the host off.
        for table in ["filter", "nat", "mangle"] {
            sys::run_quiet(
                "ip",
                &["netns", "exec", &h.netns, "iptables", "-t", table, "-F"],
            );
        }
        fresh_files(&dir, h, all)?;
        // In the mount and UTS namespaces sshd runs in, as the host's boot did.
        sys::run_logged(
            "nsenter",
            &[
                "-t",
                &sshd.to_string(),
                "-m",
                "-u",
                "-n",
                "--",
                "sh",
                "-c",
                &format!("{}cd / && rabbitmq-server -detached", EMPTY_RUN),
            ],
            &dir.join("boot.log"),
        )
        .with_context(|| format!("cannot start RabbitMQ on lab host {}", h.name))
    }

    /// Removes from the lab folder what `lab up` did not put there.
    fn clear_folder(&self) -> Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let p = entry?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if MADE_BY_UP.contains(&name) {
                continue;
            }
            remove(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
        Ok(())
    }
}
