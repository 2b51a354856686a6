//! Golden transcripts of what warren sends a Windows host, one per plan step: the
//! fact reading, the plan, then every command and every file of the executor's host
//! steps and join, in order. No Windows machine runs here, so the host is a scripted
//! `Connection` that answers as Windows would (its answers are this file's fixtures);
//! what is pinned is warren's side: each PowerShell script, decoded from its
//! `-EncodedCommand` (and re-encoded to the same command line), each file's bytes,
//! each command line within cmd.exe's limit, each script parsed by a real PowerShell
//! parser, and the cookie's value in none of it.
//!
//! The scripts are shown between the standard prelude and the wrapper every script
//! gets (`platform::windows::wrap`), which the test checks is there, exactly.

use crate::apply::Executor;
use crate::facts::{self, Facts, Unreadable};
use crate::inventory::{self, Inventory};
use crate::platform::{self, windows, Remote, Transport};
use crate::render::{self, Content, HostRender, Ownership};
use crate::transport::{self, Connection, Exec, HttpResponse};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const COOKIE: &str = "POISONCOOKIEQ7W3E9R1T5Y8U2I4O6P0";
const WINDOWS_HOSTS: &str =
    "# Copyright (c) 1993-2009 Microsoft Corp.\r\n#\r\n127.0.0.1       localhost\r\n";

/// A host as the scripted connection reports it.
#[derive(Clone)]
struct HostState {
    /// Path → (content, owner as facts report it, mode).
    files: BTreeMap<String, (Vec<u8>, String, u32)>,
    settings: BTreeMap<String, String>,
    stamp: Option<String>,
    running: bool,
    member: bool,
    /// Its database was deleted: its next start boots it blank, and peer discovery
    /// joins it to the seed.
    blank: bool,
    hostname: String,
    banner: String,
    address_book: BTreeMap<String, String>,
    seed: String,
    node: String,
    /// The lock file of a run in progress.
    lock: Option<String>,
    /// Temporary files an interrupted upload left.
    leftovers: Vec<String>,
}

struct Log {
    /// (facts phase?, host, entry)
    entries: Vec<(bool, String, String)>,
    facts_phase: bool,
}

struct Scripted {
    host: String,
    windows: bool,
    /// Like WinRM: no file transfer and no tunnel, only commands with stdin.
    stdin_only: bool,
    state: HostState,
    log: Arc<Mutex<Log>>,
    /// Script files put over SFTP, by their Windows path.
    scripts: BTreeMap<String, String>,
}

/// A TLS host's private key, in PEM; like the cookie, it must appear nowhere but in
/// the key file's own bytes.
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nUE9JU09OS0VZ\n-----END PRIVATE KEY-----\n";

fn show(bytes: &[u8]) -> String {
    if bytes == COOKIE.as_bytes() || bytes == KEY.as_bytes() {
        return format!("(sensitive value, {} bytes)", bytes.len());
    }
    String::from_utf8_lossy(bytes).replace('\r', "\\r")
}

impl Scripted {
    fn record(&self, entry: String) {
        let mut log = self.log.lock().unwrap();
        let phase = log.facts_phase;
        log.entries.push((phase, self.host.clone(), entry));
    }

    /// The body of a wrapped Windows script, checked to be wrapped exactly.
    fn body(script: &str) -> String {
        let script = script.trim_start_matches('\u{feff}');
        let wrapped = windows::wrap("\u{0}");
        let (head, tail) = wrapped.split_once('\u{0}').unwrap();
        assert!(
            script.starts_with(head),
            "script without the prelude:\n{script}"
        );
        assert!(
            script.ends_with(tail),
            "script without the wrapper:\n{script}"
        );
        let problems = crate::pscheck::powershell_problems(script);
        assert!(
            problems.is_empty(),
            "not valid PowerShell: {problems:?}\n{script}"
        );
        script[head.len()..script.len() - tail.len()].to_string()
    }

    fn answer(&mut self, script: &str) -> Exec {
        let ok = |stdout: String| Exec {
            status: 0,
            stdout,
            stderr: String::new(),
        };
        let s = &mut self.state;
        if script.contains("function Read-Text") || script.contains("f() {") {
            return ok(self.reading(script));
        }
        if script.contains("$Lock = ") {
            let content = |script: &str| {
                let start = script.find("'{").unwrap() + 1;
                script[start..script[start..].find("}'").unwrap() + start + 1].to_string()
            };
            if script.contains("'CreateNew'") {
                if let Some(held) = &s.lock {
                    return ok(format!("@@held\n{held}\n"));
                }
                s.lock = Some(content(script));
                return ok("@@taken\n".into());
            }
            if script.contains("'.new'") {
                s.lock = Some(content(script));
                return ok("@@taken\n".into());
            }
            if script.contains("Remove-Item") {
                s.lock = None;
            }
            return ok(s.lock.clone().unwrap_or_default());
        }
        if script.contains("join_cluster") {
            s.member = true;
        }
        if script.contains("-feature_flags") {
            s.blank = true;
        }
        if s.blank
            && [
                "Start-Service",
                "rabbitmq-service.bat",
                "rabbitmq-server -detached",
            ]
            .iter()
            .any(|start| script.contains(start))
        {
            s.member = true;
        }
        if script.contains("rabbit:is_running()") {
            // Read::NodeState: the node's answer, as `rabbitmqctl eval` prints it.
            let nodes = if s.member && s.node != s.seed {
                format!("\"{}\",\"{}\"", s.seed, s.node)
            } else {
                format!("\"{}\"", s.node)
            };
            return ok(format!(
                "{{\"disc\":[{nodes}],\"messages\":0,\"nodes\":[{nodes}],\"partitions\":[],\"running\":[{nodes}],\"state\":\"running\"}}\nok\n"
            ));
        }
        if script.contains("'--local'") || script.contains("--local") {
            return ok("[]\n".into());
        }
        if script.contains("erlang_cookie_sources") {
            // As `rabbitmq-diagnostics -q erlang_cookie_sources` prints it on Windows
            // (`output/2` of erlang_cookie_sources_command.ex in rabbitmq-server's
            // deps/rabbitmq_cli): the home folder is HOMEDRIVE and HOMEPATH, joined to
            // the file name by Elixir's `Path.join`, which writes `/`; USER is not set on
            // Windows, so the user is "(none)".
            return ok(concat!(
                "Cookie File\n\n",
                "Effective user: (none)\n",
                "Effective home directory: C:\\Users\\Administrator\n",
                "Cookie file path: C:\\Users\\Administrator/.erlang.cookie\n",
                "Cookie file exists? true\n",
                "Cookie file type: regular\n",
                "Cookie file access: read_write\n",
                "Cookie file size: 32\n",
                "\nCookie CLI Switch\n\n",
                "--erlang-cookie value set? false\n",
                "--erlang-cookie value length: 0\n",
                "\nEnv variable  (Deprecated)\n\n",
                "RABBITMQ_ERLANG_COOKIE value set? false\n",
                "RABBITMQ_ERLANG_COOKIE value length: 0\n",
            )
            .into());
        }
        if script.contains("GetHostAddresses") || script.contains("getent ahostsv4") {
            let name = s
                .address_book
                .keys()
                .find(|n| script.contains(&format!("'{n}'")) || script.contains(&format!(" {n} ")))
                .cloned()
                .unwrap_or_default();
            return ok(format!(
                "{}\n",
                s.address_book.get(&name).cloned().unwrap_or_default()
            ));
        }
        if script.contains("TcpClient") || script.contains("/dev/tcp") {
            return ok("open 0\nopen 1\n".into());
        }
        ok(String::new())
    }

    /// The fact reading: for each file the script asks for, what the host has.
    fn reading(&self, script: &str) -> String {
        let s = &self.state;
        let mut out = String::new();
        for line in script.lines() {
            let (hash, path) = if let Some(p) = line.strip_prefix("Read-Text ") {
                (false, p.trim_matches('\''))
            } else if let Some(p) = line.strip_prefix("Read-Hash ") {
                (true, p.trim_matches('\''))
            } else if let Some(p) = line.strip_prefix("f ") {
                (false, p)
            } else if let Some(p) = line.strip_prefix("s ") {
                (true, p)
            } else {
                continue;
            };
            match s.files.get(path) {
                None => out.push_str(&format!("@@missing - {path}\n")),
                Some((bytes, owner, mode)) if hash => out.push_str(&format!(
                    "@@hash {mode:o}:{owner}\t{path}\n{}\n",
                    crate::util::sha256_hex(bytes)
                )),
                Some((bytes, owner, mode)) => {
                    use base64::Engine;
                    out.push_str(&format!(
                        "@@file {mode:o}:{owner}\t{path}\n{}\n",
                        base64::engine::general_purpose::STANDARD.encode(bytes)
                    ))
                }
            }
        }
        for l in &s.leftovers {
            out.push_str(&format!("@@leftover {l}\n"));
        }
        out.push_str(&format!("@@hostname {}\n", s.hostname));
        for (k, v) in &s.settings {
            out.push_str(&format!("@@setting {k} {v}\n"));
        }
        out.push_str(&format!(
            "@@stamp {}\n@@pid {}\n@@manager {}\n",
            s.stamp.as_deref().unwrap_or("none"),
            if s.running { "4242" } else { "none" },
            if self.windows { "windows" } else { "direct" }
        ));
        if self.windows {
            out.push_str(
                "@@sbin C:\\Program Files\\RabbitMQ Server\\rabbitmq_server-3.10.8\\sbin\n@@shell none\n@@package rabbitmq 3.10.8\n@@package erlang 25.2.3\n",
            );
        }
        out
    }
}

impl Connection for Scripted {
    fn host(&self) -> &str {
        &self.host
    }

    fn exec(&mut self, line: &str, _timeout: Duration) -> transport::Result<Exec> {
        if !self.windows {
            self.record(format!("exec (sh):\n{line}"));
            return Ok(self.answer(line));
        }
        assert!(
            line.len() <= windows::COMMAND_LINE_MAX,
            "{} chars on one command line",
            line.len()
        );
        let script = if let Some(script) = windows::decode(line) {
            assert_eq!(
                windows::encode(&script),
                line,
                "the encoding does not round-trip"
            );
            self.record(format!(
                "exec -EncodedCommand ({} chars), decoded:\n{}",
                line.len(),
                Self::body(&script)
            ));
            script
        } else {
            let path = line
                .split("-File \"")
                .nth(1)
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or_else(|| panic!("neither -EncodedCommand nor -File: {line}"));
            self.record(format!("exec {line}"));
            self.scripts
                .get(path)
                .unwrap_or_else(|| panic!("{path} was not put before it ran"))
                .clone()
        };
        Ok(self.answer(&script))
    }

    fn exec_input(
        &mut self,
        line: &str,
        input: &[u8],
        _timeout: Duration,
    ) -> transport::Result<Exec> {
        assert!(
            self.stdin_only,
            "stdin sent over a connection with a file transfer"
        );
        let script = windows::decode(line).expect("an -EncodedCommand");
        assert_eq!(
            windows::encode(&script),
            line,
            "the encoding does not round-trip"
        );
        let body = Self::body(&script);
        if script.contains("HttpWebRequest") {
            self.record(format!(
                "exec -EncodedCommand ({} chars) with {} bytes of stdin (the request, as JSON), decoded:\n{body}",
                line.len(),
                input.len()
            ));
            return Ok(Exec {
                status: 1,
                stdout: String::new(),
                stderr: "Unable to connect to the remote server\n".into(),
            });
        }
        assert!(script.contains("[Console]::In.ReadLine()"), "{script}");
        use base64::Engine;
        let mut bytes = Vec::new();
        for l in String::from_utf8_lossy(input).lines() {
            bytes.extend(base64::engine::general_purpose::STANDARD.decode(l).unwrap());
        }
        assert!(
            script.contains(&crate::util::sha256_hex(&bytes)),
            "the receiving script checks another hash"
        );
        self.record(format!(
            "exec -EncodedCommand ({} chars) with the file as base64 lines on stdin, decoded:\n{body}--- {} stdin, decoded:\n{}",
            line.len(),
            self.host,
            if bytes.ends_with(b".ps1") { String::new() } else { show(&bytes) }
        ));
        let path = script
            .lines()
            .find_map(|l| l.strip_prefix("$Path = '"))
            .and_then(|p| p.strip_suffix('\''))
            .unwrap()
            .to_string();
        if path.ends_with(".ps1") {
            self.scripts
                .insert(path, String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(Exec {
            status: 0,
            stdout: String::new(),
            stderr: String::new(),
        })
    }

    fn can_put(&self) -> bool {
        !self.stdin_only
    }

    fn can_tunnel(&self) -> bool {
        !self.stdin_only
    }

    fn put(&mut self, path: &str, bytes: &[u8]) -> transport::Result<()> {
        let text = String::from_utf8_lossy(bytes).into_owned();
        if path.ends_with(".ps1") {
            assert!(text.starts_with('\u{feff}'), "script file without a BOM");
            self.record(format!(
                "put {path} ({} bytes), a script:\n{}",
                bytes.len(),
                Self::body(&text)
            ));
            self.scripts.insert(path.to_string(), text);
        } else {
            self.record(format!(
                "put {path} ({} bytes):\n{}",
                bytes.len(),
                show(bytes)
            ));
        }
        Ok(())
    }

    fn http(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        _auth: Option<(&str, &str)>,
        _body: Option<&str>,
    ) -> transport::Result<HttpResponse> {
        self.record(format!(
            "http {method} {path} on port {port}: nothing answers"
        ));
        Err(transport::TransportError::Io {
            host: self.host.clone(),
            what: format!("{method} {path}"),
            reason: "nothing answers (scripted host)".into(),
        })
    }

    fn server_version(&self) -> Option<String> {
        Some(self.state.banner.clone())
    }
}

/// The test's inventory: a Linux central host and Windows sites over SSH.
fn inventory(dir: &Path, sites: &[&str]) -> Inventory {
    std::fs::write(dir.join("cookie"), COOKIE).unwrap();
    std::fs::write(dir.join("admin.pw"), "admin-pw").unwrap();
    let mut text = String::from(
        "[cluster]\nname = \"plant\"\ncookie = { file = \"cookie\" }\nhosts_file = true\n\n\
         [[hosts]]\nname = \"mgmt\"\naddress = \"10.0.0.10\"\nos = \"linux\"\nrole = \"central\"\nservice = \"direct\"\n",
    );
    for (k, s) in sites.iter().enumerate() {
        text.push_str(&format!(
            "\n[[hosts]]\nname = \"{s}\"\naddress = \"10.0.0.{}\"\nos = \"windows\"\ntransport = \"ssh\"\nrole = \"site\"\n",
            11 + k
        ));
    }
    for s in sites {
        text.push_str(&format!(
            "\n[[sites]]\nhost = \"{s}\"\nexchange = \"site.{s}\"\nqueue = \"site.{s}.data\"\n"
        ));
    }
    text.push_str(
        "\n[[users]]\nname = \"admin\"\npassword = { file = \"admin.pw\" }\ntags = [\"administrator\"]\npermissions = [{ configure = \".*\", write = \".*\", read = \".*\" }]\n",
    );
    let path = dir.join("inventory.toml");
    std::fs::write(&path, &text).unwrap();
    inventory::load(&path, inventory::Needs::Hosts).unwrap()
}

/// A host that has exactly what `r` renders, running, a member.
fn converged(inv: &Inventory, r: &HostRender) -> HostState {
    let h = inv.host(&r.host).unwrap();
    let mut files = BTreeMap::new();
    for f in &r.files {
        let bytes = match &f.ownership {
            Ownership::Block { .. } => {
                let base = if h.os == inventory::Os::Windows {
                    WINDOWS_HOSTS
                } else {
                    "127.0.0.1 localhost\n"
                };
                let Content::Text(block) = &f.content else {
                    unreachable!()
                };
                format!("{base}{block}").into_bytes()
            }
            Ownership::Whole => f.content.bytes().to_vec(),
        };
        files.insert(
            f.path.clone(),
            (
                bytes,
                f.owner.clone().unwrap_or_default(),
                f.mode.unwrap_or(0),
            ),
        );
    }
    HostState {
        files,
        settings: r
            .settings
            .iter()
            .map(|s| (s.key.clone(), s.value.clone()))
            .collect(),
        stamp: r.service_stamp.clone(),
        running: true,
        member: true,
        blank: false,
        // `[System.Net.Dns]::GetHostName()` prints the name as set, and Windows Setup
        // sets it in capitals (WIN-7Q2K9 when generated, the inventory's name in
        // capitals when typed in Server Manager, which upper-cases it).
        hostname: h.name.to_uppercase(),
        banner: "SSH-2.0-OpenSSH_for_Windows_9.5".into(),
        address_book: inv
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.address.clone()))
            .collect(),
        seed: inv.central().node_name(),
        node: h.node_name(),
        lock: None,
        leftovers: Vec::new(),
    }
}

/// A Windows host as RabbitMQ's installer leaves it: the service running with its
/// defaults, none of warren's files, settings or service stamp, standalone.
fn fresh(inv: &Inventory, r: &HostRender) -> HostState {
    let mut s = converged(inv, r);
    s.files.clear();
    s.files.insert(
        r"C:\Windows\System32\drivers\etc\hosts".into(),
        (
            WINDOWS_HOSTS.as_bytes().to_vec(),
            "Administrators,SYSTEM,Users".into(),
            0,
        ),
    );
    s.settings.clear();
    s.stamp = None;
    s.member = false;
    s.banner = "SSH-2.0-OpenSSH_for_Windows_7.7".into();
    s
}

/// Runs facts, plan and the executor's host steps and joins against scripted hosts;
/// returns the transcript.
fn transcript(inv: &Inventory, states: Vec<HostState>) -> String {
    transcript_over(inv, states, false)
}

/// The same, with the Windows hosts reached as over WinRM (`stdin_only`).
fn transcript_over(inv: &Inventory, states: Vec<HostState>, winrm: bool) -> String {
    let rendered = render::render(inv, None).unwrap();
    let log = Arc::new(Mutex::new(Log {
        entries: Vec::new(),
        facts_phase: true,
    }));
    let mut conns: Vec<Box<dyn Transport>> = inv
        .hosts
        .iter()
        .zip(states)
        .map(|(h, state)| {
            let conn = Scripted {
                host: h.name.clone(),
                windows: h.os == inventory::Os::Windows,
                stdin_only: winrm && h.os == inventory::Os::Windows,
                state,
                log: log.clone(),
                scripts: BTreeMap::new(),
            };
            Box::new(Remote::new(Box::new(conn), platform::for_host(h)).with_run_id(7))
                as Box<dyn Transport>
        })
        .collect();
    let hosts: Vec<_> = facts::gather_hosts(inv, &rendered.hosts, &mut facts::probes(&mut conns))
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let facts = Facts {
        hosts,
        cluster: Err(Unreadable("not read in a transcript".into())),
        links: Default::default(),
        balancer: None,
    };
    let plan = crate::plan::plan(inv, &rendered.hosts, &facts, Default::default());
    log.lock().unwrap().facts_phase = false;
    let progress = crate::ui::Progress::new(&[], 1);
    let mut ex = Executor::new(inv, &mut conns, &progress);
    // Fresh nodes take their wave's way (`Ctx::fresh_node`), after the others.
    let fresh: Vec<usize> = plan
        .waves
        .iter()
        .filter(|w| w.kind == crate::plan::WaveKind::Fresh)
        .flat_map(|w| w.hosts.iter().copied())
        .collect();
    for &i in &inv.central_first() {
        let hp = &plan.hosts[i];
        if fresh.contains(&i) {
            continue;
        }
        if hp.upgrade.is_some() && hp.service != crate::plan::Service::Start {
            ex.upgrade_host(i, hp).unwrap();
        } else if hp.changes() {
            ex.host(i, hp).unwrap();
        }
    }
    for j in &plan.joins {
        let i = inv.hosts.iter().position(|h| h.name == j.host).unwrap();
        if fresh.contains(&i) {
            ex.fresh(i, &plan.hosts[i]).unwrap();
        } else {
            ex.join(&j.host).unwrap();
        }
    }
    let log = log.lock().unwrap();
    let mut out = String::from("== the plan\n");
    out.push_str(&crate::plan::view::text(&plan));
    out.push_str("\n== reading the facts, host by host\n");
    for h in &inv.hosts {
        for (_, host, entry) in log
            .entries
            .iter()
            .filter(|(f, host, _)| *f && *host == h.name)
        {
            out.push_str(&format!("--- {host}: {entry}\n"));
        }
    }
    out.push_str("\n== apply: host steps and joins, in order\n");
    for (_, host, entry) in log.entries.iter().filter(|(f, _, _)| !f) {
        out.push_str(&format!("--- {host}: {entry}\n"));
    }
    assert!(
        !out.contains(COOKIE),
        "the cookie's value is in the transcript"
    );
    assert!(
        !out.contains("UE9JU09OS0VZ"),
        "the TLS key's value is in the transcript"
    );
    out
}

fn setup(sites: &[&str]) -> (tempfile::TempDir, Inventory, Vec<HostRender>) {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path(), sites);
    let rendered = render::render(&inv, None).unwrap();
    (dir, inv, rendered.hosts)
}

#[test]
fn windows_first_bootstrap() {
    let (_d, inv, r) = setup(&["win1"]);
    let states = vec![converged(&inv, &r[0]), fresh(&inv, &r[1])];
    let t = transcript(&inv, states);
    assert!(
        t.contains("reinstall and") || t.contains("! reinstall"),
        "{t}"
    );
    insta::assert_snapshot!("windows_first_bootstrap", t);
}

/// A Windows site upgraded to a pinned RabbitMQ and Erlang: drained, stopped, both
/// installers run silently (Erlang's downloaded from its URL first, RabbitMQ's from
/// a path on the host), the service reinstalled from the new version's folder so it
/// runs the new Erlang and reads warren's environment file, revived.
#[test]
fn windows_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path(), &["win1"]);
    let text = std::fs::read_to_string(&inv.path).unwrap().replacen(
        "transport = \"ssh\"\nrole = \"site\"\n",
        "transport = \"ssh\"\nrole = \"site\"\nrabbitmq_version = \"3.10.25\"\nerlang_version = \"25.3.2.8\"\nrabbitmq_installer = 'C:\\installers\\rabbitmq-server-3.10.25.exe'\nerlang_installer = \"https://github.com/erlang/otp/releases/download/OTP-25.3.2.8/otp_win64_25.3.2.8.exe\"\n",
        1,
    );
    std::fs::write(&inv.path, text).unwrap();
    let inv = inventory::load(&inv.path, inventory::Needs::Hosts).unwrap();
    let r = render::render(&inv, None).unwrap().hosts;
    let t = transcript(&inv, vec![converged(&inv, &r[0]), converged(&inv, &r[1])]);
    assert!(
        t.contains("^ upgrade: RabbitMQ 3.10.8 -> 3.10.25; Erlang 25.2.3 -> 25.3.2.8"),
        "{t}"
    );
    let apply = t.split("== apply").nth(1).unwrap();
    let at = |s: &str| {
        apply
            .find(s)
            .unwrap_or_else(|| panic!("{s} not sent: {apply}"))
    };
    assert!(at("'drain'") < at("Stop-Service"));
    assert!(at("Stop-Service") < at("Install-From 'https://github.com/erlang"));
    assert!(
        at("Install-From 'https://github.com/erlang")
            < at("Install-From 'C:\\installers\\rabbitmq-server-3.10.25.exe' 'RabbitMQ'")
    );
    assert!(at("'RabbitMQ'\n") < at("rabbitmq-service.bat"));
    assert!(at("rabbitmq-service.bat") < at("'revive'"));
    insta::assert_snapshot!("windows_upgrade", t);
}

#[test]
fn windows_no_op() {
    let (_d, inv, r) = setup(&["win1"]);
    let states = vec![converged(&inv, &r[0]), converged(&inv, &r[1])];
    let t = transcript(&inv, states);
    assert!(
        t.contains(
            "win1 (rabbit@win1, windows):\n  = no changes (14 up to date, RabbitMQ running)"
        ),
        "{t}"
    );
    let apply = t.split("== apply").nth(1).unwrap();
    assert_eq!(apply.lines().count(), 1, "apply sent something: {apply}");
    insta::assert_snapshot!("windows_no_op", t);
}

#[test]
fn windows_config_change_restarts() {
    let (_d, inv, r) = setup(&["win1"]);
    let mut win = converged(&inv, &r[1]);
    let conf = win
        .files
        .get_mut(r"C:\ProgramData\RabbitMQ\rabbitmq.conf")
        .unwrap();
    conf.0 = String::from_utf8_lossy(&conf.0)
        .replace(
            "cluster_partition_handling = ignore",
            "cluster_partition_handling = autoheal",
        )
        .into_bytes();
    let t = transcript(&inv, vec![converged(&inv, &r[0]), win]);
    assert!(
        t.contains("! restart RabbitMQ: rabbitmq.conf changed"),
        "{t}"
    );
    assert!(!t.contains("reinstall"), "{t}");
    insta::assert_snapshot!("windows_config_change", t);
}

#[test]
fn windows_env_change_reinstalls() {
    let (_d, inv, r) = setup(&["win1"]);
    let mut win = converged(&inv, &r[1]);
    let env = win
        .files
        .get_mut(r"C:\ProgramData\RabbitMQ\rabbitmq-env-conf.bat")
        .unwrap();
    env.0 = String::from_utf8_lossy(&env.0)
        .replace("DIST_PORT=25672", "DIST_PORT=25999")
        .into_bytes();
    win.stamp = Some(crate::util::sha256_hex(&env.0));
    let t = transcript(&inv, vec![converged(&inv, &r[0]), win]);
    assert!(
        t.contains("! reinstall the RabbitMQ service")
            && t.contains("rabbitmq-env-conf.bat changed"),
        "{t}"
    );
    insta::assert_snapshot!("windows_env_change", t);
}

#[test]
fn windows_cookie_change_stops_first() {
    let (_d, inv, r) = setup(&["win1"]);
    let mut win = converged(&inv, &r[1]);
    for (path, f) in win.files.iter_mut() {
        if path.ends_with(".erlang.cookie") {
            f.0 = b"SOMEOTHERCOOKIE".to_vec();
        }
    }
    let t = transcript(&inv, vec![converged(&inv, &r[0]), win]);
    let stop = t.find("Stop-Service").expect("stopped");
    let write = t
        .find(r"systemprofile\.erlang.cookie.warren-new")
        .expect("written");
    assert!(
        stop < write,
        "the cookie was written before the service stopped:\n{t}"
    );
    assert!(t.contains("erlang_cookie_sources"), "{t}");
    insta::assert_snapshot!("windows_cookie_change", t);
}

#[test]
fn windows_node_added() {
    let (_d, inv, r) = setup(&["win1", "win2"]);
    // The cluster as it was before win2 was in the inventory.
    let (_d0, inv0, r0) = setup(&["win1"]);
    let mut win2 = fresh(&inv, &r[2]);
    win2.hostname = "WIN-7Q2K9".into();
    let mut states = vec![converged(&inv0, &r0[0]), converged(&inv0, &r0[1]), win2];
    // Names resolve as the hosts files warren writes first make them.
    let book = states[2].address_book.clone();
    for s in &mut states {
        s.address_book = book.clone();
    }
    let t = transcript(&inv, states);
    assert!(t.contains("+ join rabbit@win2 to rabbit@mgmt"), "{t}");
    assert!(t.contains("the host calls itself WIN-7Q2K9"), "{t}");
    insta::assert_snapshot!("windows_node_added", t);
}

/// Every PowerShell script and batch file `render` writes for a Windows host parses
/// with a real parser, in each variant of the inventory that changes them.
#[test]
fn every_rendered_windows_script_parses() {
    let dir = tempfile::tempdir().unwrap();
    let base = inventory(dir.path(), &["win1", "win2"]);
    let mut variants = vec![base.clone()];
    let mut by_config = base.clone();
    by_config.cluster.join = inventory::JoinMethod::Config;
    variants.push(by_config);
    let mut ram = base.clone();
    ram.hosts[2].node_type = inventory::NodeType::Ram;
    ram.hosts[2].paths = inventory::Paths::for_os(
        inventory::Os::Windows,
        "Administrator",
        &[(
            "sbin".to_string(),
            r"D:\RabbitMQ Server\rabbitmq_server-3.10.8\sbin".to_string(),
        )]
        .into_iter()
        .collect(),
    );
    variants.push(ram);
    let mut checked = 0;
    for inv in &variants {
        for h in render::render(inv, None).unwrap().hosts {
            if let Some(script) = &h.bootstrap {
                let problems = crate::pscheck::powershell_problems(script);
                assert!(
                    problems.is_empty(),
                    "{}: bootstrap.ps1: {problems:?}\n{script}",
                    h.host
                );
                assert!(!script.contains(COOKIE), "the cookie is in bootstrap.ps1");
                checked += 1;
            }
            for f in h.files.iter().filter(|f| f.path.ends_with(".bat")) {
                let text = String::from_utf8_lossy(f.content.bytes());
                let problems = crate::pscheck::batch_problems(&text);
                assert!(problems.is_empty(), "{}: {problems:?}\n{text}", f.path);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 12);
}

/// The first bootstrap over WinRM: the same scripts, but files (and the long fact
/// reading) arrive through a command's stdin and HTTP to the node goes through a
/// script on the host; each of those is pinned and parsed too.
#[test]
fn windows_first_bootstrap_over_winrm() {
    let (_d, inv, r) = setup(&["win1"]);
    let states = vec![converged(&inv, &r[0]), fresh(&inv, &r[1])];
    let t = transcript_over(&inv, states, true);
    assert!(!t.contains("--- win1: put "), "a file went by SFTP: {t}");
    assert!(
        t.contains("[Console]::In.ReadLine()") && t.contains("HttpWebRequest"),
        "{t}"
    );
    insta::assert_snapshot!("windows_first_bootstrap_over_winrm", t);
}

/// A run interrupted after writing rabbitmq-env-conf.bat but before reinstalling:
/// the file is up to date, the service's stamp is not, and the rerun reinstalls.
#[test]
fn an_interrupted_reinstall_is_finished_by_the_rerun() {
    let (_d, inv, r) = setup(&["win1"]);
    let mut win = converged(&inv, &r[1]);
    win.stamp = Some("0".repeat(64));
    let t = transcript(&inv, vec![converged(&inv, &r[0]), win]);
    assert!(
        t.contains("! reinstall the RabbitMQ service")
            && t.contains("the service was installed from another rabbitmq-env-conf.bat"),
        "{t}"
    );
    let apply = t.split("== apply").nth(1).unwrap();
    assert!(
        apply.contains("'install'")
            && !apply
                .lines()
                .any(|l| l.contains("put ") && !l.contains(", a script:")),
        "{apply}"
    );
}

/// A run killed while uploading left `rabbitmq.conf.warren-new` (the config itself is
/// up to date): the plan deletes it and nothing else.
#[test]
fn a_half_written_upload_is_deleted_on_windows() {
    let (_d, inv, r) = setup(&["win1"]);
    let mut win = converged(&inv, &r[1]);
    win.leftovers = vec![r"C:\ProgramData\RabbitMQ\rabbitmq.conf.warren-new".into()];
    let t = transcript(&inv, vec![converged(&inv, &r[0]), win]);
    let apply = t.split("== apply").nth(1).unwrap();
    assert!(
        apply.contains(
            r"Remove-Item -LiteralPath 'C:\ProgramData\RabbitMQ\rabbitmq.conf.warren-new' -Force"
        ),
        "{apply}"
    );
    assert!(
        !apply.contains("put ") && !apply.contains("Stop-Service"),
        "{apply}"
    );
}

/// The lock on a Windows central host: taken, refused while another operator's run
/// holds it, broken with --break-lock, read by plan, released; each script pinned and
/// parsed, the holder's varying details masked.
#[test]
fn windows_lock_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path(), &["win1"]);
    let r = render::render(&inv, None).unwrap();
    let log = Arc::new(Mutex::new(Log {
        entries: Vec::new(),
        facts_phase: false,
    }));
    let mut state = converged(&inv, &r.hosts[1]);
    let alice = r#"{"command":"apply","user":"alice","machine":"laptop7","pid":4242,"since":"2026-12-02T18:00:00Z","token":"abc"}"#;
    state.lock = Some(alice.into());
    let conn = Scripted {
        host: "win1".into(),
        windows: true,
        stdin_only: false,
        state,
        log: log.clone(),
        scripts: BTreeMap::new(),
    };
    let mut t: Box<dyn Transport> =
        Box::new(Remote::new(Box::new(conn), platform::for_host(&inv.hosts[1])).with_run_id(7));
    let held = crate::lock::read(&mut *t as &mut dyn crate::platform::Probe)
        .unwrap()
        .unwrap();
    assert_eq!(held.user, "alice");
    let refused = crate::lock::take(&mut *t, "apply", false).unwrap_err();
    assert!(
        format!("{refused:#}").contains("warren apply by alice on laptop7 (pid 4242)"),
        "{refused:#}"
    );
    let lock = crate::lock::take(&mut *t, "apply", true).unwrap();
    assert!(lock
        .note
        .as_deref()
        .unwrap()
        .contains("broke the lock of warren apply by alice"));
    crate::lock::release(&mut *t, &lock).unwrap();
    assert!(
        crate::lock::read(&mut *t as &mut dyn crate::platform::Probe)
            .unwrap()
            .is_none()
    );
    let holder =
        regex::Regex::new(r#"\{"command":"apply","user":"[^']*","token":"[0-9a-f]{32}"\}"#)
            .unwrap();
    let token = regex::Regex::new(r"'[0-9a-f]{32}'").unwrap();
    // The holder's length varies with the machine and the user.
    let length = regex::Regex::new(r"\(\d+ chars\)").unwrap();
    let mut out = String::new();
    for (_, host, entry) in log.lock().unwrap().entries.iter() {
        let entry = holder.replace_all(entry, "{this run's holder}");
        let entry = token.replace_all(&entry, "'(this run's token)'");
        let entry = length.replace_all(&entry, "(its length)");
        out.push_str(&format!("--- {host}: {entry}\n"));
    }
    insta::assert_snapshot!("windows_lock", out);
}

/// What verify sends a Windows host to probe listeners: the TCP probe and the TLS
/// handshake that reads each listener's certificate, both parsed as PowerShell.
#[test]
fn windows_listener_probes() {
    let (_d, inv, _) = setup(&["win1"]);
    let p = platform::for_host(&inv.hosts[1]);
    let ports = p.probe_ports(&[("10.0.0.10".into(), 5671), ("10.0.0.11".into(), 25672)]);
    let tls = p.probe_tls(
        &[
            ("10.0.0.10".into(), 5671, "mgmt".into()),
            ("10.0.0.11".into(), 25672, "win1".into()),
        ],
        Some(("ignored.pem", "ignored.key")),
    );
    let mut out = String::new();
    for (what, q) in [("probe_ports", ports), ("probe_tls", tls)] {
        let problems = crate::pscheck::powershell_problems(q.script());
        assert!(problems.is_empty(), "{what}: {problems:?}\n{}", q.script());
        out.push_str(&format!("--- {what}\n{}\n", q.script()));
    }
    insta::assert_snapshot!("windows_listener_probes", out);
}

/// A Windows site with TLS, bootstrapped: its CA, certificate and TLS distribution
/// options land beside its config, the key with the cookie's ACL (its value shown
/// nowhere), the firewall opens the TLS ports only, and the service is reinstalled
/// so that it reads the TLS distribution arguments.
#[test]
fn windows_tls_first_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let mut inv = inventory(dir.path(), &["win1"]);
    let pem = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n";
    for f in ["ca.pem", "mgmt.pem", "win1.pem"] {
        std::fs::write(dir.path().join(f), pem).unwrap();
    }
    for f in ["mgmt.key", "win1.key"] {
        std::fs::write(dir.path().join(f), KEY).unwrap();
    }
    for h in inv.hosts.iter_mut() {
        h.tls = Some(inventory::Tls {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join(format!("{}.pem", h.name)),
            key: dir.path().join(format!("{}.key", h.name)),
            keep_plain: false,
        });
    }
    let r = render::render(&inv, None).unwrap().hosts;
    let states = vec![converged(&inv, &r[0]), fresh(&inv, &r[1])];
    let t = transcript(&inv, states);
    assert!(t.contains(r"C:\ProgramData\RabbitMQ\tls-key.pem"), "{t}");
    assert!(t.contains("warren-amqps"), "{t}");
    assert!(!t.contains("'warren-amqp'"), "{t}");
    insta::assert_snapshot!("windows_tls_first_bootstrap", t);
}
