//! One host's own checks: the connection and its rights, RabbitMQ and Erlang where
//! warren looks for them, the service and what it was installed with, the node's
//! name, the cookie's copies, clock, disk and memory, and the folders warren writes.

use super::{Line, Lines};
use crate::facts::{self, FileState, HostFacts, NodeState};
use crate::inventory::{Host, Inventory, Os, Paths, TransportKind};
use crate::platform::{Probe, Transport};
use crate::rabbitmq::api::Credentials;
use crate::render::{Content, HostRender};
use crate::versions::{debian_upstream, erlang_refusal, Version};
use std::collections::BTreeMap;
use std::time::Duration;

/// RabbitMQ's own default `disk_free_limit` (50 MB): below it, publishers are blocked.
const DISK_LIMIT: u64 = 50_000_000;
/// Below this much free disk a node soon reaches that limit.
const DISK_LOW: u64 = 1 << 30;
/// Below this much memory, RabbitMQ's default high watermark (40 %) blocks
/// publishers at a few hundred megabytes.
const MEMORY_LOW: u64 = 1 << 30;
/// A clock further off than this from the operator's makes certificates look not
/// yet valid or expired, and logs hard to read side by side.
const CLOCK_SKEW: i64 = 60;

/// How the connection went, for the `reach` line.
pub(super) fn reached(h: &Host, t: &dyn Transport) -> String {
    match h.transport {
        TransportKind::Ssh => format!(
            "SSH to {}@{}:{} with a known host key{}",
            h.user,
            h.address,
            h.port,
            t.server_version()
                .map(|v| format!(", server {v}"))
                .unwrap_or_default()
        ),
        TransportKind::Winrm => format!(
            "WinRM over {} to {}:{} as {}, {} accepted",
            if h.winrm.https { "HTTPS" } else { "HTTP" },
            h.address,
            h.port,
            h.user,
            if h.winrm.basic { "Basic" } else { "NTLM" }
        ),
    }
}

pub(super) fn reach_fix(h: &Host) -> String {
    match h.transport {
        TransportKind::Ssh => format!(
            "check {}'s address, port, user and key in the inventory and that its SSH server runs; record a host key known_hosts does not have yet with `ssh-keyscan -p {} {} >> {}`, once its fingerprint matches the host's own",
            h.name,
            h.port,
            h.address,
            h.known_hosts
                .as_deref()
                .map_or("~/.ssh/known_hosts".to_string(), |p| p.display().to_string())
        ),
        TransportKind::Winrm => format!(
            "check that {} has a WinRM listener on port {} (Enable-PSRemoting, or winrm quickconfig -transport:https), and the user and password reference in the inventory",
            h.name, h.port
        ),
    }
}

/// The doctor's reading, as `@@KEY VALUE` lines (see `platform::doctor`).
#[derive(Debug, Default)]
pub(super) struct Reading {
    pub values: BTreeMap<String, String>,
    /// (owner, who may write, path).
    pub folders: Vec<(String, String, String)>,
}

impl Reading {
    pub fn parse(out: &str) -> Reading {
        let mut r = Reading::default();
        for line in out.lines().map(|l| l.trim_end_matches('\r')) {
            let Some(rest) = line.strip_prefix("@@") else {
                continue;
            };
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            match key {
                "folder" => {
                    let mut w = value.splitn(3, ' ');
                    if let (Some(o), Some(a), Some(p)) = (w.next(), w.next(), w.next()) {
                        r.folders.push((o.into(), a.into(), p.into()));
                    }
                }
                // `@@erlang_home session PATH`, `@@erlsrv base PATH`: two-word keys.
                "erlang_home" | "erlsrv" => {
                    let (k, v) = value.split_once(' ').unwrap_or((value, ""));
                    r.values.insert(format!("{key} {k}"), v.trim().to_string());
                }
                _ => {
                    r.values.insert(key.to_string(), value.trim().to_string());
                }
            }
        }
        r
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The folders warren writes to on `h`: those of its files, and on Windows its own.
pub(super) fn folders(h: &Host, d: &HostRender) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |f: &str| {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(f)) {
            out.push(f.to_string());
        }
    };
    if let Paths::Windows { base, .. } = &h.paths {
        add(base);
        add(crate::platform::windows::RUN_FOLDER);
    }
    let sep = if h.os == Os::Windows { '\\' } else { '/' };
    for f in &d.files {
        if let Some((dir, _)) = f.path.rsplit_once(sep) {
            // A user's profile is that user's own, not warren's to judge.
            if !dir.to_ascii_lowercase().contains(r"\users\") {
                add(if dir.is_empty() { "/" } else { dir });
            }
        }
    }
    out
}

/// Every check of host `h` through `p`; its facts when they could be read.
pub(super) fn checks(
    p: &mut dyn Probe,
    inv: &Inventory,
    h: &Host,
    d: &HostRender,
    creds: &[Credentials],
    now: i64,
) -> (Vec<Line>, Option<HostFacts>) {
    let mut l = Lines::default();
    let name = h.name.as_str();
    let dirs = folders(h, d);
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let mut answers = p
        .platform()
        .doctor_read(&dirs)
        .into_iter()
        .map(|q| p.query(&q, Duration::from_secs(60)));
    let mut stdout = String::new();
    let first_failure = answers.find_map(|a| match a {
        Ok(out) if out.ok() => {
            stdout.push_str(&out.stdout);
            None
        }
        other => Some(other),
    });
    let reading = match first_failure {
        None => Reading::parse(&stdout),
        Some(Ok(out)) if h.os == Os::Linux && out.stderr.contains("sudo") => {
            l.fail(
                "administrator",
                name,
                format!("{} cannot run commands as root: {}", h.user, out.last_line()),
                format!(
                    "give {} passwordless sudo (a line `{} ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/warren), or log in as root",
                    h.user, h.user
                ),
            );
            return (l.0, None);
        }
        Some(Ok(out)) => {
            l.fail(
                "reading",
                name,
                format!("the doctor's reading failed: {}", out.last_line()),
                "fix what the message names (the reading needs only the host's shell, sh or PowerShell), then run doctor again",
            );
            return (l.0, None);
        }
        Some(Err(e)) => {
            l.fail(
                "reading",
                name,
                format!("{e:#}"),
                "check that the host answers commands over its transport",
            );
            return (l.0, None);
        }
    };
    rights(&mut l, h, &reading);
    if h.os == Os::Windows {
        windows_shell(&mut l, h, &reading);
    }
    let facts = match facts::host_facts(p, inv, h, d, creds) {
        Ok(f) => f,
        Err(e) => {
            l.fail(
                "rabbitmq",
                name,
                format!("{e:#}"),
                "install RabbitMQ and Erlang as docs/windows.md or the README says, or fix what the message names",
            );
            return (l.0, None);
        }
    };
    evaluate(&mut l, inv, h, d, &reading, &facts, now);
    (l.0, Some(facts))
}

/// The checks that need only the readings: what `checks` does once both are in.
pub(super) fn evaluate(
    l: &mut Lines,
    inv: &Inventory,
    h: &Host,
    d: &HostRender,
    r: &Reading,
    f: &HostFacts,
    now: i64,
) {
    let name = h.name.as_str();
    openssh(l, h, f);
    versions(l, h, f);
    service(l, h, r);
    node(l, h, f);
    cookie(l, inv, h, d, f);
    resources(l, h, r, now);
    folders_checked(l, h, r);
    let plan = crate::plan::host_plan(h, d, f);
    let pending: Vec<String> = plan
        .files
        .iter()
        .map(|c| crate::util::file_name(&c.path).to_string())
        .chain(plan.settings.iter().map(|s| s.setting.key.clone()))
        .collect();
    let restart = match plan.service {
        crate::plan::Service::Restart { .. } => " and restart the node",
        _ if !plan.reinstall.is_empty() => " and reinstall the service",
        _ => "",
    };
    if pending.is_empty() {
        l.ok(
            "files",
            name,
            format!(
                "all {} managed files and settings as rendered",
                d.files.len() + d.settings.len()
            ),
        );
    } else {
        l.warn(
            "files",
            name,
            format!("apply would write {}{restart}", pending.join(", ")),
            "`warren plan` shows each change; `warren apply` makes them",
        );
    }
}

fn rights(l: &mut Lines, h: &Host, r: &Reading) {
    match r.get("admin") {
        Some("yes") => l.ok(
            "administrator",
            &h.name,
            match h.os {
                Os::Linux if h.user == "root" => "logged in as root".to_string(),
                Os::Linux => format!("{} runs commands as root through sudo -n", h.user),
                Os::Windows => format!("{} is in the Administrators group, elevated", h.user),
            },
        ),
        _ => l.fail(
            "administrator",
            &h.name,
            format!("{} runs commands without administrator rights", h.user),
            match h.os {
                Os::Linux => "log in as root, or as a user with passwordless sudo".to_string(),
                Os::Windows => format!(
                    "add {} to the local Administrators group (for SSH, an administrator's session is elevated; for WinRM, a local account other than Administrator needs LocalAccountTokenFilterPolicy = 1)",
                    h.user
                ),
            },
        ),
    }
}

/// PowerShell and Erlang's environment on a Windows host.
pub(super) fn windows_shell(l: &mut Lines, h: &Host, r: &Reading) {
    let name = h.name.as_str();
    let ps = r.get("powershell").unwrap_or("");
    match Version::parse(ps) {
        Some(v) if v >= Version::parse("5.1").expect("a version") => {
            l.ok("powershell", name, format!("Windows PowerShell {ps}"))
        }
        _ => l.fail(
            "powershell",
            name,
            format!("PowerShell {ps}"),
            "install Windows Management Framework 5.1 (Windows Server 2016 and later have it)",
        ),
    }
    let machine = r.get("erlang_home machine");
    let session = r.get("erlang_home session");
    match (machine, r.get("erl")) {
        (None, _) => l.fail(
            "erlang",
            name,
            "no ERLANG_HOME in the machine's environment",
            "install Erlang/OTP for all users (its installer sets ERLANG_HOME), or set ERLANG_HOME machine-wide to its folder",
        ),
        (Some(m), Some("yes")) if session.is_some_and(|s| s.eq_ignore_ascii_case(m)) => {
            l.ok("erlang", name, format!("ERLANG_HOME {m}, erl.exe there, the same in this session"))
        }
        (Some(m), Some("yes")) => l.warn(
            "erlang",
            name,
            format!(
                "ERLANG_HOME is {m} machine-wide but {} in this session: the SSH server started before RabbitMQ's installer set it (Win32-OpenSSH #1329)",
                session.unwrap_or("unset")
            ),
            "warren takes the machine's value; restart the SSH server (Restart-Service sshd) so that other sessions have it too",
        ),
        (Some(m), _) => l.fail(
            "erlang",
            name,
            format!("ERLANG_HOME is {m}, and there is no bin\\erl.exe under it"),
            "reinstall Erlang/OTP, or set ERLANG_HOME machine-wide to the folder that holds bin\\erl.exe",
        ),
    }
}

/// OpenSSH for Windows' version and default shell, as the plan judges them.
fn openssh(l: &mut Lines, h: &Host, f: &HostFacts) {
    if h.os != Os::Windows || h.transport != TransportKind::Ssh {
        return;
    }
    let mut warnings = Vec::new();
    let mut blockers = Vec::new();
    crate::plan::host_warnings(h, f, &mut warnings, &mut blockers);
    let banner = f.server.clone().unwrap_or_default();
    let shell = f
        .ssh_shell
        .clone()
        .unwrap_or_else(|| "cmd.exe (the default)".into());
    if let Some(b) = blockers.first() {
        let (found, fix) = b.message.split_once("; ").unwrap_or((&b.message, ""));
        l.fail("openssh", &h.name, found, fix);
    } else if let Some(w) = warnings.iter().find(|w| w.contains("OpenSSH")) {
        let w = w.strip_prefix(&format!("{}: ", h.name)).unwrap_or(w);
        let (found, fix) = w
            .split_once(": install")
            .unwrap_or((w, " the current Win32-OpenSSH release"));
        l.warn("openssh", &h.name, found, format!("install{fix}"));
    } else {
        l.ok(
            "openssh",
            &h.name,
            format!("{banner}, DefaultShell {shell}"),
        );
    }
}

/// RabbitMQ's and Erlang's versions, and whether they go together.
fn versions(l: &mut Lines, h: &Host, f: &HostFacts) {
    let parse = |v: Option<&String>, debian: bool| {
        v.and_then(|v| Version::parse(if debian { debian_upstream(v) } else { v }))
    };
    let linux = h.os == Os::Linux;
    let (rp, ep) = if linux {
        ("rabbitmq-server", "erlang-base")
    } else {
        ("rabbitmq", "erlang")
    };
    let rabbitmq =
        parse(f.node.rabbitmq_version.as_ref(), false).or_else(|| parse(f.packages.get(rp), linux));
    let erlang =
        parse(f.node.erlang_version.as_ref(), false).or_else(|| parse(f.packages.get(ep), linux));
    match (rabbitmq, erlang) {
        (Some(r), Some(e)) => match erlang_refusal(&r, &e) {
            None => l.ok(
                "versions",
                &h.name,
                format!("RabbitMQ {r} on Erlang/OTP {e}, a supported pair"),
            ),
            Some(why) => l.fail(
                "versions",
                &h.name,
                why,
                "install a supported Erlang for this RabbitMQ (or pin both in the inventory and let `warren apply` upgrade)",
            ),
        },
        (r, e) => l.warn(
            "versions",
            &h.name,
            format!(
                "RabbitMQ {}, Erlang/OTP {}",
                r.map_or("unknown".to_string(), |v| v.to_string()),
                e.map_or("unknown".to_string(), |v| v.to_string())
            ),
            if linux {
                "install Debian's rabbitmq-server package (dpkg knows neither version)"
            } else {
                "install RabbitMQ and Erlang/OTP with their official installers (the registry names neither version)"
            },
        ),
    }
}

/// Paths compared as Windows does: either separator, any case, no trailing one.
fn same_folder(a: &str, b: &str) -> bool {
    let n = |s: &str| {
        s.replace('/', "\\")
            .trim_end_matches('\\')
            .to_ascii_lowercase()
    };
    n(a) == n(b)
}

/// The RabbitMQ service: there, starting at boot, its account, and (Windows) what
/// it was installed with.
pub(super) fn service(l: &mut Lines, h: &Host, r: &Reading) {
    let name = h.name.as_str();
    let Some(svc) = r.get("service") else {
        // No service manager: the node runs as a process of its own (`direct`).
        l.ok(
            "service",
            name,
            "no service manager: warren starts the node itself (service = \"direct\")",
        );
        return;
    };
    let mut w = svc.splitn(3, ' ');
    let (state, start, account) = (
        w.next().unwrap_or(""),
        w.next().unwrap_or(""),
        w.next().unwrap_or(""),
    );
    match h.os {
        Os::Linux if state == "missing" => l.fail(
            "service",
            name,
            "systemd has no rabbitmq-server.service",
            "install Debian's rabbitmq-server package (apt-get install rabbitmq-server)",
        ),
        Os::Linux if start != "enabled" => l.warn(
            "service",
            name,
            format!("rabbitmq-server.service is {state} and {start}: it does not start at boot"),
            "systemctl enable rabbitmq-server",
        ),
        Os::Linux => l.ok(
            "service",
            name,
            format!("rabbitmq-server.service {state}, enabled, as user {account}"),
        ),
        Os::Windows if state == "missing" => l.warn(
            "service",
            name,
            "no RabbitMQ service",
            "`warren apply` installs it (rabbitmq-service.bat install) with the inventory's RABBITMQ_BASE",
        ),
        Os::Windows if !account.eq_ignore_ascii_case("LocalSystem") => l.fail(
            "service",
            name,
            format!("the RabbitMQ service logs on as {account}"),
            "set it to log on as Local System (sc.exe config RabbitMQ obj= LocalSystem): warren puts the service's cookie in the system profile",
        ),
        Os::Windows if start != "Auto" => l.warn(
            "service",
            name,
            format!("the RabbitMQ service is {state} and starts {start}: not at boot"),
            "Set-Service -Name RabbitMQ -StartupType Automatic",
        ),
        Os::Windows => l.ok(
            "service",
            name,
            format!("the RabbitMQ service is {state}, starts automatically, as LocalSystem"),
        ),
    }
    if h.os != Os::Windows || state == "missing" {
        return;
    }
    let Paths::Windows { base, .. } = &h.paths else {
        return;
    };
    let installed = r.get("erlsrv base").or(r.get("erlsrv workdir"));
    let node = r.get("erlsrv node");
    let want = h.node_name();
    let base_ok = installed.is_some_and(|i| same_folder(i, base));
    let node_ok = node == Some(want.as_str());
    if base_ok && node_ok {
        l.ok(
            "service install",
            name,
            format!("installed with RABBITMQ_BASE {base} for node {want}"),
        );
    } else {
        l.warn(
            "service install",
            name,
            format!(
                "installed with RABBITMQ_BASE {} for node {}; the inventory says {base} and {want}",
                installed.unwrap_or("(none: the user's roaming profile)"),
                node.unwrap_or("(unknown)")
            ),
            "`warren apply` reinstalls the service from the inventory's environment file (delete warren-service.sha256 under RABBITMQ_BASE if the plan shows no reinstall)",
        );
    }
}

/// The name the running node answers to.
fn node(l: &mut Lines, h: &Host, f: &HostFacts) {
    let want = h.node_name();
    match (&f.node.state, &f.node.membership) {
        (NodeState::Running, Some(m)) if m.node != want => l.fail(
            "node name",
            &h.name,
            format!("the node runs as {}, the inventory names it {want}", m.node),
            "set the host's name in the inventory to the node's host part, or let `warren apply` restart the node with RABBITMQ_NODENAME from the inventory",
        ),
        (NodeState::Running, Some(m)) => l.ok(
            "node name",
            &h.name,
            format!(
                "{want} runs, in a cluster of {} node{}",
                m.nodes.len(),
                if m.nodes.len() == 1 { "" } else { "s" }
            ),
        ),
        (NodeState::Stopped, _) => l.warn(
            "node name",
            &h.name,
            format!("{want} is not running"),
            "`warren apply` starts it",
        ),
        (state, _) => l.warn(
            "node name",
            &h.name,
            format!("{want} is {state:?}"),
            "wait for it to boot, or see its log in the RabbitMQ log folder",
        ),
    }
}

/// The cookie's copies (the service's, the CLI's), by hash only: agreeing with each
/// other and with the inventory's, readable only by those who must.
fn cookie(l: &mut Lines, inv: &Inventory, h: &Host, d: &HostRender, f: &HostFacts) {
    let name = h.name.as_str();
    let files: Vec<_> = d
        .files
        .iter()
        .filter(|x| x.template.is_none() && matches!(x.content, Content::Secret(_)))
        .collect();
    let Some(first) = files.first() else {
        return;
    };
    let want = crate::util::sha256_hex(first.content.bytes());
    let mut hashes = Vec::new();
    let mut missing = Vec::new();
    let mut open = Vec::new();
    for x in &files {
        match f.files.get(&x.path) {
            Some(FileState::Hash {
                sha256,
                mode,
                owner,
            }) => {
                hashes.push((x.path.as_str(), sha256.as_str()));
                let right = match h.os {
                    Os::Linux => mode & 0o077 == 0 && x.owner.as_deref().is_none_or(|o| o == owner),
                    Os::Windows => x.owner.as_deref().is_none_or(|o| {
                        crate::platform::normalize_owner(o)
                            == crate::platform::normalize_owner(owner)
                    }),
                };
                if !right {
                    open.push(match h.os {
                        Os::Linux => format!("{} ({owner}, mode {mode:o})", x.path),
                        Os::Windows => format!("{} (readable by {owner})", x.path),
                    });
                }
            }
            _ => missing.push(x.path.as_str()),
        }
    }
    let member = f
        .node
        .membership
        .as_ref()
        .is_some_and(|m| m.nodes.len() > 1 && m.nodes.contains(&inv.central().node_name()));
    let paths = files
        .iter()
        .map(|x| x.path.as_str())
        .collect::<Vec<_>>()
        .join(" and ");
    let hold = if files.len() == 1 { "holds" } else { "hold" };
    let differ = hashes.windows(2).any(|w| w[0].1 != w[1].1);
    if differ {
        l.fail(
            "cookie",
            name,
            format!("{paths} hold different cookies: the CLI tools cannot talk to the node"),
            "`warren apply` writes the inventory's cookie to each (and restarts the node)",
        );
    } else if !missing.is_empty() {
        l.warn(
            "cookie",
            name,
            format!("no cookie at {}", missing.join(" and ")),
            "`warren apply` writes the inventory's cookie there",
        );
    } else if hashes.iter().any(|(_, s)| *s != want) {
        if member {
            l.fail(
                "cookie",
                name,
                format!("{paths} {hold} another cookie than the inventory's, on a member of the cluster: at its next restart the node cannot talk to the others"),
                "check that the inventory's cookie is the cluster's; `warren plan` then shows the write and the restart it needs",
            );
        } else {
            l.warn(
                "cookie",
                name,
                format!("{paths} {hold} the installer's cookie, not the inventory's"),
                "`warren apply` writes the inventory's and restarts the node",
            );
        }
    } else {
        l.ok(
            "cookie",
            name,
            format!("{paths}: the inventory's cookie (by SHA-256)"),
        );
    }
    if !open.is_empty() {
        l.fail(
            "cookie access",
            name,
            format!("readable by others than RabbitMQ and the administrators: {}", open.join(", ")),
            "`warren apply` restricts it (Linux: owner rabbitmq, mode 400; Windows: SYSTEM, Administrators and the login user only)",
        );
    }
}

/// The clock against the operator's, free disk against RabbitMQ's limit, memory.
pub(super) fn resources(l: &mut Lines, h: &Host, r: &Reading, now: i64) {
    let name = h.name.as_str();
    match r.get("clock").and_then(|c| c.parse::<i64>().ok()) {
        Some(t) if (t - now).abs() <= CLOCK_SKEW => l.ok(
            "clock",
            name,
            format!("{:+} s from this machine's", t - now),
        ),
        Some(t) => l.warn(
            "clock",
            name,
            format!("{:+} s from this machine's", t - now),
            "synchronise both clocks with NTP (certificates' dates and the logs need one time)",
        ),
        None => l.warn(
            "clock",
            name,
            "the host did not say its time",
            "see the doctor's reading",
        ),
    }
    match r.get("disk").and_then(|c| c.parse::<u64>().ok()) {
        Some(b) if b < DISK_LIMIT => l.fail(
            "disk",
            name,
            format!("{} free where RabbitMQ keeps its data, under its 50 MB disk_free_limit: publishers are blocked", bytes(b)),
            "free disk space on that drive",
        ),
        Some(b) if b < DISK_LOW => l.warn(
            "disk",
            name,
            format!("{} free where RabbitMQ keeps its data", bytes(b)),
            "free disk space: RabbitMQ blocks publishers at 50 MB (disk_free_limit)",
        ),
        Some(b) => l.ok("disk", name, format!("{} free where RabbitMQ keeps its data", bytes(b))),
        None => l.warn("disk", name, "free space unknown", "see the doctor's reading"),
    }
    match r.get("memory").and_then(|c| c.parse::<u64>().ok()) {
        Some(b) if b < MEMORY_LOW => l.warn(
            "memory",
            name,
            format!(
                "{} installed: RabbitMQ blocks publishers at 40 % of it",
                bytes(b)
            ),
            "give the host more memory",
        ),
        Some(b) => l.ok("memory", name, format!("{} installed", bytes(b))),
        None => l.warn("memory", name, "memory unknown", "see the doctor's reading"),
    }
}

fn bytes(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", b >> 20)
    }
}

/// Who may write to the folders warren writes to: nobody but root, RabbitMQ and the
/// administrators (a file there is read, or run, by the service).
pub(super) fn folders_checked(l: &mut Lines, h: &Host, r: &Reading) {
    let mut wrong = Vec::new();
    let mut fine = Vec::new();
    let mut missing = Vec::new();
    for (owner, access, path) in &r.folders {
        if owner == "-" {
            missing.push(path.as_str());
            continue;
        }
        let bad = match h.os {
            Os::Linux => {
                let mode = u32::from_str_radix(access, 8).unwrap_or(0o777);
                mode & 0o002 != 0 || !matches!(owner.as_str(), "root" | "rabbitmq")
            }
            Os::Windows => {
                let ordinary = ["Users", "Authenticated_Users", "Everyone"];
                // Windows' own folders (drivers\etc) belong to TrustedInstaller.
                access.split(',').any(|a| ordinary.contains(&a))
                    || !(matches!(owner.as_str(), "SYSTEM" | "Administrators")
                        || owner.ends_with("\\TrustedInstaller"))
            }
        };
        if bad {
            wrong.push(format!(
                "{path} (owner {owner}, {})",
                if h.os == Os::Linux {
                    format!("mode {access}")
                } else {
                    format!("writable by {}", access.replace('_', " "))
                }
            ));
        } else {
            fine.push(path.as_str());
        }
    }
    let missing = if missing.is_empty() {
        String::new()
    } else {
        format!(
            "; {} not there yet (warren makes {})",
            missing.join(", "),
            if h.os == Os::Windows {
                "them with SYSTEM and Administrators only"
            } else {
                "them"
            }
        )
    };
    if wrong.is_empty() {
        let found = if fine.is_empty() {
            missing.trim_start_matches("; ").to_string()
        } else {
            format!(
                "only administrators may write to {}{missing}",
                fine.join(", ")
            )
        };
        l.ok("folders", &h.name, found);
    } else {
        l.fail(
            "folders",
            &h.name,
            format!("others than the administrators may write to {}: a file placed there is read or run by RabbitMQ", wrong.join(", ")),
            match h.os {
                Os::Linux => "chown root and chmod o-w each of them",
                Os::Windows => "give each a protected ACL: icacls FOLDER /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F (warren's own folders get it when it makes them)",
            },
        );
    }
}
