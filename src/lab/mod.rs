//! `warren lab`: real hosts on one Linux machine, so warren always has something real
//! to run against. Each host is a network namespace on one bridge, with its own
//! hostname (UTS namespace), its own /etc/hosts, /etc/hostname, /etc/rabbitmq, /etc/haproxy,
//! /var/lib/rabbitmq and /var/log/rabbitmq (bind mounts in a private mount namespace),
//! an sshd that accepts only the lab's key, and Debian's rabbitmq-server started as on a
//! freshly installed server: standalone, package defaults, its own random cookie.
//!
//! State lives in `./lab` (the hosts' folders, the SSH key, `inventory.toml`) and in
//! `/run/warren-lab` (which folder the running lab belongs to). Lab hosts use the
//! `direct` service manager, except the central host of `lab up --systemd`, which
//! boots systemd as its init (`nspawn.rs`) and runs RabbitMQ as its service.

mod net;
mod nspawn;
mod reset;
mod sys;

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
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
        let net = LabNet::of(name)?;
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        let folder = match name {
            None => "lab".to_string(),
            Some(n) => format!("lab-{n}"),
        };
        Ok(Lab {
            dir: cwd.join(folder),
            net,
        })
    }

    /// The file in /run that names the folder this lab runs from.
    fn marker(&self) -> PathBuf {
        match &self.net.name {
            None => PathBuf::from(MARKER),
            Some(n) => PathBuf::from(format!("{MARKER}.{n}")),
        }
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
        let ours = std::fs::read_to_string(&marker).ok().map(PathBuf::from);
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

    /// A host is healthy when its namespace exists and its sshd runs inside it; a
    /// systemd host when its container's systemd runs in its namespace and its sshd
    /// answers.
    fn healthy(&self, h: &LabHost) -> bool {
        if h.systemd {
            let init = nspawn::running(&self.host_dir(h)).and_then(nspawn::leader);
            return match init {
                Some(pid) => {
                    net::netns_exists(&h.netns)
                        && net::pids_in(&h.netns).contains(&pid)
                        && port_open(&h.address, 22)
                }
                None => false,
            };
        }
        let pid = std::fs::read_to_string(self.host_dir(h).join("sshd.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        match pid {
            Some(pid) => net::netns_exists(&h.netns) && net::pids_in(&h.netns).contains(&pid),
            None => false,
        }
    }

    fn client_key(&self) -> Result<()> {
        let key = self.dir.join("id_ed25519");
        if !key.exists() {
            sys::run(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "warren-lab",
                    "-f",
                    path_str(&key)?,
                ],
            )?;
        }
        let public = std::fs::read_to_string(self.dir.join("id_ed25519.pub"))?;
        std::fs::write(self.dir.join("authorized_keys"), public)?;
        Ok(())
    }

    /// Builds `h` from nothing: any remains of it are removed first, so a host whose
    /// processes were killed comes back as a freshly installed server.
    fn build_host(&self, h: &LabHost, all: &[LabHost]) -> Result<()> {
        if let Some(pid) = nspawn::running(&self.host_dir(h)) {
            nspawn::stop(pid);
        }
        if net::netns_exists(&h.netns) {
            net::delete_namespace(&h.netns);
        }
        sys::run_quiet("ip", &["link", "del", &h.link]);
        let dir = self.host_dir(h);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        fresh_files(&dir, h, all)?;
        let host_key = dir.join("ssh_host_ed25519_key");
        sys::run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &h.name,
                "-f",
                path_str(&host_key)?,
            ],
        )?;
        let sshd_config = format!(
            "# sshd of lab host {name}, written by warren lab up\n\
             ListenAddress {addr}\n\
             Port 22\n\
             HostKey {key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {auth}\n\
             UsePAM no\n\
             PermitRootLogin prohibit-password\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             StrictModes no\n\
             PrintMotd no\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n",
            name = h.name,
            addr = h.address,
            key = host_key.display(),
            // A systemd host's sshd writes its pid inside, where the lab folder is
            // read-only (and the pid is its own PID namespace's).
            pid = if h.systemd {
                "/run/sshd.pid".to_string()
            } else {
                dir.join("sshd.pid").display().to_string()
            },
            auth = self.dir.join("authorized_keys").display(),
        );
        std::fs::write(dir.join("sshd_config"), sshd_config)?;
        // sshd's privilege-separation folder, normally made by systemd-tmpfiles.
        std::fs::create_dir_all("/run/sshd")?;

        self.net
            .create_host_network(&h.netns, &h.link, &h.address)?;
        if h.systemd {
            nspawn::write_seed(&dir, &dir.join("sshd_config"))?;
            nspawn::start(&h.name, &h.netns, &dir, &self.dir)
                .with_context(|| format!("cannot start lab host {}", h.name))?;
            return Ok(());
        }
        // Root's shell files as a fresh Debian install has them, not this machine's:
        // its root shell setup is no part of a server's and can stall every SSH
        // command (pyenv's init rehashes under a lock file at each login, and a
        // session killed meanwhile leaves the lock: every later login waits 60 s).
        for (file, default) in [("bashrc", "dot.bashrc"), ("profile", "dot.profile")] {
            let text =
                std::fs::read(Path::new("/usr/share/base-files").join(default)).unwrap_or_default();
            std::fs::write(dir.join(format!("root.{file}")), text)?;
        }
        let q = |p: &Path| shell_quote(&p.to_string_lossy());
        let script = format!(
            "set -e\n\
             hostname {name}\n\
             mount --bind {d}/hostname /etc/hostname\n\
             mount --bind {d}/hosts /etc/hosts\n\
             for f in bashrc profile; do if [ -e /root/.$f ]; then mount --bind {d}/root.$f /root/.$f; fi; done\n\
             mount --bind {d}/etc-rabbitmq /etc/rabbitmq\n\
             mount --bind {d}/var-lib-rabbitmq /var/lib/rabbitmq\n\
             mount --bind {d}/var-log-rabbitmq /var/log/rabbitmq\n\
             if [ -d /etc/haproxy ]; then mount --bind {d}/etc-haproxy /etc/haproxy; fi\n\
             {private}\
             /usr/sbin/sshd -f {d}/sshd_config\n\
             cd /\n\
             rabbitmq-server -detached\n",
            name = h.name,
            d = q(&dir),
            private = PRIVATE_RUN,
        );
        sys::run_logged(
            "ip",
            &[
                "netns",
                "exec",
                &h.netns,
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                &script,
            ],
            &dir.join("boot.log"),
        )
        .with_context(|| format!("cannot start lab host {}", h.name))?;
        Ok(())
    }

    fn write_known_hosts(&self, hosts: &[LabHost]) -> Result<()> {
        let mut out = String::new();
        for h in hosts {
            let public =
                std::fs::read_to_string(self.host_dir(h).join("ssh_host_ed25519_key.pub"))?;
            let mut parts = public.split_whitespace();
            let (kind, key) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            writeln!(out, "{},{} {kind} {key}", h.address, h.name)?;
        }
        std::fs::write(self.dir.join("known_hosts"), out)?;
        Ok(())
    }

    fn write_inventory(&self, hosts: &[LabHost]) -> Result<()> {
        let secrets = self.dir.join("secrets");
        std::fs::create_dir_all(&secrets)?;
        let producers: Vec<String> = hosts.iter().skip(1).map(|h| producer(&h.name)).collect();
        let users = ["admin", "backend"]
            .into_iter()
            .chain(producers.iter().map(String::as_str));
        for user in users {
            let file = secrets.join(format!("{user}.password"));
            if !file.exists() {
                crate::inventory::SecretRef::File(file)
                    .read_or_create_random()
                    .map_err(anyhow::Error::msg)?;
            }
        }
        let path = self.dir.join("inventory.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(existing) => extend_inventory(&existing, hosts)?,
            Err(_) => lab_inventory(hosts),
        };
        std::fs::write(&path, text)?;
        Ok(())
    }

    pub fn down(&self) -> Result<()> {
        Self::preflight()?;
        let marker = self.marker();
        let mut folders: Vec<PathBuf> = std::fs::read_to_string(&marker)
            .ok()
            .map(PathBuf::from)
            .into_iter()
            .collect();
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
        let ours = std::fs::read_to_string(self.marker())
            .ok()
            .map(PathBuf::from);
        let Some(dir) = ours else {
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

/// The inventory of the user's layout on lab hosts: the first host central, the
/// others sites, each with its own exchange and queue mirrored on the central host.
pub fn lab_inventory(hosts: &[LabHost]) -> String {
    let mut s = String::from(
        "# Written by `warren lab up`: the user's layout (sites with their own exchange and\n\
         # queue, a mirror of each on the central host) on the lab's hosts. Edit it freely:\n\
         # `lab up --hosts N` only appends the hosts it adds; `lab down` removes it.\n\n\
         [cluster]\n\
         name = \"lab\"\n\
         cookie = { file = \"erlang.cookie\" }\n\
         replication = \"mirrored\"\n\
         partition_handling = \"ignore\"\n\
         # A lost host is noticed in about 20 s, not Erlang's 60-75 s: the lab's tests\n\
         # cut hosts off on purpose.\n\
         net_ticktime = 20\n\
         plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\"]\n\
         join = \"cli\"\n\
         config_format = \"rabbitmq.conf\"\n\
         hosts_file = true\n\n\
         [[users]]\n\
         name = \"admin\"\n\
         password = { file = \"secrets/admin.password\" }\n\
         tags = [\"administrator\"]\n\
         permissions = [{ configure = \".*\", write = \".*\", read = \".*\" }]\n\n\
         # The backend reads every site queue and nothing else.\n\
         [[users]]\n\
         name = \"backend\"\n\
         password = { file = \"secrets/backend.password\" }\n\
         permissions = [{ configure = \"^$\", write = \"^$\", read = \"^site\\\\.[^.]+\\\\.data$\" }]\n",
    );
    for (i, h) in hosts.iter().enumerate() {
        s.push_str(&host_entry(h, i == 0));
    }
    s
}

/// A lab host's [[hosts]] table, and for a site its [[sites]] table.
fn host_entry(h: &LabHost, central: bool) -> String {
    let mut s = format!(
        "\n[[hosts]]\nname = \"{}\"\naddress = \"{}\"\nos = \"linux\"\ntransport = \"ssh\"\n\
         user = \"root\"\nkey = \"id_ed25519\"\nknown_hosts = \"known_hosts\"\n\
         role = \"{}\"\nservice = \"{}\"\n",
        h.name,
        h.address,
        if central { "central" } else { "site" },
        if h.systemd { "systemd" } else { "direct" }
    );
    if !central {
        s.push_str(&format!(
            "\n[[sites]]\nhost = \"{n}\"\nexchange = \"site.{n}\"\nqueue = \"site.{n}.data\"\n\n\
             # The site's producer publishes to its own exchange and reaches no other site.\n\
             [[users]]\nname = \"{p}\"\npassword = {{ file = \"secrets/{p}.password\" }}\n\
             site = \"{n}\"\n\
             permissions = [{{ configure = \"^$\", write = \"^site\\\\.{n}$\", read = \"^$\" }}]\n",
            n = h.name,
            p = producer(&h.name)
        ));
    }
    s
}

/// The lab's user for a site's producer.
fn producer(site: &str) -> String {
    format!("producer-{site}")
}

/// Appends the lab hosts that `existing` (an inventory's text) does not list yet.
pub fn extend_inventory(existing: &str, hosts: &[LabHost]) -> Result<String> {
    let parsed: toml::Value = toml::from_str(existing)
        .context("lab/inventory.toml is not valid TOML; fix it or delete it, then rerun")?;
    let listed: Vec<&str> = parsed
        .get("hosts")
        .and_then(|h| h.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|h| h.get("name").and_then(|n| n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut s = existing.to_string();
    for (i, h) in hosts.iter().enumerate() {
        if !listed.contains(&h.name.as_str()) {
            s.push_str(&host_entry(h, i == 0));
        }
    }
    Ok(s)
}

/// A host's own /run, as every server has: what a program keeps there (a pid file
/// such as HAProxy's, a lock) is then the host's, not shared with every other lab host,
/// or another lab's, on this machine. sshd needs its privilege-separation folder in it.
/// /tmp stays this machine's: the lab's own folder may be below it.
const PRIVATE_RUN: &str = "mount -t tmpfs -o mode=0755 warren-lab-run /run\n\
     mkdir -p /run/sshd /run/lock && chmod 1777 /run/lock\n";

/// Empties a host's /run (but sshd's folder), as a reboot would.
const EMPTY_RUN: &str =
    "find /run -mindepth 1 -maxdepth 1 ! -name sshd ! -name lock -exec rm -rf {} +\n";

/// Gives host `h` (its folder `dir`) the files of a freshly installed server: the
/// package's /etc/rabbitmq and /etc/haproxy files, empty data and log folders, its
/// /etc/hosts and /etc/hostname. The folders are emptied, not replaced: on a running
/// host they are the sources of its bind mounts.
fn fresh_files(dir: &Path, h: &LabHost, all: &[LabHost]) -> Result<()> {
    for sub in [
        "etc-rabbitmq",
        "var-lib-rabbitmq",
        "var-log-rabbitmq",
        "etc-haproxy",
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        for entry in std::fs::read_dir(&d)? {
            remove(&entry?.path())?;
        }
    }
    // A fresh install: the package's /etc/rabbitmq files, an empty data folder.
    for entry in std::fs::read_dir("/etc/rabbitmq").context("cannot read /etc/rabbitmq")? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(
                entry.path(),
                dir.join("etc-rabbitmq").join(entry.file_name()),
            )?;
        }
    }
    // HAProxy's package files, as on a host where it was just installed; warren
    // writes haproxy.cfg only on the balancer's host.
    if let Ok(entries) = std::fs::read_dir("/etc/haproxy") {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::copy(
                    entry.path(),
                    dir.join("etc-haproxy").join(entry.file_name()),
                )?;
            }
        }
    }
    // The management plugin from the first start, as most operators enable it
    // right after installing: a fresh node then answers warren's fact reading
    // through its API (guest, from localhost), with no Erlang VM started for it.
    std::fs::write(
        dir.join("etc-rabbitmq").join("enabled_plugins"),
        "[rabbitmq_management].\n",
    )?;
    for sub in ["etc-rabbitmq", "var-lib-rabbitmq", "var-log-rabbitmq"] {
        sys::run(
            "chown",
            &["-R", "rabbitmq:rabbitmq", path_str(&dir.join(sub))?],
        )?;
    }
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for other in all {
        writeln!(hosts, "{}\t{}", other.address, other.name)?;
    }
    std::fs::write(dir.join("hosts"), hosts)?;
    std::fs::write(dir.join("hostname"), format!("{}\n", h.name))?;
    Ok(())
}

/// Removes a file or a folder with everything in it.
fn remove(p: &Path) -> std::io::Result<()> {
    if p.is_dir() && !p.is_symlink() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
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
    fn growing_the_lab_keeps_the_operators_edits() {
        let five: Vec<LabHost> = (0..5).map(LabHost::new).collect();
        let edited =
            lab_inventory(&five).replace("replication = \"mirrored\"", "replication = \"quorum\"");
        let six: Vec<LabHost> = (0..6).map(LabHost::new).collect();
        let grown = extend_inventory(&edited, &six).unwrap();
        assert!(grown.starts_with(&edited));
        assert!(grown.contains("name = \"site5\"\naddress = \"10.231.77.15\""));
        assert!(grown.contains("queue = \"site.site5.data\""));
        let inv = crate::inventory::parse(&grown, std::path::Path::new("inventory.toml")).unwrap();
        assert_eq!(inv.hosts.len(), 6);
        assert_eq!(inv.sites.len(), 5);
        assert_eq!(
            inv.cluster.replication,
            crate::inventory::Replication::Quorum
        );
        assert_eq!(extend_inventory(&grown, &six).unwrap(), grown);
    }

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
