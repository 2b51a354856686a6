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
//!
//! Here: the `Platform` trait and what it speaks in, `Probe` and `Transport`; `Remote`,
//! the slots that bound parallel Erlang VMs, and the parsing of a fact reading each
//! have a file.

pub mod balancer;
mod doctor;
pub mod linux;
mod reading;
mod remote;
mod service;
mod slots;
pub mod windows;
mod windows_scripts;

pub use balancer::{BalancerProtocol, BalancerTls};
pub use reading::{normalize_owner, parse_reading, FileState, Reading};
pub use remote::Remote;
pub use service::{
    await_startup, check_cookie_source, drain, empty_database, enable_feature_flags, explained,
    forget, install, join_steps, queue_member, reinstall, remote_node, revive, start, start_app,
    start_plugins, stop, stop_app_again, stop_app_to_join, START_TIMEOUT,
};
pub use slots::{cli_slot, start_slot, Slot};

use crate::inventory::{Host, Os, ServiceManager, TransportKind};
use crate::transport::{self, Connection, Exec, HttpResponse};
use anyhow::anyhow;
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

/// The exit code of a CLI call that could not run the CLI at all (sh: command not
/// found; Windows: no Erlang where ERLANG_HOME points): no retry helps.
pub const NO_CLI_EXIT: i32 = 127;

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
    /// How to run a script too long for one command line (`name` makes the file's name
    /// unique and unguessable).
    fn script_file(&self, script: &str, name: &str) -> ScriptFile;
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
    /// The doctor's reading (`doctor.rs` says what it prints): rights, clock, own
    /// name, free disk and memory, the folders warren writes to, the RabbitMQ service
    /// and what it was installed with; in as many queries as it takes for each to
    /// fit on one command line (so nothing is written to the host to read it).
    fn doctor_read(&self, folders: &[&str]) -> Vec<Query>;
    /// Prints the last `lines` lines of the node's own log file, and first its path
    /// on a line `@@log PATH` (nothing more when there is no such file).
    fn node_log(&self, lines: usize) -> Query;
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
    /// Deletes the node's database (its Mnesia folder, with the message stores, and
    /// its feature-flags file), failing while the node runs. For a node that holds
    /// nothing: it then boots blank, and peer discovery joins it to the cluster.
    fn empty_database(&self) -> String;
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
