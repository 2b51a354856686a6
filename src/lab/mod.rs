//! `warren lab`: real hosts on one Linux machine, so warren always has something real
//! to run against. Each host is a network namespace on one bridge, with its own
//! hostname (UTS namespace), its own /etc/hosts, /etc/hostname, /etc/rabbitmq, /etc/haproxy,
//! /var/lib/rabbitmq and /var/log/rabbitmq (bind mounts in a private mount namespace)
//! and /run (a tmpfs), an sshd that accepts only the lab's key, and Debian's
//! rabbitmq-server started as on a freshly installed server: standalone, package
//! defaults, its own random cookie.
//!
//! State lives in `./lab` (the hosts' folders, the SSH key, `inventory.toml`) and in
//! `/run/warren-lab` (which folder the running lab belongs to); a named lab
//! (`--name NAME`, `net.rs` has its names) in `./lab-NAME` and `/run/warren-lab.NAME`,
//! so labs run side by side. `host.rs` builds a host, `reset.rs` makes a running
//! lab's hosts fresh again in place, `inventory.rs` writes the lab's inventory. Lab hosts use the
//! `direct` service manager, except the central host of `lab up --systemd`, which
//! boots systemd as its init (`nspawn.rs`) and runs RabbitMQ as its service.

mod host;
mod inventory;
mod net;
mod nspawn;
mod reset;
mod sys;

pub use inventory::{extend_inventory, lab_inventory};

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use net::{LabNet, BRIDGE, LINK_PREFIX, NETNS_PREFIX, SUBNET};

/// Records which folder the running default lab belongs to (a named lab's marker is
/// `/run/warren-lab.NAME`). /run is emptied on reboot, as are namespaces, so the two
/// cannot disagree across a reboot.
const MARKER: &str = "/run/warren-lab";
/// Present in a lab folder; `down` removes only folders that carry it.
const FOLDER_MARK: &str = ".warren-lab";

pub struct Lab {
    dir: PathBuf,
    net: LabNet,
}

/// One lab host: index 0 is the central host, 1.. the sites.
#[derive(Debug, Clone)]
pub struct LabHost {
    pub name: String,
    pub address: String,
    pub netns: String,
    pub link: String,
    /// Boots systemd as its init, RabbitMQ as `rabbitmq-server.service`
    /// (`lab up --systemd`, the central host only).
    pub systemd: bool,
}

impl LabHost {
    /// Host number `index` of the default lab.
    pub fn new(index: usize) -> LabHost {
        LabHost::of(&LabNet::default_lab(), index)
    }

    /// Host number `index` of the lab whose network is `net`.
    pub fn of(net: &LabNet, index: usize) -> LabHost {
        let name = if index == 0 {
            "central".to_string()
        } else {
            format!("site{index}")
        };
        LabHost {
            address: format!("{}.{}", net.subnet, 10 + index),
            netns: net.netns(&name),
            link: net.link(index, &name),
            name,
            systemd: false,
        }
    }
}

/// What a lab folder's mark records: its size, and whether its central host runs
/// systemd.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Mark {
    hosts: usize,
    systemd: bool,
}

impl Mark {
    fn read(dir: &Path) -> Mark {
        let text = std::fs::read_to_string(dir.join(FOLDER_MARK)).unwrap_or_default();
        let mut m = Mark::default();
        for line in text.lines() {
            match line.trim().split_once('=') {
                Some(("hosts", n)) => m.hosts = n.parse().unwrap_or(0),
                Some(("systemd", v)) => m.systemd = v == "central",
                _ => {}
            }
        }
        m
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let mut s = format!("hosts={}\n", self.hosts);
        if self.systemd {
            s.push_str("systemd=central\n");
        }
        std::fs::write(dir.join(FOLDER_MARK), s)?;
        Ok(())
    }
}

impl Lab {
    /// The lab called `name` (the default lab without one), whose folder is `./lab`
    /// (`./lab-NAME` for a named lab).
    pub fn here(name: Option<&str>) -> Result<Lab> {
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        Lab::at(&cwd, name)
    }

    /// The lab called `name` whose folder is in `parent`.
    pub fn at(parent: &Path, name: Option<&str>) -> Result<Lab> {
        let folder = match name {
            None => "lab".to_string(),
            Some(n) => format!("lab-{n}"),
        };
        Ok(Lab {
            dir: parent.join(folder),
            net: LabNet::of(name)?,
        })
    }

    /// The file in /run that names the folder this lab runs from.
    fn marker(&self) -> PathBuf {
        match &self.net.name {
            None => PathBuf::from(MARKER),
            Some(n) => PathBuf::from(format!("{MARKER}.{n}")),
        }
    }

    /// The folder the lab of this name runs from, as its marker names it.
    fn running_from(&self) -> Option<PathBuf> {
        std::fs::read_to_string(self.marker())
            .ok()
            .map(PathBuf::from)
    }

    /// When this lab runs from its folder: how many hosts it has, and whether its
    /// central host runs systemd.
    pub fn running(&self) -> Option<(usize, bool)> {
        let mark = (self.running_from()? == self.dir).then(|| Mark::read(&self.dir))?;
        Some((mark.hosts, mark.systemd))
    }

    /// `lab up` or `lab up --name NAME`, for messages.
    fn command(&self, verb: &str) -> String {
        match &self.net.name {
            None => format!("warren lab {verb}"),
            Some(n) => format!("warren lab {verb} --name {n}"),
        }
    }

    fn host_dir(&self, h: &LabHost) -> PathBuf {
        self.dir.join("hosts").join(&h.name)
    }

    /// The lab's hosts, `size` of them, as the folder's mark describes them.
    fn hosts(&self, size: usize) -> Vec<LabHost> {
        let systemd = Mark::read(&self.dir).systemd;
        (0..size)
            .map(|i| LabHost {
                systemd: systemd && i == 0,
                ..LabHost::of(&self.net, i)
            })
            .collect()
    }

    fn preflight() -> Result<()> {
        if !cfg!(target_os = "linux") {
            bail!("the lab needs Linux network namespaces; run warren lab on a Linux machine");
        }
        if !sys::is_root() {
            bail!("the lab creates network namespaces and bridges, which needs root; run it with sudo");
        }
        for (tool, package) in [
            ("ip", "iproute2"),
            ("unshare", "util-linux"),
            ("ssh-keygen", "openssh-client"),
            ("sshd", "openssh-server"),
            ("rabbitmq-server", "rabbitmq-server"),
        ] {
            let found = which::which(tool).is_ok()
                || Path::new("/usr/sbin").join(tool).exists()
                || Path::new("/sbin").join(tool).exists();
            if !found {
                bail!("{tool} is not installed; install the {package} package (make demo and make test do it)");
            }
        }
        if !sys::run_quiet("ip", &["netns", "list"]) {
            bail!("this machine refuses network namespaces (`ip netns list` failed); run the lab on a machine or VM that allows them");
        }
        Ok(())
    }

    /// Builds the lab, `wanted` hosts; with `systemd`, its central host boots systemd.
    pub fn up(&self, wanted: usize, systemd: bool) -> Result<()> {
        Self::preflight()?;
        if systemd {
            nspawn::preflight()?;
        }
        if wanted < 2 {
            bail!("--hosts {wanted}: a lab needs a central host and at least one site; use --hosts 2 or more");
        }
        if wanted > 50 {
            bail!("--hosts {wanted}: the lab's subnet and this machine hold at most 50 hosts; use fewer");
        }
        let marker = self.marker();
        let ours = self.running_from();
        let mut mark = Mark::default();
        let existing = if ours.as_deref() == Some(self.dir.as_path()) {
            mark = Mark::read(&self.dir);
            if systemd && !mark.systemd && mark.hosts > 0 {
                bail!(
                    "lab up --systemd: the running lab's central host runs without systemd; run {}, then {} --systemd",
                    self.command("down"),
                    self.command("up")
                );
            }
            if !systemd && mark.systemd {
                eprintln!(
                    "lab: central runs systemd, as when the lab was built (lab up --systemd)"
                );
            }
            mark.hosts
        } else {
            // Another folder's lab, or what a killed run or an earlier session left:
            // namespaces, links and mounts outlive the processes that made them, and
            // a container's cgroups outlive the container.
            let mut removed = nspawn::clear_all(&self.net.netns_prefix);
            removed.extend(self.net.clear_all());
            if !removed.is_empty() {
                eprintln!(
                    "lab: cleared what an earlier lab left behind: {}",
                    removed.join(", ")
                );
            }
            if let Some(old) = ours.filter(|d| d.join(FOLDER_MARK).exists()) {
                std::fs::remove_dir_all(&old).ok();
            }
            if self.dir.exists() {
                if !self.dir.join(FOLDER_MARK).exists() && self.dir.read_dir()?.next().is_some() {
                    bail!(
                        "{} exists and is not a warren lab; move it away and rerun",
                        self.dir.display()
                    );
                }
                std::fs::remove_dir_all(&self.dir)
                    .with_context(|| format!("cannot clear {}", self.dir.display()))?;
            }
            0
        };
        let size = wanted.max(existing);
        mark.hosts = size;
        mark.systemd |= systemd;
        if wanted < existing {
            eprintln!("lab: it has {existing} hosts already; `lab up` never removes hosts (lab down, then up, to shrink)");
        }
        std::fs::create_dir_all(self.dir.join("hosts"))
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        std::fs::write(&marker, self.dir.to_string_lossy().as_bytes())
            .with_context(|| format!("cannot write {}", marker.display()))?;
        if mark.systemd {
            nspawn::make_run_dir()?;
        }
        mark.write(&self.dir)?;
        self.client_key()?;
        self.net.ensure_bridge()?;

        let hosts = self.hosts(size);
        let mut started = Vec::new();
        for h in &hosts {
            if self.healthy(h) {
                eprintln!("lab: {} ({}) is running; left alone", h.name, h.address);
                continue;
            }
            eprintln!("lab: building {} ({})", h.name, h.address);
            self.build_host(h, &hosts)?;
            started.push(h.clone());
        }
        self.write_known_hosts(&hosts)?;
        self.write_inventory(&hosts)?;
        wait_for_rabbitmq(self, &started)?;
        println!(
            "lab: {} hosts up; inventory {}",
            hosts.len(),
            self.dir.join("inventory.toml").display()
        );
        for h in &hosts {
            let init = if h.systemd { "  (systemd)" } else { "" };
            println!(
                "  {:<10} {:<14} ssh root@{}{init}",
                h.name, h.address, h.address
            );
        }
        Ok(())
    }

    pub fn down(&self) -> Result<()> {
        Self::preflight()?;
        let marker = self.marker();
        let mut folders: Vec<PathBuf> = self.running_from().into_iter().collect();
        folders.push(self.dir.clone());
        // The containers first: each shuts its systemd down in order, and leaves
        // their namespaces to be deleted below.
        let mut removed = nspawn::clear_all(&self.net.netns_prefix);
        removed.extend(self.net.clear_all());
        for f in folders {
            if f.join(FOLDER_MARK).exists() {
                std::fs::remove_dir_all(&f)
                    .with_context(|| format!("cannot remove {}", f.display()))?;
                removed.push(format!("folder {}", f.display()));
            }
        }
        if std::fs::remove_file(&marker).is_ok() {
            removed.push(marker.display().to_string());
        }
        // `ip netns add` bind-mounts /run/netns onto itself the first time; once no
        // namespace is left in it, take that mount away too.
        let netns_dir = Path::new("/run/netns");
        if netns_dir.exists()
            && std::fs::read_dir(netns_dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
        {
            sys::run_quiet("umount", &["/run/netns"]);
            if std::fs::remove_dir(netns_dir).is_ok() {
                removed.push("/run/netns".to_string());
            }
        }
        if removed.is_empty() {
            println!("lab: nothing to remove");
        } else {
            println!("lab: removed {}", removed.join(", "));
        }
        Ok(())
    }

    pub fn status(&self) -> Result<()> {
        let Some(dir) = self.running_from() else {
            println!(
                "lab: no such lab is running on this machine ({} builds one)",
                self.command("up")
            );
            return Ok(());
        };
        let lab = Lab {
            dir,
            net: self.net.clone(),
        };
        let size = Mark::read(&lab.dir).hosts;
        println!("lab: {} ({} hosts)", lab.dir.display(), size);
        println!(
            "  {:<10} {:<14} {:<8} {:<8} rabbitmq",
            "host", "address", "init", "sshd"
        );
        for h in lab.hosts(size) {
            let init = if h.systemd { "systemd" } else { "none" };
            let sshd = if lab.healthy(&h) { "running" } else { "down" };
            let amqp = if port_open(&h.address, 5672) {
                "answering on 5672"
            } else {
                "not answering"
            };
            println!(
                "  {:<10} {:<14} {:<8} {:<8} {}",
                h.name, h.address, init, sshd, amqp
            );
        }
        Ok(())
    }
}

fn port_open(address: &str, port: u16) -> bool {
    let Ok(addr) = format!("{address}:{port}").parse::<SocketAddr>() else {
        return false;
    };
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Waits until RabbitMQ answers on every host in `hosts` (its AMQP listener opens at
/// the end of its boot); on a systemd host, until its systemd has finished booting
/// too (ssh.service and rabbitmq-server.service started), failing at once with the
/// container's last console lines if systemd-nspawn exits.
fn wait_for_rabbitmq(lab: &Lab, hosts: &[LabHost]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut waiting: Vec<&LabHost> = hosts.iter().collect();
    while !waiting.is_empty() {
        for h in waiting.iter().filter(|h| h.systemd) {
            let dir = lab.host_dir(h);
            let pid = std::fs::read_to_string(dir.join(nspawn::PID_FILE))?;
            nspawn::check_alive(pid.trim().parse()?, &dir, &h.name)?;
        }
        waiting.retain(|h| {
            let booted =
                !h.systemd || nspawn::running(&lab.host_dir(h)).is_some_and(nspawn::booted);
            !(booted && port_open(&h.address, 5672))
        });
        if waiting.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let names: Vec<&str> = waiting.iter().map(|h| h.name.as_str()).collect();
            bail!(
                "RabbitMQ did not start on {} within 180 s; see lab/hosts/NAME/var-log-rabbitmq/ and boot.log, then rerun warren lab up",
                names.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().with_context(|| {
        format!(
            "{} is not valid UTF-8; run the lab from another folder",
            p.display()
        )
    })
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_systemd_lab_says_so_in_its_mark_and_its_inventory() {
        let dir = std::env::temp_dir().join(format!("warren-mark-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A mark written before `--systemd` existed still reads.
        std::fs::write(dir.join(FOLDER_MARK), "hosts=5\n").unwrap();
        assert_eq!(
            Mark::read(&dir),
            Mark {
                hosts: 5,
                systemd: false
            }
        );
        let mark = Mark {
            hosts: 2,
            systemd: true,
        };
        mark.write(&dir).unwrap();
        assert_eq!(Mark::read(&dir), mark);
        let hosts = Lab {
            dir: dir.clone(),
            net: LabNet::default_lab(),
        }
        .hosts(2);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(hosts[0].systemd && !hosts[1].systemd);
        let inv = crate::inventory::parse(
            &lab_inventory(&hosts),
            std::path::Path::new("inventory.toml"),
        )
        .unwrap();
        assert_eq!(
            inv.hosts[0].service,
            crate::inventory::ServiceManager::Systemd
        );
        assert_eq!(
            inv.hosts[1].service,
            crate::inventory::ServiceManager::Direct
        );
    }
}
