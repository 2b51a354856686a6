//! The lab's systemd host (`lab up --systemd`): systemd booted as init inside
//! `systemd-nspawn`, joined to the host's network namespace, so RabbitMQ runs as
//! Debian's `rabbitmq-server.service` and sshd as `ssh.service`, as on our user's
//! central server.
//!
//! The container's root is an overlay of this machine's `/` whose upper layer is a
//! tmpfs, mounted in a private mount namespace that only systemd-nspawn holds: when it
//! exits, the overlay and its tmpfs go with it, and this machine's files are never
//! written. The host's own folders (RabbitMQ's three, /etc/hosts, /etc/hostname) are
//! bind mounts from the lab folder, as on the other hosts.
//!
//! What bit on this machine (its init is not systemd): nspawn exits silently unless
//! /run/systemd/nspawn is a tmpfs; it needs `--register=no --keep-unit` (no bus to
//! register a scope with); and it makes its `supervisor` and `payload` cgroups
//! beside its own, so it is started in a cgroup named after the host's namespace that
//! `lab down` removes.

use super::sys::{kill, pid_alive};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The pid of the host's systemd-nspawn, in the host's folder.
pub const PID_FILE: &str = "nspawn.pid";
/// Where nspawn keeps its runtime state; it must be a tmpfs (mounted privately).
pub const RUN_DIR: &str = "/run/systemd/nspawn";
/// Units the lab host needs; everything else this machine enables is masked.
/// haproxy.service stays as Debian's package left it (enabled where this machine
/// enables it), as on a server where `[load_balancer]` puts HAProxy.
const KEEP: [&str; 5] = [
    "rabbitmq-server.service",
    "ssh.service",
    "haproxy.service",
    "epmd.service",
    "epmd.socket",
];
/// Enabled on a container with no work to do (a login prompt on the console, logins).
const ALWAYS_MASKED: [&str; 2] = ["console-getty.service", "systemd-logind.service"];

/// The commands and units a systemd host needs, each with its fix.
pub fn preflight() -> Result<()> {
    let nspawn =
        which::which("systemd-nspawn").is_ok() || Path::new("/usr/bin/systemd-nspawn").exists();
    if !nspawn {
        bail!("lab up --systemd: systemd-nspawn is not installed; install the systemd-container package (make demo and make test do it)");
    }
    if !Path::new("/lib/systemd/systemd").exists() {
        bail!("lab up --systemd: /lib/systemd/systemd is missing; install the systemd package");
    }
    for (unit, package) in [
        ("rabbitmq-server.service", "rabbitmq-server"),
        ("ssh.service", "openssh-server"),
    ] {
        if !Path::new("/lib/systemd/system").join(unit).exists() {
            bail!("lab up --systemd: /lib/systemd/system/{unit} is missing; install (or reinstall) the {package} package");
        }
    }
    Ok(())
}

/// What the container needs on top of `/`, copied into the overlay's upper layer at
/// each boot: units masked, the lab's two enabled, ssh.service running the lab's sshd
/// config, and root's shell files as a fresh Debian install has them.
pub fn write_seed(dir: &Path, sshd_config: &Path) -> Result<()> {
    // Not this machine's: its root shell setup is no part of a server's, and can stall
    // every SSH command (pyenv's init here rehashes under a lock file at each login;
    // a session killed meanwhile leaves the lock, and every later login waits 60 s).
    let home = dir.join("overlay-seed/root");
    std::fs::create_dir_all(&home)?;
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    for (file, default) in [(".bashrc", "dot.bashrc"), (".profile", "dot.profile")] {
        let from = Path::new("/usr/share/base-files").join(default);
        if from.exists() {
            std::fs::copy(&from, home.join(file))?;
        } else {
            std::fs::write(home.join(file), "")?;
        }
    }
    let units = dir.join("overlay-seed/etc/systemd/system");
    let wants = units.join("multi-user.target.wants");
    std::fs::create_dir_all(&wants)?;
    let mut masked: Vec<String> = ALWAYS_MASKED.iter().map(|s| s.to_string()).collect();
    for target in [
        "multi-user.target.wants",
        "graphical.target.wants",
        "timers.target.wants",
        "sockets.target.wants",
        "getty.target.wants",
        "sysinit.target.wants",
    ] {
        let Ok(entries) = std::fs::read_dir(Path::new("/etc/systemd/system").join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let unit = name.ends_with(".service") || name.ends_with(".timer");
            if unit && !KEEP.contains(&name.as_str()) && !masked.contains(&name) {
                masked.push(name);
            }
        }
    }
    for unit in &masked {
        std::os::unix::fs::symlink("/dev/null", units.join(unit))?;
    }
    // Enabled here whatever this machine enables (setup.sh keeps both from starting
    // on the machine itself, not from being enabled, but a machine may differ).
    for unit in ["rabbitmq-server.service", "ssh.service"] {
        std::os::unix::fs::symlink(
            Path::new("/lib/systemd/system").join(unit),
            wants.join(unit),
        )?;
    }
    let drop_in = units.join("ssh.service.d");
    std::fs::create_dir_all(&drop_in)?;
    let cfg = sshd_config.display();
    std::fs::write(
        drop_in.join("warren-lab.conf"),
        format!(
            "# The lab's sshd: its address, host key and authorized keys only.\n\
             [Service]\n\
             ExecStartPre=\n\
             ExecStartPre=/usr/sbin/sshd -t -f {cfg}\n\
             ExecStart=\n\
             ExecStart=/usr/sbin/sshd -D -f {cfg}\n\
             ExecReload=\n\
             ExecReload=/usr/sbin/sshd -t -f {cfg}\n\
             ExecReload=/bin/kill -HUP $MAINPID\n"
        ),
    )?;
    Ok(())
}

/// The cgroup hierarchies nspawn creates its cgroups in: the unified one (cgroup2)
/// and, on a hybrid machine, systemd's named v1 hierarchy.
fn cgroup_roots() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (target, fstype, options) = (f.get(1)?, f.get(2)?, f.get(3)?);
            let wanted = *fstype == "cgroup2"
                || (*fstype == "cgroup" && options.split(',').any(|o| o == "name=systemd"));
            wanted.then(|| PathBuf::from(target))
        })
        .collect()
}

/// Boots the container of host `name` (its folder `dir`, the lab's `lab_dir`) in
/// network namespace `netns`; returns systemd-nspawn's pid once it runs. Its console
/// goes to `dir/boot.log`.
pub fn start(name: &str, netns: &str, dir: &Path, lab_dir: &Path) -> Result<u32> {
    for p in [dir, lab_dir] {
        let s = p.to_string_lossy();
        if s.contains([':', ',', '\'']) || s.chars().any(char::is_whitespace) {
            bail!(
                "{} has a character systemd-nspawn's --bind or overlay options cannot take (':', ',', a quote or a space); run the lab from another folder",
                p.display()
            );
        }
    }
    let d = dir.display();
    // The namespace's name (the lab's prefix and the host's name) names its cgroup.
    let cgroup = netns;
    // Unlike sshd and RabbitMQ, systemd-nspawn keeps whatever descriptors it
    // inherits for its whole life: a lock the caller holds (a `flock` around a test)
    // would be held until the lab goes down. Closed first, but stdin, stdout, stderr.
    let mut script = String::from(
        "for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [ \"$fd\" -gt 2 ]; then eval \"exec $fd>&-\" 2>/dev/null; fi; done\n\
         set -e\n",
    );
    for root in cgroup_roots() {
        let c = root.join(cgroup);
        script.push_str(&format!(
            "mkdir -p {c}\necho $$ > {c}/cgroup.procs\n",
            c = c.display()
        ));
    }
    script.push_str(&format!(
        "mkdir -p {RUN_DIR}\n\
         mount -t tmpfs -o mode=0755 warren-lab {RUN_DIR}\n\
         mount -t tmpfs -o mode=0755 warren-lab {d}/overlay\n\
         mkdir {d}/overlay/upper {d}/overlay/work {d}/overlay/root\n\
         cp -a {d}/overlay-seed/. {d}/overlay/upper/\n\
         mount -t overlay warren-lab -o lowerdir=/,upperdir={d}/overlay/upper,workdir={d}/overlay/work {d}/overlay/root\n\
         exec systemd-nspawn --quiet --register=no --keep-unit --boot --console=read-only \
         --link-journal=no --machine={cgroup} --hostname={name} \
         --network-namespace-path=/run/netns/{netns} --directory={d}/overlay/root \
         --bind={d}/etc-rabbitmq:/etc/rabbitmq --bind={d}/var-lib-rabbitmq:/var/lib/rabbitmq \
         --bind={d}/var-log-rabbitmq:/var/log/rabbitmq --bind={d}/hosts:/etc/hosts \
         --bind={d}/hostname:/etc/hostname --bind-ro={lab}\n",
        lab = lab_dir.display(),
    ));
    std::fs::create_dir_all(dir.join("overlay"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("boot.log"))?;
    // setsid: its own session, so nothing sent to warren's terminal reaches it;
    // without a fork (warren's child leads no group), so the pid is nspawn's after
    // the two execs.
    let child = std::process::Command::new("setsid")
        .args([
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            // bash: dash's redirections take single-digit descriptors only.
            "bash",
            "-c",
            &script,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8")
        .spawn()
        .context("cannot run setsid (util-linux)")?;
    let pid = child.id();
    std::fs::write(dir.join(PID_FILE), format!("{pid}\n"))?;
    Ok(pid)
}

fn is_nspawn(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() == "systemd-nspawn")
        .unwrap_or(false)
}

/// The host's systemd-nspawn, if it runs.
pub fn running(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&p| is_nspawn(p))
}

/// The container's init (systemd, the child of systemd-nspawn), as this machine
/// numbers it: `nsenter -t PID -a` enters the host.
pub fn leader(nspawn: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether systemd inside says the host has booted: `running`, or `degraded` (a unit
/// failed, which a test may do on purpose), not `starting`.
pub fn booted(nspawn: u32) -> bool {
    let Some(init) = leader(nspawn) else {
        return false;
    };
    let out = std::process::Command::new("nsenter")
        .args([
            "-t",
            &init.to_string(),
            "-a",
            "systemctl",
            "is-system-running",
        ])
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let state = String::from_utf8_lossy(&o.stdout);
            matches!(state.trim(), "running" | "degraded")
        }
        Err(_) => false,
    }
}

/// Shuts the container down: SIGTERM asks systemd-nspawn to halt the container's
/// systemd, which stops its units (RabbitMQ with them) in order; after 60 s, SIGKILL.
pub fn stop(pid: u32) {
    if !is_nspawn(pid) {
        return;
    }
    kill(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(60);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if pid_alive(pid) {
        if let Some(init) = leader(pid) {
            kill(init, "KILL");
        }
        kill(pid, "KILL");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every systemd-nspawn of a lab host (found by the lab's namespace in its command
/// line, whichever folder started it), stopped; then the lab's cgroups, and
/// /run/systemd/nspawn when it is empty and no container of any lab runs (a lab that
/// another warren cleared, one that knew no systemd host, leaves both). Returns what
/// it removed.
pub fn clear_all(netns_prefix: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let needle = format!("--network-namespace-path=/run/netns/{netns_prefix}");
    let mut others = false;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        if !is_nspawn(pid) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            stop(pid);
            removed.push(format!("systemd-nspawn (pid {pid})"));
        } else {
            others = true;
        }
    }
    for root in cgroup_roots() {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(netns_prefix) && remove_cgroup(&e.path()) {
                removed.push(format!("cgroup {}", e.path().display()));
            }
        }
    }
    // nspawn makes the folder itself when it needs it; only an empty one goes, and
    // only when no other lab's container runs (it holds a mount on it in its own
    // mount namespace, which removing the folder would take away).
    if !others && std::fs::remove_dir(RUN_DIR).is_ok() {
        removed.push(RUN_DIR.to_string());
    }
    removed
}

/// Removes a cgroup and the ones below it (each must hold no process any more).
fn remove_cgroup(dir: &Path) -> bool {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup(&e.path());
            }
        }
    }
    // A cgroup whose last process just exited may be busy for a moment.
    for _ in 0..20 {
        if std::fs::remove_dir(dir).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Makes /run/systemd/nspawn, the mount point of the private tmpfs.
pub fn make_run_dir() -> Result<()> {
    std::fs::create_dir_all(RUN_DIR).with_context(|| format!("cannot create {RUN_DIR}"))
}

/// Whether systemd-nspawn `pid` still runs, else the last lines of its console.
pub fn check_alive(pid: u32, dir: &Path, name: &str) -> Result<()> {
    if is_nspawn(pid) || pid_alive(pid) && !exited(pid) {
        return Ok(());
    }
    let log = std::fs::read_to_string(dir.join("boot.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(8).collect();
    bail!(
        "the systemd host {name} did not boot: systemd-nspawn exited; last lines of {}:\n{}",
        dir.join("boot.log").display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// A zombie: the process ended and only its exit status is left.
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(true)
        })
        .unwrap_or(true)
}
