//! WinRM transport: WS-Management's remote shell (MS-WSMV) over HTTPS (5986) or over
//! HTTP (5985) with NTLM sealing. Every command gets its own shell: Create, Command,
//! (Send stdin,) Receive until Done, Signal terminate, Delete, so no shell outlives
//! its command even when one step fails. It runs a command line and carries stdin;
//! files and HTTP to the host's own ports are the platform layer's business on top of
//! that (see `platform::Remote`).

pub mod http;
pub mod soap;

use super::{Connection, Exec, HttpResponse, Result, TransportError};
use crate::inventory::Host;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub use http::{Auth, Trust};

/// Seconds the server may hold a Receive before it answers "timed out, ask again".
const OPERATION_TIMEOUT: u32 = 20;
/// How many stdin bytes go into one Send (Ansible sends 250000 per chunk; the
/// base64 and the envelope must stay under MaxEnvelopeSize, 500 KB by default).
pub const STDIN_CHUNK: usize = 250_000;

/// Where and how to reach one WinRM listener.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub address: String,
    pub port: u16,
    pub https: bool,
    pub trust: Trust,
    pub auth: Auth,
}

pub struct WinRm {
    host: String,
    url: String,
    session: http::Session,
    ids: u64,
}

impl WinRm {
    /// Connects and authenticates, so a wrong password is known before any plan.
    pub fn connect(e: &Endpoint) -> Result<WinRm> {
        let addr_text = format!("{}:{}", e.address, e.port);
        let connect_err = |reason: String| TransportError::Connect {
            host: e.host.clone(),
            addr: addr_text.clone(),
            reason,
        };
        let addr = addr_text
            .to_socket_addrs()
            .map_err(|x| connect_err(format!("cannot resolve it: {x}")))?
            .next()
            .ok_or_else(|| connect_err("the name resolves to no address".into()))?;
        let tcp = TcpStream::connect_timeout(&addr, super::ssh::CONNECT_TIMEOUT).map_err(|x| {
            connect_err(format!(
                "{x}; check that WinRM listens on port {} (winrm quickconfig{}) and the firewall lets it through",
                e.port,
                if e.https { ", an HTTPS listener" } else { "" }
            ))
        })?;
        let session =
            http::Session::connect(tcp, &e.address, e.port, e.https, &e.trust, e.auth.clone())
                .map_err(|x| connect_err(x.to_string()))?;
        let mut w = WinRm {
            host: e.host.clone(),
            url: format!(
                "{}://{}:{}/wsman",
                if e.https { "https" } else { "http" },
                e.address,
                e.port
            ),
            session,
            ids: 0,
        };
        // A shell that opens and closes proves the credentials (and the sealing).
        let user = match &e.auth {
            Auth::Ntlm { user, .. } | Auth::Basic { user, .. } => user.clone(),
        };
        let shell = w.create_shell().map_err(|x| match x {
            TransportError::Io { reason, .. } if reason.contains("refused the user name") => {
                TransportError::Auth {
                    host: e.host.clone(),
                    user: user.clone(),
                    reason: format!(
                        "{reason}; check the password the inventory names for this host, and that the account is an administrator there"
                    ),
                }
            }
            other => other,
        })?;
        w.delete_shell(&shell)?;
        Ok(w)
    }

    /// Records every message from now on (for golden transcripts).
    pub fn record(&mut self) {
        self.session.trace = Some(Vec::new());
    }

    pub fn take_trace(&mut self) -> Vec<String> {
        self.session
            .trace
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn err(&self, what: &str, reason: impl std::fmt::Display) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }

    fn message_id(&mut self) -> String {
        self.ids += 1;
        let r: u64 = rand::random();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) as u16,
            self.ids & 0xfff,
            r as u16 & 0xfff,
            (r ^ self.ids) & 0xffff_ffff_ffff
        )
    }

    /// Sends one message; a SOAP fault becomes an error naming the host.
    fn call(&mut self, what: &str, xml: &str) -> Result<String> {
        self.session
            .set_timeout(Duration::from_secs(OPERATION_TIMEOUT as u64 + 30));
        let (status, body) = self.session.post(xml).map_err(|e| self.err(what, e))?;
        if let Some(f) = soap::fault(&body) {
            return Err(self.err(
                what,
                format!(
                    "the WinRM service answered with a fault{}: {}",
                    f.code.map(|c| format!(" ({c})")).unwrap_or_default(),
                    f.reason
                ),
            ));
        }
        if !(200..300).contains(&status) {
            return Err(self.err(what, format!("HTTP {status}")));
        }
        Ok(body)
    }

    fn header<'a>(
        &'a self,
        id: &'a str,
        shell: Option<&'a str>,
        options: &'a [(&'a str, &'a str)],
    ) -> soap::Header<'a> {
        soap::Header {
            to: &self.url,
            message_id: id,
            operation_timeout: OPERATION_TIMEOUT,
            shell_id: shell,
            options,
        }
    }

    fn create_shell(&mut self) -> Result<String> {
        let id = self.message_id();
        let options = [("WINRS_NOPROFILE", "FALSE"), ("WINRS_CODEPAGE", "65001")];
        let xml = soap::create(&self.header(&id, None, &options));
        let body = self.call("creating a shell", &xml)?;
        soap::shell_id(&body).map_err(|e| self.err("creating a shell", e))
    }

    fn delete_shell(&mut self, shell: &str) -> Result<()> {
        let id = self.message_id();
        let xml = soap::delete(&self.header(&id, Some(shell), &[]));
        self.call("deleting the shell", &xml).map(|_| ())
    }

    /// Runs `command_line` in a new shell with `stdin` (if any), and deletes the
    /// shell whatever happens.
    pub fn run(
        &mut self,
        command_line: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Exec> {
        let shell = self.create_shell()?;
        let result = self.run_in(&shell, command_line, stdin, timeout);
        let deleted = self.delete_shell(&shell);
        let exec = result?;
        deleted?;
        Ok(exec)
    }

    fn run_in(
        &mut self,
        shell: &str,
        command_line: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Exec> {
        let what = format!("running `{}`", super::first_words(command_line));
        let id = self.message_id();
        let options = [
            ("WINRS_CONSOLEMODE_STDIN", "TRUE"),
            ("WINRS_SKIP_CMD_SHELL", "FALSE"),
        ];
        let xml = soap::command(&self.header(&id, Some(shell), &options), command_line);
        let body = self.call(&what, &xml)?;
        let command = soap::command_id(&body).map_err(|e| self.err(&what, e))?;
        let result = (|| {
            if let Some(input) = stdin {
                let chunks: Vec<&[u8]> = if input.is_empty() {
                    vec![&[][..]]
                } else {
                    input.chunks(STDIN_CHUNK).collect()
                };
                let last = chunks.len() - 1;
                for (k, c) in chunks.into_iter().enumerate() {
                    let id = self.message_id();
                    let xml =
                        soap::send(&self.header(&id, Some(shell), &[]), &command, c, k == last);
                    self.call(&what, &xml)?;
                }
            }
            let deadline = Instant::now() + timeout;
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            loop {
                let id = self.message_id();
                let xml = soap::receive(&self.header(&id, Some(shell), &[]), &command);
                match self.call(&what, &xml) {
                    Ok(body) => {
                        let r = soap::received(&body).map_err(|e| self.err(&what, e))?;
                        stdout.extend(r.stdout);
                        stderr.extend(r.stderr);
                        if let Some(status) = r.exit_code {
                            return Ok(Exec {
                                status,
                                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                                stderr: String::from_utf8_lossy(&stderr).into_owned(),
                            });
                        }
                    }
                    // The long poll ran out with nothing to say: ask again.
                    Err(TransportError::Io { reason, .. })
                        if reason.contains(soap::FAULT_TIMED_OUT) => {}
                    Err(e) => return Err(e),
                }
                if Instant::now() > deadline {
                    return Err(self.err(&what, format!("no end within {} s", timeout.as_secs())));
                }
            }
        })();
        // Terminate and forget the command, done or not.
        let id = self.message_id();
        let xml = soap::signal(&self.header(&id, Some(shell), &[]), &command);
        let signalled = self.call(&what, &xml);
        let exec = result?;
        signalled?;
        Ok(exec)
    }
}

impl Connection for WinRm {
    fn host(&self) -> &str {
        &self.host
    }

    fn exec(&mut self, command_line: &str, timeout: Duration) -> Result<Exec> {
        // stdin closed at once: nothing can wait on it.
        self.run(command_line, Some(&[]), timeout)
    }

    fn exec_input(&mut self, command_line: &str, input: &[u8], timeout: Duration) -> Result<Exec> {
        self.run(command_line, Some(input), timeout)
    }

    fn can_put(&self) -> bool {
        false
    }

    fn can_tunnel(&self) -> bool {
        false
    }

    fn put(&mut self, path: &str, _bytes: &[u8]) -> Result<()> {
        Err(self.err(
            &format!("writing {path}"),
            "WinRM has no file transfer; the platform sends files through a command's stdin",
        ))
    }

    fn http(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        _auth: Option<(&str, &str)>,
        _body: Option<&str>,
    ) -> Result<HttpResponse> {
        Err(self.err(
            &format!("{method} {path} on port {port}"),
            "WinRM carries no tunnel; the platform sends HTTP through a command on the host",
        ))
    }

    fn server_version(&self) -> Option<String> {
        Some(format!("WinRM at {}", self.url))
    }
}

/// The endpoint of an inventory host whose transport is WinRM.
pub fn endpoint(h: &Host, password: String) -> Endpoint {
    let (user, domain) = match h.user.split_once('\\') {
        Some((d, u)) => (u.to_string(), Some(d.to_string())),
        None => (h.user.clone(), None),
    };
    let w = &h.winrm;
    Endpoint {
        host: h.name.clone(),
        address: h.address.clone(),
        port: h.port,
        https: w.https,
        trust: if w.insecure {
            Trust::Insecure
        } else {
            Trust::Verify {
                ca_file: w.ca_file.clone(),
            }
        },
        auth: if w.basic {
            Auth::Basic {
                user: h.user.clone(),
                password,
            }
        } else {
            Auth::Ntlm {
                user,
                domain,
                password,
            }
        },
    }
}
