//! The one place that knows which operating system a host runs. A `Platform` (Linux in
//! `linux.rs`, Windows in `windows.rs`) turns each operation warren needs (read the
//! facts, put a file in place with its owner and mode or ACL, stop, start or reinstall
//! the service, run a RabbitMQ CLI, resolve a name, probe ports, apply a host setting)
//! into a script in the host's own language and parses what comes back. A `Remote`
//! pairs a platform with a `Connection`, which only runs command lines and moves bytes.
//!
//! Plan, apply, verify and drill see two handles and never the OS:
//! - `Probe`, read-only by type: it runs only `Query`s, which only this module builds,
//!   from a closed list of reads, and HTTP `GET`s;
//! - `Transport`, held only by the executor: it can also run scripts, write files and
//!   send HTTP requests that change the cluster.

pub mod balancer;
pub mod linux;
mod service;
pub mod windows;

pub use balancer::{BalancerProtocol, BalancerTls};
pub use service::{
    await_startup, check_cookie_source, drain, enable_feature_flags, forget, install, join,
    queue_member, reinstall, remote_node, revive, start, start_app, start_plugins, stop,
    START_TIMEOUT,
};

use crate::inventory::{Host, Os, ServiceManager, TransportKind};
use crate::transport::{self, Connection, Exec, HttpResponse};
use anyhow::{anyhow, Context};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A TLS listener to probe: address, port, the server name to ask for.
pub type TlsTarget = (String, u16, String);

/// A command that changes nothing. Built only by this module's platforms, from
/// `Read` and the fact reading, so a `Probe` cannot be made to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    script: String,
    /// It starts a RabbitMQ CLI (an Erlang VM): it takes one of the CLI slots.
    cli: bool,
}

impl Query {
    fn new(script: String) -> Query {
        Query { script, cli: false }
    }
    /// The script as the host's shell receives it (for transcripts and messages).
    pub fn script(&self) -> &str {
        &self.script
    }
}

/// The reads a `Probe` may make of a node, besides the fact reading itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<'a> {
    /// Messages in this node's own queues, as JSON.
    LocalMessages,
    /// `rabbitmq-plugins list` as JSON.
    Plugins,
    /// `rabbitmqctl await_startup`: returns once the node has booted.
    AwaitStartup,
    /// Each queue of the vhost with its policy, tab-separated.
    QueuePolicies { vhost: &'a str },
    /// `rabbitmq-diagnostics erlang_cookie_sources`: the cookie file the CLI reads.
    CookieSources,
    /// Everything the fact reading needs of a node without its management API, in
    /// one CLI call (one Erlang VM): its state, its cluster's node lists and
    /// partitions, and the messages in its own queues, as one JSON line.
    NodeState,
}

/// The expression `Read::NodeState` evaluates on the node. No double quotes, `!`,
/// `%` or `^`, which cmd.exe would change on their way to `rabbitmqctl.bat`.
/// A node between states (its boot not far enough along to say, or stopping)
/// answers `booting`: the plan waits for it.
pub const NODE_STATE_EXPR: &str = "S = try case rabbit:is_running() of true -> #{state => running, nodes => rabbit_mnesia:cluster_nodes(all), disc => rabbit_mnesia:cluster_nodes(disc), running => rabbit_mnesia:cluster_nodes(running), partitions => rabbit_node_monitor:partitions(), messages => lists:sum([case rabbit_amqqueue:info(Q, [messages]) of [{messages, M}] when is_integer(M) -> M; _ -> 0 end || V <- rabbit_vhost:list_names(), Q <- rabbit_amqqueue:list_local(V)])}; false -> #{state => case rabbit:is_booting() of true -> booting; false -> app_stopped end} end catch _:_ -> #{state => booting} end, io:format('~s~n', [rabbit_json:encode(S)]).";

impl<'a> Read<'a> {
    /// The CLI tool and arguments that make this read.
    pub fn cli(self) -> (Tool, Vec<&'a str>) {
        match self {
            Read::LocalMessages => (
                Tool::Ctl,
                vec!["list_queues", "--local", "messages", "--formatter", "json"],
            ),
            Read::Plugins => (Tool::Plugins, vec!["list", "--formatter", "json"]),
            Read::AwaitStartup => (Tool::Ctl, vec!["await_startup", "--timeout", "30"]),
            Read::QueuePolicies { vhost } => (
                Tool::Ctl,
                vec![
                    "list_queues",
                    "-p",
                    vhost,
                    "--no-table-headers",
                    "name",
                    "policy",
                ],
            ),
            Read::CookieSources => (Tool::Diagnostics, vec!["erlang_cookie_sources"]),
            Read::NodeState => (Tool::Ctl, vec!["eval", NODE_STATE_EXPR]),
        }
    }
}

/// RabbitMQ's command-line tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ctl,
    Plugins,
    Queues,
    Diagnostics,
    Upgrade,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Ctl => "rabbitmqctl",
            Tool::Plugins => "rabbitmq-plugins",
            Tool::Queues => "rabbitmq-queues",
            Tool::Diagnostics => "rabbitmq-diagnostics",
            Tool::Upgrade => "rabbitmq-upgrade",
        }
    }
}

/// A host-wide setting outside RabbitMQ's files that warren keeps (Windows: the
/// machine's RABBITMQ_BASE, firewall rules). Rendered from the inventory, read as a
/// fact under the same key, applied by the host's platform.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    /// `env:NAME` or `firewall:RULE`.
    pub key: String,
    /// The value as the host's fact reading reports it when the setting is right.
    pub value: String,
    /// Whether the RabbitMQ service reads it only when installed (reinstall).
    pub reinstall: bool,
}

/// What an upgrade installs on a host while its node is stopped: on Linux apt's
/// package versions, on Windows the installers (paths on the host, or http(s) URLs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Install {
    pub rabbitmq: Option<String>,
    pub erlang: Option<String>,
}

/// A managed file as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Missing,
    /// Content is read for files that hold no secret, to show diffs.
    Text {
        content: Vec<u8>,
        mode: u32,
        owner: String,
    },
    /// Secrets are read as a SHA-256 only: the value never leaves the host.
    Hash {
        sha256: String,
        mode: u32,
        owner: String,
    },
}

/// What one fact reading of a host reported.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub files: BTreeMap<String, FileState>,
    /// The service manager the host runs RabbitMQ under, as far as the host can tell
    /// (decides `service = "auto"`): systemd, none (`direct`), or Windows' services.
    pub manager: Option<ServiceManager>,
    /// RabbitMQ's command-line tools were looked for and not found.
    pub cli_missing: bool,
    /// The RabbitMQ node's OS process, when it runs.
    pub pid: Option<u32>,
    /// The host's own name (hostname, Windows' COMPUTERNAME).
    pub hostname: Option<String>,
    /// Settings as they are now, by key; a missing key is a setting not made.
    pub settings: BTreeMap<String, String>,
    /// The SHA-256 of the service environment file the service was installed from
    /// (Windows); `None` when no service was installed by warren.
    pub service_stamp: Option<String>,
    /// Where RabbitMQ's CLI tools were found (Windows).
    pub sbin: Option<String>,
    /// The default shell OpenSSH starts commands in, when set (Windows).
    pub ssh_shell: Option<String>,
    /// Temporary files of an interrupted upload (`PATH.warren-new`).
    pub leftovers: Vec<String>,
    /// Installed versions by package (see `HostFacts::packages`).
    pub packages: BTreeMap<String, String>,
}

/// Where a script too long for one command line is put and how it is run.
pub struct ScriptFile {
    /// The folder to make first, in the host's syntax.
    pub folder: String,
    /// Where the file goes, in the host's syntax.
    pub path: String,
    /// What the file holds.
    pub content: String,
    /// The command line that runs it.
    pub command_line: String,
}

/// One operating system's way of doing warren's operations. Pure: it builds scripts
/// and parses answers; the `Remote` sends them.
pub trait Platform: Send + Sync {
    fn os(&self) -> Os;
    /// The command line that runs `script`, or `None` when it is too long for one.
    fn command_line(&self, script: &str) -> Option<String>;
    /// How to run a script too long for one command line (`n` makes the name unique).
    fn script_file(&self, script: &str, n: u64) -> ScriptFile;
    /// A script that makes `folder` (and its parents).
    fn make_folder(&self, folder: &str) -> String;
    /// The folder a file path is in.
    fn parent<'a>(&self, path: &'a str) -> &'a str;
    /// A script that writes what arrives on its stdin (base64, a line at a time) to
    /// `path`, private to the login user, and fails unless its SHA-256 is `sha256`:
    /// how files travel where the connection has no file transfer (WinRM).
    fn receive_file(&self, path: &str, sha256: &str) -> String;
    /// A script that makes an HTTP request to `127.0.0.1:port` on the host, reading
    /// `{"method", "path", "auth", "body"}` as JSON from its stdin (so no password is
    /// on a command line), and prints `status N` and then the body in base64: for
    /// connections that carry no tunnel (WinRM). `None` where every transport tunnels.
    fn local_http(&self, port: u16) -> Option<String>;
    /// A script that moves the uploaded `tmp` over `path` (or copies it through the
    /// existing file when `in_place`) and sets the owner and mode (Linux) or the ACL
    /// (Windows: `owner` lists who may read it); on failure `tmp` is removed.
    fn place_file(
        &self,
        tmp: &str,
        path: &str,
        owner: Option<&str>,
        mode: Option<u32>,
        in_place: bool,
    ) -> String;
    /// A command line run as the login user itself (no sudo) that makes a fresh folder
    /// only that user can enter and prints its path: where uploads go first when the
    /// login user cannot write the target folders (Linux through sudo). `None`: files
    /// go to a temporary name beside their target.
    fn private_folder(&self) -> Option<String> {
        None
    }
    /// Where an upload to `path` goes first (when there is no private folder): beside
    /// its target, so the move is one rename. A fact reading finds it when a run
    /// was interrupted.
    fn upload_temp(&self, path: &str, _in_place: bool) -> String {
        format!("{path}.warren-new")
    }
    /// Reads every managed file (secrets by hash), the settings, and the node's state.
    fn read_host(&self, files: &[(&str, bool)], settings: &[Setting]) -> Query;
    /// A read of the node, through its CLI (the same arguments on every OS).
    fn read(&self, r: Read) -> Query {
        let (tool, args) = r.cli();
        Query {
            script: self.cli(tool, &args),
            cli: true,
        }
    }
    /// Waits (bounded) until the node has registered with epmd, without starting an
    /// Erlang VM: `rabbitmqctl await_startup` fails at once before that, and each
    /// try costs a VM start. `None` where there is no cheap way (the CLI is retried).
    fn await_registered(&self) -> Option<Query> {
        None
    }
    /// Prints the IPv4 addresses `name` resolves to on the host, one per line.
    fn resolve(&self, name: &str) -> Query;
    /// Prints `open K` for each target (address, port) that accepts a TCP connection
    /// within 5 s, K its index.
    fn probe_ports(&self, targets: &[(String, u16)]) -> Query;
    /// Prints `tls K SHA256 NOT_AFTER` for each target that completes a TLS handshake
    /// within 10 s, K its index, SHA256 the certificate the listener presents (of its
    /// DER bytes, lowercase hex) and NOT_AFTER its expiry in Unix seconds. A target is
    /// (address, port, the name to ask for); `client` is (certificate, key) files on
    /// the probing host to present where the listener requires one (TLS distribution).
    fn probe_tls(&self, targets: &[TlsTarget], client: Option<(&str, &str)>) -> Query;
    /// Stops RabbitMQ and waits until its OS process is gone.
    fn stop(&self, m: ServiceManager) -> String;
    /// Starts RabbitMQ (it then boots; `await_startup` waits for that).
    fn start(&self, m: ServiceManager, daemon_reload: bool) -> String;
    /// Reinstalls the RabbitMQ service so it reads its environment again, and starts
    /// it; `None` where a service is never reinstalled (Linux).
    fn reinstall(&self) -> Option<String>;
    /// A RabbitMQ CLI call that may change the node.
    fn cli(&self, tool: Tool, args: &[&str]) -> String;
    /// Installs what `what` names, with the node stopped, leaving it stopped.
    fn install(&self, what: &Install) -> String;
    /// A script that deletes a file, if it exists.
    fn remove_file(&self, path: &str) -> String;
    /// Where the lock of a run in progress lives on the host (the central host's).
    fn lock_path(&self) -> String;
    /// A script that creates the lock file holding `content`, unless it exists; with
    /// `replacing`, it replaces a lock file that holds exactly that (or none). Prints
    /// `@@taken`, or `@@held` and the lock file as it is.
    fn take_lock(&self, content: &str, replacing: Option<&str>) -> String;
    /// A script that deletes the lock file if it holds `token`.
    fn release_lock(&self, token: &str) -> String;
    /// Prints the lock file, or nothing when there is none.
    fn read_lock(&self) -> Query;
    /// A script that makes a setting as `s` says.
    fn apply_setting(&self, s: &Setting) -> String;
    /// The cookie file the CLI tools read when warren runs them.
    fn cli_cookie(&self) -> String;
    /// HAProxy on this host: prints `haproxy VERSION` (or `haproxy missing`) and,
    /// when it runs, `running`. `None` where warren runs no balancer (Windows: the
    /// inventory refuses one there).
    fn balancer_read(&self, _m: ServiceManager) -> Option<Query> {
        None
    }
    /// Checks the written HAProxy configuration, then starts HAProxy or has it reread
    /// the file (established connections stay with the old process until they end).
    fn balancer_reload(&self, _m: ServiceManager) -> Option<String> {
        None
    }
    /// Opens `n` connections to each local frontend (port, protocol) of the balancer
    /// and prints `K HEX` per answer, K the connection's index over all frontends and
    /// HEX the first bytes the server sent back: an AMQP frontend is sent AMQP
    /// 0-9-1's protocol header, an MQTT one a CONNECT without credentials, a
    /// management one an HTTP GET without credentials. With `tls`, each connection
    /// is a TLS client's first (the nodes behind the balancer listen with TLS only),
    /// the chain checked against `tls.ca` where given.
    fn balancer_probe(
        &self,
        _frontends: &[(u16, BalancerProtocol)],
        _n: usize,
        _tls: Option<&BalancerTls>,
    ) -> Option<Query> {
        None
    }
}

/// The platform of `h`.
pub fn for_host(h: &Host) -> Box<dyn Platform> {
    match h.os {
        Os::Linux => Box::new(linux::Linux::new(h)),
        Os::Windows => Box::new(windows::Windows::new(h)),
    }
}

/// Connects to `h` by its transport and pairs the connection with its platform.
pub fn connect(h: &Host) -> anyhow::Result<Box<dyn Transport>> {
    let conn: Box<dyn Connection> = match h.transport {
        TransportKind::Ssh => Box::new(transport::ssh::Ssh::connect(h)?),
        TransportKind::Winrm => {
            let password = h
                .password
                .as_ref()
                .ok_or_else(|| anyhow!("{}: a WinRM host needs a password reference", h.name))?
                .read()
                .map_err(|e| anyhow!("{}: password: {e}", h.name))?;
            let e = transport::winrm::endpoint(h, password.expose().to_string());
            Box::new(transport::winrm::WinRm::connect(&e)?)
        }
    };
    Ok(Box::new(Remote::new(conn, for_host(h))))
}

/// Looking without touching.
pub trait Probe: Send {
    /// The host's name in the inventory, for messages.
    fn host(&self) -> &str;
    fn platform(&self) -> &dyn Platform;
    /// Runs a read-only query.
    fn query(&mut self, q: &Query, timeout: Duration) -> transport::Result<Exec>;
    /// An HTTP GET to `127.0.0.1:port` on the host.
    fn get(
        &mut self,
        port: u16,
        path: &str,
        auth: Option<(&str, &str)>,
    ) -> transport::Result<HttpResponse>;
    /// What the server says it runs (the SSH banner).
    fn server_version(&self) -> Option<String>;
}

/// Looking and changing: only the executor (and the drill) hold one.
pub trait Transport: Probe {
    /// Runs a script in the host's language (sh on Linux, PowerShell on Windows).
    fn run(&mut self, script: &str, timeout: Duration) -> transport::Result<Exec>;
    /// Any HTTP request to `127.0.0.1:port` on the host.
    fn http(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&str>,
    ) -> transport::Result<HttpResponse>;
    /// Writes `bytes` to `path`: to a temporary file beside it (private from the
    /// start), owner and mode or ACL set, then moved over it, so no reader ever sees
    /// half a file. `in_place` writes through the existing file instead (for files
    /// that are mount points, such as a container's /etc/hosts).
    fn upload(
        &mut self,
        path: &str,
        bytes: &[u8],
        owner: Option<&str>,
        mode: Option<u32>,
        in_place: bool,
    ) -> transport::Result<()>;
}

/// A count of slots shared by every host's thread: how many Erlang VMs warren has
/// starting at once. Each costs seconds of CPU; where hosts share a machine's CPUs
/// (the lab, or VMs on one hypervisor), twenty at once only queue for the CPU and
/// starve everything else on it, SSH included.
struct Slots {
    used: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
    /// The environment variable that sets the cap, and its default.
    var: &'static str,
    default: usize,
    cap: std::sync::OnceLock<usize>,
}

impl Slots {
    const fn new(var: &'static str, default: usize) -> Slots {
        Slots {
            used: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
            var,
            default,
            cap: std::sync::OnceLock::new(),
        }
    }

    fn cap(&self) -> usize {
        *self.cap.get_or_init(|| {
            std::env::var(self.var)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or(self.default)
        })
    }

    /// Waits for a free slot; it is given back when the `Slot` is dropped.
    fn take(&'static self) -> Slot {
        let mut n = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.cap() {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot(self)
    }
}

/// One slot of a `Slots`, held until dropped.
pub struct Slot(&'static Slots);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.used.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// RabbitMQ CLI calls at once, over all hosts (`WARREN_CLI_PARALLEL`, default 8).
static CLI_SLOTS: Slots = Slots::new("WARREN_CLI_PARALLEL", 8);
/// Nodes other than the seed starting (booting) at once, over all hosts
/// (`WARREN_PARALLEL_STARTS`, default 8: the user's four sites start together, a
/// 20-host lab on two cores in three batches; on hosts with CPUs of their own,
/// raise it).
static START_SLOTS: Slots = Slots::new("WARREN_PARALLEL_STARTS", 8);

/// Waits for a free CLI slot.
pub fn cli_slot() -> Slot {
    CLI_SLOTS.take()
}

/// Waits for a free start slot (held through a node's start and boot).
pub fn start_slot() -> Slot {
    START_SLOTS.take()
}

/// A connection and the platform of the host at its other end.
pub struct Remote {
    conn: Box<dyn Connection>,
    platform: Box<dyn Platform>,
    /// Folders this connection has already made sure of.
    folders: BTreeSet<String>,
    /// Scripts sent as files so far (their names are numbered).
    scripts: u64,
    /// Part of those names, so that two runs never share one (the process id).
    run_id: u64,
}

impl Remote {
    pub fn new(conn: Box<dyn Connection>, platform: Box<dyn Platform>) -> Remote {
        Remote {
            conn,
            platform,
            folders: BTreeSet::new(),
            scripts: 0,
            run_id: std::process::id() as u64,
        }
    }

    /// The same, with script file names fixed by `run_id` (for transcripts).
    pub fn with_run_id(mut self, run_id: u64) -> Remote {
        self.run_id = run_id;
        self
    }

    fn io_err(&self, what: &str, reason: String) -> transport::TransportError {
        transport::TransportError::Io {
            host: self.conn.host().to_string(),
            what: what.to_string(),
            reason,
        }
    }

    /// Makes `folder` once per connection.
    fn ensure_folder(&mut self, folder: &str) -> transport::Result<()> {
        if self.folders.contains(folder) {
            return Ok(());
        }
        let script = self.platform.make_folder(folder);
        let out = self.exec_script(&script, Duration::from_secs(120))?;
        if !out.ok() {
            return Err(self.io_err(&format!("making folder {folder}"), out.last_line()));
        }
        self.folders.insert(folder.to_string());
        Ok(())
    }

    /// Sends a script: on one command line, or, when too long for one, as a file.
    fn exec_script(&mut self, script: &str, timeout: Duration) -> transport::Result<Exec> {
        if let Some(line) = self.platform.command_line(script) {
            return self.conn.exec(&line, timeout);
        }
        self.scripts += 1;
        let f = self
            .platform
            .script_file(script, self.run_id * 1000 + self.scripts);
        self.ensure_folder(&f.folder.clone())?;
        self.send_file(&f.path, f.content.as_bytes())?;
        self.conn.exec(&f.command_line, timeout)
    }

    /// Puts `bytes` at `path` as they are: by the connection's file transfer, or,
    /// where it has none, through the stdin of the platform's receiving script.
    fn send_file(&mut self, path: &str, bytes: &[u8]) -> transport::Result<()> {
        if self.conn.can_put() {
            return self.conn.put(path, bytes);
        }
        let script = self
            .platform
            .receive_file(path, &crate::util::sha256_hex(bytes));
        let line = self.platform.command_line(&script).ok_or_else(|| {
            self.io_err(
                &format!("writing {path}"),
                "the receiving script is too long".into(),
            )
        })?;
        let out = self
            .conn
            .exec_input(&line, &base64_lines(bytes), Duration::from_secs(600))?;
        if !out.ok() {
            return Err(self.io_err(&format!("writing {path}"), out.last_line()));
        }
        Ok(())
    }

    /// An HTTP request to the host's own port: through the connection's tunnel, or,
    /// where it has none, through the platform's script on the host.
    fn request(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&str>,
    ) -> transport::Result<HttpResponse> {
        if self.conn.can_tunnel() {
            return self.conn.http(port, method, path, auth, body);
        }
        let what = format!("{method} {path} on port {port}");
        let Some(script) = self.platform.local_http(port) else {
            return self.conn.http(port, method, path, auth, body);
        };
        let line = self
            .platform
            .command_line(&script)
            .ok_or_else(|| self.io_err(&what, "the request script is too long".into()))?;
        let input = serde_json::json!({
            "method": method,
            "path": path,
            "auth": auth.map(|(u, p)| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            }),
            "body": body,
        })
        .to_string();
        let out = self
            .conn
            .exec_input(&line, input.as_bytes(), Duration::from_secs(60))?;
        if !out.ok() {
            return Err(self.io_err(
                &what,
                format!("nothing answers on port {port} ({})", out.last_line()),
            ));
        }
        let mut lines = out.stdout.lines().map(str::trim);
        let status = lines
            .next()
            .and_then(|l| l.strip_prefix("status "))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.io_err(&what, "the request script printed no status".into()))?;
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD
            .decode(lines.next().unwrap_or(""))
            .map_err(|_| self.io_err(&what, "the answer is not base64".into()))?;
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

impl Probe for Remote {
    fn host(&self) -> &str {
        self.conn.host()
    }
    fn platform(&self) -> &dyn Platform {
        &*self.platform
    }
    fn query(&mut self, q: &Query, timeout: Duration) -> transport::Result<Exec> {
        let _slot = q.cli.then(cli_slot);
        self.exec_script(&q.script, timeout)
    }
    fn get(
        &mut self,
        port: u16,
        path: &str,
        auth: Option<(&str, &str)>,
    ) -> transport::Result<HttpResponse> {
        self.request(port, "GET", path, auth, None)
    }
    fn server_version(&self) -> Option<String> {
        self.conn.server_version()
    }
}

impl Transport for Remote {
    fn run(&mut self, script: &str, timeout: Duration) -> transport::Result<Exec> {
        self.exec_script(script, timeout)
    }
    fn http(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&str>,
    ) -> transport::Result<HttpResponse> {
        self.request(port, method, path, auth, body)
    }
    fn upload(
        &mut self,
        path: &str,
        bytes: &[u8],
        owner: Option<&str>,
        mode: Option<u32>,
        in_place: bool,
    ) -> transport::Result<()> {
        let what = format!("writing {path}");
        let parent = self.platform.parent(path).to_string();
        // The parent folder may not exist yet (a systemd drop-in folder, RABBITMQ_BASE).
        self.ensure_folder(&parent)?;
        let tmp = match self.platform.private_folder() {
            // A login user that is not root writes into a folder of its own (mktemp:
            // mode 0700, a name no one can take first); sudo moves the file into place
            // and removes the folder.
            Some(line) => {
                let out = self.conn.exec(&line, Duration::from_secs(120))?;
                let folder = out.stdout.trim();
                if !out.ok() || folder.is_empty() {
                    return Err(self.io_err(
                        &what,
                        format!("making a private upload folder failed: {}", out.last_line()),
                    ));
                }
                format!("{folder}/{}", crate::util::file_name(path))
            }
            None => self.platform.upload_temp(path, in_place),
        };
        self.send_file(&tmp, bytes)?;
        let script = self.platform.place_file(&tmp, path, owner, mode, in_place);
        let done = self.exec_script(&script, Duration::from_secs(120))?;
        if !done.ok() {
            return Err(self.io_err(&what, done.last_line()));
        }
        Ok(())
    }
}

/// `bytes` as base64 for a receiving script: lines of 4864 characters (3648 bytes, a
/// multiple of 3, so each line decodes on its own).
fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let mut out = Vec::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 57 + 4);
    for c in bytes.chunks(57 * 64) {
        let text = base64::engine::general_purpose::STANDARD.encode(c);
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Parses a fact reading: lines starting with `@@` (the same for every platform),
/// each file's content or hash on the line after its own.
pub fn parse_reading(out: &str) -> anyhow::Result<Reading> {
    let mut r = Reading::default();
    let mut lines = out.lines().map(|l| l.trim_end_matches('\r'));
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("@@") else {
            continue;
        };
        let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let some = |v: &str| (!v.is_empty() && v != "none").then(|| v.to_string());
        match kind {
            "manager" => r.manager = ServiceManager::parse(rest),
            "pid" => r.pid = rest.parse().ok(),
            "hostname" => r.hostname = some(rest),
            "stamp" => r.service_stamp = some(rest),
            "sbin" => {
                r.sbin = some(rest);
                r.cli_missing = r.sbin.is_none();
            }
            "shell" => r.ssh_shell = some(rest),
            "leftover" => r.leftovers.push(rest.to_string()),
            "package" => {
                // `NAME VERSION`, or, from dpkg, `NAME VERSION STATUS` where only
                // `ii` (installed) counts.
                let mut w = rest.split_whitespace();
                if let (Some(name), Some(version)) = (w.next(), w.next()) {
                    if w.next().is_none_or(|status| status == "ii") {
                        r.packages.insert(name.to_string(), version.to_string());
                    }
                }
            }
            "setting" => {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                r.settings.insert(key.to_string(), value.trim().to_string());
            }
            "missing" => {
                let path = rest.split_once(' ').map(|(_, p)| p).unwrap_or("");
                r.files.insert(path.to_string(), FileState::Missing);
            }
            "file" | "hash" => {
                // A tab ends the owner, which may hold spaces on Windows
                // ("NT AUTHORITY\SYSTEM"); a path may hold spaces anywhere.
                let (meta, path) = rest
                    .split_once('\t')
                    .or_else(|| rest.split_once(' '))
                    .ok_or_else(|| anyhow!("bad line {line}"))?;
                let (mode, owner) = meta.split_once(':').unwrap_or((meta, ""));
                let mode = u32::from_str_radix(mode, 8).unwrap_or(0);
                let owner = normalize_owner(owner);
                let payload = lines.next().unwrap_or("").trim();
                let state = if kind == "file" {
                    use base64::Engine;
                    FileState::Text {
                        content: base64::engine::general_purpose::STANDARD
                            .decode(payload)
                            .context("file content is not base64")?,
                        mode,
                        owner,
                    }
                } else {
                    FileState::Hash {
                        sha256: payload.to_ascii_lowercase(),
                        mode,
                        owner,
                    }
                };
                r.files.insert(path.to_string(), state);
            }
            _ => {}
        }
    }
    Ok(r)
}

/// An owner as compared: a user name (Linux), or the accounts an ACL grants access
/// to, sorted, without their domain (Windows: `Administrator,Administrators,SYSTEM`).
pub fn normalize_owner(owner: &str) -> String {
    if !owner.contains(',') && !owner.contains('\\') {
        return owner.to_string();
    }
    let mut names: Vec<String> = owner
        .split(',')
        .map(|n| n.rsplit('\\').next().unwrap_or(n).trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_parse_with_crlf_and_acl_owners() {
        let out = "@@hostname WIN1\r\n@@file 0:BUILTIN\\Administrators,NT AUTHORITY\\SYSTEM,WIN1\\Administrator\tC:\\x\\a.conf\r\naGk=\r\n@@hash 0:SYSTEM,Administrators\tC:\\c\r\nABCDEF\r\n@@missing - C:\\y\r\n@@setting firewall:warren-amqp TCP 5672 Inbound Allow True\r\n@@pid none\r\n@@stamp none\r\n";
        let r = parse_reading(out).unwrap();
        assert_eq!(r.hostname.as_deref(), Some("WIN1"));
        assert_eq!(
            r.files[r"C:\x\a.conf"],
            FileState::Text {
                content: b"hi".to_vec(),
                mode: 0,
                owner: "Administrator,Administrators,SYSTEM".into()
            }
        );
        assert!(matches!(&r.files[r"C:\c"], FileState::Hash { sha256, .. } if sha256 == "abcdef"));
        assert_eq!(r.files[r"C:\y"], FileState::Missing);
        assert_eq!(
            r.settings["firewall:warren-amqp"],
            "TCP 5672 Inbound Allow True"
        );
        assert_eq!(r.pid, None);
        assert_eq!(r.service_stamp, None);
    }
}
