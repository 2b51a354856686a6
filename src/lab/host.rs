//! Building one lab host: its folder of files a freshly installed server has, its
//! network namespace, its sshd and its RabbitMQ; and whether a host is healthy.

use super::{net, nspawn, path_str, port_open, shell_quote, sys, Lab, LabHost};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

impl Lab {
    /// A host is healthy when its namespace exists and its sshd runs inside it; a
    /// systemd host when its container's systemd runs in its namespace and its sshd
    /// answers.
    pub(super) fn healthy(&self, h: &LabHost) -> bool {
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

    pub(super) fn client_key(&self) -> Result<()> {
        let key = self.dir.join("id_ed25519");
        if !key.exists() {
            new_key(&key, "warren-lab")?;
        }
        let public = std::fs::read_to_string(self.dir.join("id_ed25519.pub"))?;
        std::fs::write(self.dir.join("authorized_keys"), public)?;
        Ok(())
    }

    /// Builds `h` from nothing: any remains of it are removed first, so a host whose
    /// processes were killed comes back as a freshly installed server.
    pub(super) fn build_host(&self, h: &LabHost, all: &[LabHost]) -> Result<()> {
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
        new_key(&host_key, &h.name)?;
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

    pub(super) fn write_known_hosts(&self, hosts: &[LabHost]) -> Result<()> {
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
}

/// A host's own /run, as every server has: what a program keeps there (a pid file
/// such as HAProxy's, a lock) is then the host's, not shared with every other lab host,
/// or another lab's, on this machine. sshd needs its privilege-separation folder in it.
/// /tmp stays this machine's: the lab's own folder may be below it.
const PRIVATE_RUN: &str = "mount -t tmpfs -o mode=0755 warren-lab-run /run\n\
     mkdir -p /run/sshd /run/lock && chmod 1777 /run/lock\n";

/// A new ed25519 key pair without a passphrase at `path` (and `path.pub`).
fn new_key(path: &Path, comment: &str) -> Result<()> {
    let args = [
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        comment,
        "-f",
        path_str(path)?,
    ];
    sys::run("ssh-keygen", &args)?;
    Ok(())
}

/// Empties a host's /run (but sshd's folder), as a reboot would.
pub(super) const EMPTY_RUN: &str =
    "find /run -mindepth 1 -maxdepth 1 ! -name sshd ! -name lock -exec rm -rf {} +\n";

/// Gives host `h` (its folder `dir`) the files of a freshly installed server: the
/// package's /etc/rabbitmq and /etc/haproxy files, empty data and log folders, its
/// /etc/hosts and /etc/hostname. The folders are emptied, not replaced: on a running
/// host they are the sources of its bind mounts.
pub(super) fn fresh_files(dir: &Path, h: &LabHost, all: &[LabHost]) -> Result<()> {
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
pub(super) fn remove(p: &Path) -> std::io::Result<()> {
    if p.is_dir() && !p.is_symlink() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}
