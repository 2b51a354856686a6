//! Linux: POSIX sh scripts, run as they are when warren logs in as root and through
//! `sudo -n sh -c` otherwise; files by SFTP, then `chown`, `chmod` and `mv`.

use super::service::JOURNAL_MARK;
use super::{Platform, Query, ScriptFile, Setting, Tool};
use crate::inventory::{Host, Os, Paths, ServiceManager};
use crate::transport::sh_quote;

/// Where a login user that is not root puts its uploads first (`mktemp -d`).
const PRIVATE_FOLDER_PREFIX: &str = "/tmp/warren-upload.";
/// The pid file of an HAProxy warren runs itself, where no service manager does.
const BALANCER_PID: &str = "/run/haproxy-warren.pid";

pub struct Linux {
    /// Commands go through `sudo -n` when the login user is not root.
    sudo: bool,
    /// RabbitMQ's pid file, which the node writes at boot.
    pid_file: String,
    /// The home of the `rabbitmq` user, whose cookie Debian's CLI wrappers read.
    data_dir: String,
    /// The node's name before the `@`, as epmd lists it.
    node_short: String,
    /// The node's whole name, which its files under the data folder carry.
    node_name: String,
    /// The node's own log file.
    log_file: String,
}

impl Linux {
    pub fn new(h: &Host) -> Linux {
        let (data_dir, log_dir) = match &h.paths {
            Paths::Linux {
                data_dir, log_dir, ..
            } => (data_dir.clone(), log_dir.clone()),
            Paths::Windows { .. } => ("/var/lib/rabbitmq".into(), "/var/log/rabbitmq".into()),
        };
        Linux {
            log_file: format!("{log_dir}/{}.log", h.node_name()),
            sudo: h.user != "root",
            pid_file: format!("{data_dir}/mnesia/{}.pid", h.node_name()),
            node_name: h.node_name(),
            data_dir,
            node_short: h
                .node_name()
                .split('@')
                .next()
                .unwrap_or("rabbit")
                .to_string(),
        }
    }
}

impl Linux {
    /// A shell function `node_pid` that prints the running node's pid, or fails.
    /// The pid file alone is not the node's word: a second `rabbitmq-server
    /// -detached` beside a running node removes it (seen on 3.10.8), and a killed
    /// start can leave one behind. So the file counts only when it names a live
    /// `beam.smp`; otherwise the node is asked through epmd, where a running node
    /// registers its distribution port, and the process listening on that port is it.
    fn node_pid_function(&self) -> String {
        format!(
            "node_pid() {{\n\
             \x20 p=$(cat {pid} 2>/dev/null)\n\
             \x20 if [ -n \"$p\" ] && [ \"$(cat /proc/$p/comm 2>/dev/null)\" = beam.smp ]; then echo \"$p\"; return 0; fi\n\
             \x20 port=$(epmd -names 2>/dev/null | sed -n {registered})\n\
             \x20 [ -n \"$port\" ] || return 1\n\
             \x20 p=$(ss -Hltnp \"sport = :$port\" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)\n\
             \x20 [ -n \"$p\" ] && echo \"$p\"\n\
             }}\n",
            pid = sh_quote(&self.pid_file),
            registered = sh_quote(&format!(
                "s/^name {} at port \\([0-9]*\\)$/\\1/p",
                self.node_short
            )),
        )
    }
}

fn cli_line(tool: Tool, args: &[&str]) -> String {
    let mut line = format!("{} -q", tool.name());
    for a in args {
        line.push(' ');
        line.push_str(&sh_quote(a));
    }
    line
}

impl Platform for Linux {
    fn os(&self) -> Os {
        Os::Linux
    }

    fn node_log(&self, lines: usize) -> Query {
        Query::new(format!(
            "f={}; if [ -f \"$f\" ]; then echo \"@@log $f\"; tail -n {lines} \"$f\"; fi",
            sh_quote(&self.log_file)
        ))
    }

    fn doctor_read(&self, folders: &[&str]) -> Vec<Query> {
        super::doctor::linux(&self.data_dir, folders)
            .into_iter()
            .map(Query::new)
            .collect()
    }

    fn command_line(&self, script: &str) -> Option<String> {
        Some(if self.sudo {
            format!("sudo -n sh -c {}", sh_quote(script))
        } else {
            script.to_string()
        })
    }

    fn script_file(&self, script: &str, name: &str) -> ScriptFile {
        // Never needed (Linux takes command lines of megabytes), but complete.
        let path = format!("/tmp/warren-{name}.sh");
        ScriptFile {
            folder: "/tmp".into(),
            path: path.clone(),
            content: script.to_string(),
            command_line: format!(
                "{}sh {p}; c=$?; rm -f {p}; exit $c",
                if self.sudo { "sudo -n " } else { "" },
                p = sh_quote(&path)
            ),
        }
    }

    fn make_folder(&self, folder: &str) -> String {
        format!("mkdir -p {}", sh_quote(folder))
    }

    fn parent<'a>(&self, path: &'a str) -> &'a str {
        path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/")
    }

    fn receive_file(&self, path: &str, sha256: &str) -> String {
        let p = sh_quote(path);
        format!(
            "umask 077; base64 -d > {p} || {{ rm -f {p}; exit 1; }}\n\
             [ \"$(sha256sum {p} | cut -d' ' -f1)\" = {sha256} ] || {{ rm -f {p}; echo 'the file arrived damaged (its SHA-256 differs)' >&2; exit 1; }}"
        )
    }

    fn local_http(&self, _port: u16) -> Option<String> {
        // SSH tunnels HTTP to the host's ports itself.
        None
    }

    fn place_file(
        &self,
        tmp: &str,
        path: &str,
        owner: Option<&str>,
        mode: Option<u32>,
        in_place: bool,
    ) -> String {
        let (t, p) = (sh_quote(tmp), sh_quote(path));
        // An upload through a private folder (`private_folder`) removes it after.
        let folder = tmp
            .rsplit_once('/')
            .map(|(f, _)| f)
            .filter(|f| f.starts_with(PRIVATE_FOLDER_PREFIX))
            .map(|f| format!("rm -rf {}", sh_quote(f)));
        let mut steps = Vec::new();
        if let Some(o) = owner {
            steps.push(format!("chown {} {t}", sh_quote(&format!("{o}:{o}"))));
        }
        if let Some(m) = mode {
            steps.push(format!("chmod {m:o} {t}"));
        }
        if in_place {
            steps.push(format!("cat {t} > {p}"));
            steps.push(format!("rm -f {t}"));
        } else {
            steps.push(format!("mv -f {t} {p}"));
        }
        match folder {
            None => format!("{} || {{ rm -f {t}; exit 1; }}", steps.join(" && ")),
            Some(rm) => format!("{{ {}; }} || {{ {rm}; exit 1; }}; {rm}", steps.join(" && ")),
        }
    }

    fn upload_temp(&self, path: &str, in_place: bool) -> String {
        if in_place {
            // A file written through (a mount point such as a container's
            // /etc/hosts) has its temporary copy in RabbitMQ's own data folder:
            // the folder it is in may be shared with other machines' (the lab's
            // hosts share this machine's /etc), and the copy is never renamed.
            format!(
                "{}/.warren-new.{}",
                self.data_dir,
                crate::util::file_name(path)
            )
        } else {
            format!("{path}.warren-new")
        }
    }

    fn private_folder(&self) -> Option<String> {
        self.sudo
            .then(|| format!("umask 077 && mktemp -d {PRIVATE_FOLDER_PREFIX}XXXXXXXX"))
    }

    fn read_host(&self, files: &[(&str, bool)], _settings: &[Setting]) -> Query {
        let mut script = String::from(
            "f() { if [ -f \"$1\" ]; then printf '@@file %s\\t%s\\n' \"$(stat -c '%a:%U' \"$1\")\" \"$1\"; base64 -w0 \"$1\"; echo; else printf '@@missing - %s\\n' \"$1\"; fi; l \"$1\"; }\n\
             s() { if [ -f \"$1\" ]; then printf '@@hash %s\\t%s\\n' \"$(stat -c '%a:%U' \"$1\")\" \"$1\"; sha256sum \"$1\" | cut -d' ' -f1; else printf '@@missing - %s\\n' \"$1\"; fi; l \"$1\"; }\n\
             l() { for t in \"$1.warren-new\" \"$W/.warren-new.${1##*/}\"; do if [ -e \"$t\" ]; then printf '@@leftover %s\\n' \"$t\"; fi; done; }\n",
        );
        script.insert_str(0, &format!("W={}\n", sh_quote(&self.data_dir)));
        for (path, secret) in files {
            let func = if *secret { "s" } else { "f" };
            script.push_str(&format!("{func} {}\n", sh_quote(path)));
        }
        script.push_str(&format!(
            "echo \"@@hostname $(hostname)\"\n\
             if [ -d /run/systemd/system ]; then echo '@@manager systemd'; else echo '@@manager direct'; fi\n\
             dpkg-query -W -f='@@package ${{Package}} ${{Version}} ${{db:Status-Abbrev}}\\n' rabbitmq-server erlang-base 2>/dev/null\n\
             {}if p=$(node_pid); then echo \"@@pid $p\"; else echo '@@pid none'; fi\n",
            self.node_pid_function()
        ));
        Query::new(script)
    }

    fn await_registered(&self) -> Option<Query> {
        // epmd is a small C program: asking it costs nothing like a CLI start.
        Some(Query::new(format!(
            "for i in $(seq 1 300); do epmd -names 2>/dev/null | grep -q {} && exit 0; sleep 0.2; done; exit 1",
            sh_quote(&format!("^name {} at port", self.node_short))
        )))
    }

    fn resolve(&self, name: &str) -> Query {
        Query::new(format!(
            "getent ahostsv4 {} | awk '{{print $1}}' | uniq",
            sh_quote(name)
        ))
    }

    fn probe_ports(&self, targets: &[(String, u16)]) -> Query {
        // Every port at once, each in the background; a line per open one.
        let mut script = String::new();
        for (k, (addr, port)) in targets.iter().enumerate() {
            let probe = sh_quote(&format!("</dev/tcp/{addr}/{port}"));
            script.push_str(&format!(
                "(timeout 5 bash -c {probe} 2>/dev/null && echo 'open {k}') &\n"
            ));
        }
        script.push_str("wait\n");
        Query::new(script)
    }

    fn probe_tls(&self, targets: &[super::TlsTarget], client: Option<(&str, &str)>) -> Query {
        // openssl's client, every target at once; the presented certificate is
        // hashed in DER and its expiry turned into Unix seconds by date(1).
        let auth = client
            .map(|(c, k)| format!(" -cert {} -key {}", sh_quote(c), sh_quote(k)))
            .unwrap_or_default();
        let mut script = String::from(
            "command -v openssl >/dev/null || { echo 'no openssl: install it (apt-get install openssl) to check TLS listeners' >&2; exit 1; }\n",
        );
        for (k, (addr, port, name)) in targets.iter().enumerate() {
            script.push_str(&format!(
                "(c=$(timeout 10 openssl s_client -connect {a}:{port} -servername {n}{auth} </dev/null 2>/dev/null | openssl x509 2>/dev/null) && [ -n \"$c\" ] && \
                 f=$(printf '%s\\n' \"$c\" | openssl x509 -outform DER | sha256sum | cut -d' ' -f1) && \
                 e=$(printf '%s\\n' \"$c\" | openssl x509 -noout -enddate | cut -d= -f2) && \
                 echo \"tls {k} $f $(date -d \"$e\" +%s)\") &\n",
                a = sh_quote(addr),
                n = sh_quote(name),
            ));
        }
        script.push_str("wait\n");
        Query::new(script)
    }

    fn stop(&self, m: ServiceManager) -> String {
        match m {
            ServiceManager::Systemd => "systemctl stop rabbitmq-server".into(),
            // SIGTERM is RabbitMQ's graceful shutdown (Erlang stops the node's
            // applications in order, as `rabbitmqctl stop` does), and it needs no CLI:
            // two CLI start-ups saved, and no hang when the cookie file was changed
            // under the node (the CLI then waits rather than fails).
            _ => format!(
                "{node_pid}p=$(node_pid) || exit 0\n\
                 kill -TERM \"$p\" 2>/dev/null || exit 0\n\
                 for i in $(seq 1 1200); do [ -d /proc/$p ] || exit 0; sleep 0.1; done\n\
                 echo \"RabbitMQ (pid $p) did not stop within 120 s\" >&2; exit 1",
                node_pid = self.node_pid_function()
            ),
        }
    }

    fn empty_database(&self) -> String {
        let base = format!("{}/mnesia/{}", self.data_dir, self.node_name);
        format!(
            "{}if node_pid > /dev/null; then echo 'RabbitMQ still runs: its database was not deleted' >&2; exit 1; fi\n\
             rm -rf {} {}",
            self.node_pid_function(),
            sh_quote(&base),
            sh_quote(&format!("{base}-feature_flags"))
        )
    }

    fn start(&self, m: ServiceManager, daemon_reload: bool) -> String {
        match m {
            // systemctl says only that the start failed; the reason (a unit setting
            // it refused, the node's exit) is in the unit's journal, whose last lines
            // follow the mark on stderr. systemd hands its lines to journald
            // asynchronously, so they may not be readable yet when systemctl returns:
            // the journal is read once this start's end ("Failed with result") is
            // in it, after the cursor taken before the start, for up to 5 s, and half
            // a second more: the unit's own process logs why (a user it could not
            // find) through another stream than systemd's, which may come later.
            // Only this start's lines are shown (after the cursor), the last 15.
            ServiceManager::Systemd => format!(
                "{}cur=$(journalctl -u rabbitmq-server --no-pager --quiet --lines 1 --show-cursor 2>/dev/null | sed -n 's/^-- cursor: //p')\n\
                 systemctl start rabbitmq-server && exit 0\n\
                 c=$?\n\
                 i=0\n\
                 while [ $i -lt 20 ] && ! journalctl -u rabbitmq-server --no-pager --quiet ${{cur:+--after-cursor=\"$cur\"}} 2>/dev/null | grep -q 'Failed with result'; do sleep 0.25; i=$((i+1)); done\n\
                 sleep 0.5\n\
                 echo '{JOURNAL_MARK}' >&2\n\
                 journalctl -u rabbitmq-server --no-pager --quiet ${{cur:+--after-cursor=\"$cur\"}} | tail -n 15 >&2\n\
                 exit $c",
                if daemon_reload {
                    "systemctl daemon-reload || exit $?\n"
                } else {
                    ""
                }
            ),
            // -detached daemonizes; its output must not hold the SSH channel open.
            // A node already running (a killed run's start that went on) is left
            // alone: a second instance fails, and removes the first one's pid file.
            _ => format!(
                "{}node_pid > /dev/null && exit 0\n\
                 rabbitmq-server -detached > /dev/null 2>&1 < /dev/null",
                self.node_pid_function()
            ),
        }
    }

    fn reinstall(&self) -> Option<String> {
        None
    }

    fn balancer_read(&self, m: ServiceManager) -> Option<Query> {
        let running = match m {
            ServiceManager::Systemd => "systemctl is-active --quiet haproxy && echo running".to_string(),
            _ => format!(
                "p=$(head -n1 {BALANCER_PID} 2>/dev/null) && [ \"$(cat /proc/$p/comm 2>/dev/null)\" = haproxy ] && echo running"
            ),
        };
        Some(Query::new(format!(
            "if command -v haproxy >/dev/null 2>&1; then echo \"haproxy $(haproxy -v 2>/dev/null | head -n1 | cut -d' ' -f3)\"; else echo 'haproxy missing'; fi\n\
             {running}\n\
             exit 0"
        )))
    }

    fn balancer_reload(&self, m: ServiceManager) -> Option<String> {
        let check = format!(
            "out=$(haproxy -c -f {cfg} 2>&1) || {{ printf '%s\\n' \"$out\" | grep -v '^$' | tail -n 5 >&2; exit 1; }}\n",
            cfg = super::balancer::CONFIG
        );
        let run = match m {
            // Debian's unit reloads by signalling its master process, which keeps
            // established connections on the old workers until they close.
            ServiceManager::Systemd => format!(
                "systemctl enable --quiet haproxy 2>/dev/null\n\
                 systemctl reload-or-restart haproxy && exit 0\n\
                 c=$?\n\
                 echo '{JOURNAL_MARK}' >&2\n\
                 journalctl -u haproxy --no-pager --quiet --lines 10 >&2\n\
                 exit $c"
            ),
            // No service manager: HAProxy as a daemon of its own; a reload starts a
            // new process that takes over the listeners, and `-sf` lets the old one
            // finish its connections and leave.
            _ => format!(
                "p=$(head -n1 {BALANCER_PID} 2>/dev/null)\n\
                 old=\"\"\n\
                 if [ -n \"$p\" ] && [ \"$(cat /proc/$p/comm 2>/dev/null)\" = haproxy ]; then old=\"-sf $p\"; fi\n\
                 haproxy -D -f {cfg} -p {BALANCER_PID} $old </dev/null >/tmp/warren-haproxy.out 2>&1 && exit 0\n\
                 c=$?\n\
                 grep -v '^$' /tmp/warren-haproxy.out | tail -n 5 >&2\n\
                 exit $c",
                cfg = super::balancer::CONFIG
            ),
        };
        Some(format!("{check}{run}"))
    }

    fn balancer_probe(
        &self,
        frontends: &[(u16, super::BalancerProtocol)],
        n: usize,
        tls: Option<&super::BalancerTls>,
    ) -> Option<Query> {
        // bash's /dev/tcp (or openssl s_client, whose -quiet waits for the answer
        // after its input ends), every connection at once; od prints what came back.
        let mut script = String::new();
        let mut k = 0;
        for (port, proto) in frontends {
            let hello = match proto {
                super::BalancerProtocol::Amqp => "AMQP\\0\\0\\11\\1",
                // CONNECT: MQTT 3.1.1, clean session, keep-alive 60 s, client id
                // "warren-verify", no credentials (RabbitMQ answers with a CONNACK).
                super::BalancerProtocol::Mqtt => {
                    "\\20\\31\\0\\4MQTT\\4\\2\\0\\74\\0\\15warren-verify"
                }
                // Without credentials: the management API answers 401.
                super::BalancerProtocol::Management => "GET /api/overview HTTP/1.0\\r\\n\\r\\n",
            };
            let connect = match tls {
                None => format!("exec 3<>/dev/tcp/127.0.0.1/{port} && printf '{hello}' >&3 && timeout 5 head -c 4 <&3"),
                Some(t) => format!(
                    "printf '{hello}' | timeout 5 openssl s_client -quiet -connect 127.0.0.1:{port}{} 2>/dev/null | head -c 4",
                    t.ca.as_ref()
                        .map(|ca| format!(" -CAfile {} -verify_return_error", sh_quote(ca)))
                        .unwrap_or_default()
                ),
            };
            for _ in 0..n {
                let probe = sh_quote(&format!("{connect} | od -An -tx1 | tr -d ' \\n'"));
                script.push_str(&format!(
                    "(r=$(timeout 10 bash -c {probe} 2>/dev/null); echo \"{k} $r\") &\n"
                ));
                k += 1;
            }
        }
        script.push_str("wait\n");
        Some(Query::new(script))
    }

    fn cli(&self, tool: Tool, args: &[&str]) -> String {
        cli_line(tool, args)
    }

    fn install(&self, what: &super::Install) -> String {
        // Debian's maintainer scripts start RabbitMQ again as soon as its package is
        // configured; a policy-rc.d that answers 101 (action forbidden) keeps the node
        // stopped, so that warren starts it, with its files, when it is ready. Every
        // installed erlang-* package moves to the pinned version together (each
        // depends on erlang-base of exactly its own version).
        let mut s = String::from(
            "set -e\n\
             export DEBIAN_FRONTEND=noninteractive\n\
             P=/usr/sbin/policy-rc.d\n\
             if [ ! -e $P ]; then printf '#!/bin/sh\\nexit 101\\n' > $P; chmod 755 $P; trap 'rm -f $P' EXIT; fi\n\
             A=\n",
        );
        if let Some(v) = &what.rabbitmq {
            s.push_str(&format!("A=\"$A rabbitmq-server=\"{}\n", sh_quote(v)));
        }
        if let Some(v) = &what.erlang {
            s.push_str(&format!(
                "A=\"$A $(dpkg-query -W -f='${{db:Status-Abbrev}} ${{Package}}\\n' 'erlang-*' | awk -v v={} '$1 == \"ii\" {{ print $2 \"=\" v }}' | tr '\\n' ' ')\"\n",
                sh_quote(v)
            ));
        }
        s.push_str(
            "apt-get install -y -q --no-install-recommends --allow-downgrades -o Dpkg::Options::=--force-confold $A\n",
        );
        s
    }

    fn apply_setting(&self, s: &Setting) -> String {
        // Linux hosts have no settings outside RabbitMQ's files (render makes none).
        format!(
            "echo 'warren keeps no setting {} on Linux' >&2; exit 1",
            s.key
        )
    }

    fn cli_cookie(&self) -> String {
        // Debian's CLI wrappers run the tools as the rabbitmq user, whose home it is.
        format!("{}/.erlang.cookie", self.data_dir)
    }

    fn remove_file(&self, path: &str) -> String {
        format!("rm -f {}", sh_quote(path))
    }

    fn lock_path(&self) -> String {
        format!("{}/warren.lock", self.data_dir)
    }

    fn take_lock(&self, content: &str, replacing: Option<&str>) -> String {
        let f = sh_quote(&self.lock_path());
        let new = sh_quote(content);
        match replacing {
            // `set -C`: the shell creates the file only if it does not exist.
            None => format!(
                "umask 022; if (set -C; printf '%s\\n' {new} > {f}) 2>/dev/null; then echo @@taken; else echo @@held; cat {f}; fi"
            ),
            Some(old) => format!(
                "umask 022; if [ ! -e {f} ] || [ \"$(cat {f})\" = {old} ]; then printf '%s\\n' {new} > {f}.new && mv -f {f}.new {f} && echo @@taken; else echo @@held; cat {f}; fi",
                old = sh_quote(old)
            ),
        }
    }

    fn release_lock(&self, token: &str) -> String {
        let f = sh_quote(&self.lock_path());
        format!(
            "if grep -qF {} {f} 2>/dev/null; then rm -f {f}; fi",
            sh_quote(token)
        )
    }

    fn read_lock(&self) -> Query {
        let f = sh_quote(&self.lock_path());
        Query::new(format!("cat {f} 2>/dev/null; true"))
    }
}
