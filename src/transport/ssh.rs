//! SSH transport (ssh2): key or agent authentication, the host key checked against a
//! known_hosts file, commands with exit status and output, files by SFTP, and HTTP to
//! the host's own ports through a direct-tcpip channel. One connection per host,
//! reused for the whole run. The same for Linux and for Windows' OpenSSH Server: what
//! the command lines say is the platform layer's.

use super::{Connection, Exec, HttpResponse, Result, TransportError};
use crate::inventory::Host;
use crate::inventory::Os;
use base64::Engine;
use ssh2::{CheckResult, KnownHostFileKind, Session};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Ssh {
    host: String,
    session: Session,
    sftp: Option<ssh2::Sftp>,
    /// The server's identification string, e.g. `SSH-2.0-OpenSSH_for_Windows_7.7`.
    banner: Option<String>,
}

impl Ssh {
    pub fn connect(h: &Host) -> Result<Ssh> {
        let addr_text = format!("{}:{}", h.address, h.port);
        let connect_err = |reason: String| TransportError::Connect {
            host: h.name.clone(),
            addr: addr_text.clone(),
            reason,
        };
        let addr = addr_text
            .to_socket_addrs()
            .map_err(|e| connect_err(format!("cannot resolve it: {e}")))?
            .next()
            .ok_or_else(|| connect_err("the name resolves to no address".into()))?;
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| {
            connect_err(format!(
                "{e}; check that the host is up and its SSH server listens on port {}",
                h.port
            ))
        })?;
        let mut session = Session::new().map_err(|e| connect_err(e.to_string()))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(CONNECT_TIMEOUT.as_millis() as u32);
        session
            .handshake()
            .map_err(|e| connect_err(format!("SSH handshake failed: {e}")))?;
        check_host_key(&session, h)?;
        let auth_err = |reason: String| TransportError::Auth {
            host: h.name.clone(),
            user: h.user.clone(),
            reason,
        };
        // Windows' OpenSSH reads the keys of an Administrators member from one
        // machine-wide file, not from the user's profile: say so when it refuses.
        let where_keys = match h.os {
            Os::Linux => format!("~{}/.ssh/authorized_keys on the host", h.user),
            Os::Windows => r"C:\ProgramData\ssh\administrators_authorized_keys on the host (the file Windows' OpenSSH reads for a member of Administrators; its ACL may hold only SYSTEM and Administrators)".to_string(),
        };
        match &h.key {
            Some(key) => {
                if !key.exists() {
                    return Err(auth_err(format!(
                        "the SSH key {} does not exist; create it (ssh-keygen -t ed25519 -f {}) or fix `key` in the inventory",
                        key.display(),
                        key.display()
                    )));
                }
                session
                    .userauth_pubkey_file(&h.user, None, key, None)
                    .map_err(|e| {
                        auth_err(format!(
                            "key {}: {e}; its public half must be in {where_keys}",
                            key.display()
                        ))
                    })?
            }
            None => session.userauth_agent(&h.user).map_err(|e| {
                auth_err(format!(
                    "SSH agent: {e}; give a key in the inventory or load one into the agent"
                ))
            })?,
        }
        if !session.authenticated() {
            return Err(auth_err(format!(
                "not authenticated; the key must be in {where_keys}"
            )));
        }
        let banner = session.banner().map(str::to_string);
        Ok(Ssh {
            host: h.name.clone(),
            session,
            sftp: None,
            banner,
        })
    }

    fn io_err(&self, what: &str, e: impl std::fmt::Display) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            what: what.to_string(),
            reason: e.to_string(),
        }
    }

    fn run_channel(&mut self, command: &str, timeout: Duration) -> Result<Exec> {
        self.session.set_timeout(timeout.as_millis() as u32);
        let what = format!("running `{}`", super::first_words(command));
        let mut ch = self
            .session
            .channel_session()
            .map_err(|e| self.io_err(&what, e))?;
        ch.exec(command).map_err(|e| self.io_err(&what, e))?;
        // Nothing goes to the command's stdin, so it is closed at once: powershell.exe
        // with a redirected stdin left open can wait for more input after its script
        // has ended (Win32-OpenSSH passes the channel as a pipe). On Linux every
        // command is `sh -c` (under `sudo -n`), which reads no stdin: an EOF changes
        // nothing there, and a command that did read would get EOF instead of hanging.
        // No mock of libssh2 pins this: the lab's SSH stories run every command
        // through here.
        ch.send_eof().map_err(|e| self.io_err(&what, e))?;
        let mut stdout = Vec::new();
        ch.read_to_end(&mut stdout)
            .map_err(|e| self.io_err(&what, e))?;
        let mut stderr = Vec::new();
        ch.stderr()
            .read_to_end(&mut stderr)
            .map_err(|e| self.io_err(&what, e))?;
        ch.wait_close().map_err(|e| self.io_err(&what, e))?;
        let status = ch.exit_status().map_err(|e| self.io_err(&what, e))?;
        // A command killed by a signal has no exit status (libssh2 reports 0): it did
        // not succeed.
        if let Ok(Some(signal)) = ch.exit_signal().map(|s| s.exit_signal) {
            return Ok(Exec {
                status: 128,
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: format!(
                    "{}\nkilled by signal {signal}",
                    String::from_utf8_lossy(&stderr)
                ),
            });
        }
        Ok(Exec {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

/// A path as OpenSSH's SFTP server wants it: a Windows path `C:\A\b` becomes
/// `/C:/A/b` (Win32-OpenSSH's form); a POSIX path stays as it is.
pub fn sftp_path(path: &str) -> String {
    let b = path.as_bytes();
    if b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\' {
        format!("/{}", path.replace('\\', "/"))
    } else {
        path.to_string()
    }
}

fn known_hosts_file(h: &Host) -> PathBuf {
    h.known_hosts.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".ssh/known_hosts")
    })
}

/// Strict host key checking: the key must be in the known_hosts file, as it is.
fn check_host_key(session: &Session, h: &Host) -> Result<()> {
    let file = known_hosts_file(h);
    let err = |reason: String| TransportError::HostKey {
        host: h.name.clone(),
        reason,
    };
    let (key, _) = session
        .host_key()
        .ok_or_else(|| err("the server sent no host key".into()))?;
    let mut known = session.known_hosts().map_err(|e| err(e.to_string()))?;
    // A missing file is an empty one when the operator asked to record keys.
    if file.exists() || !h.accept_new_host_key {
        known
            .read_file(&file, KnownHostFileKind::OpenSSH)
            .map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
    }
    let scan = format!(
        "ssh-keyscan -p {} {} >> {}",
        h.port,
        h.address,
        file.display()
    );
    let fingerprint = session
        .host_key_hash(ssh2::HashType::Sha256)
        .map(|h| {
            use base64::Engine;
            format!(
                "SHA256:{}",
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(h)
            )
        })
        .unwrap_or_else(|| "(no fingerprint)".into());
    match known.check_port(&h.address, h.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::NotFound if h.accept_new_host_key => {
            record_host_key(session, h, &file).map_err(err)?;
            eprintln!(
                "{}: recorded the host key of {} ({fingerprint}) in {}",
                h.name,
                h.address,
                file.display()
            );
            Ok(())
        }
        CheckResult::NotFound => Err(err(format!(
            "the host key of {} ({fingerprint}) is not in {}; check that fingerprint on the host (ssh-keygen -lf on its public host key), then rerun `warren apply --accept-new-host-keys` to record it (or add it yourself: `{scan}`)",
            h.address,
            file.display()
        ))),
        CheckResult::Mismatch => Err(err(format!(
            "the host key of {} does not match the one in {}: the host was reinstalled, or someone is in between; find out which before you replace the entry",
            h.address,
            file.display()
        ))),
        CheckResult::Failure => Err(err(format!("cannot check the host key against {}", file.display()))),
    }
}

/// Appends the server's host key to `file`, one connection at a time (hosts are
/// connected in parallel, and each write rewrites the whole file).
fn record_host_key(
    session: &Session,
    h: &Host,
    file: &std::path::Path,
) -> std::result::Result<(), String> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (key, kind) = session
        .host_key()
        .ok_or_else(|| "the server sent no host key".to_string())?;
    let mut known = session.known_hosts().map_err(|e| e.to_string())?;
    if file.exists() {
        known
            .read_file(file, KnownHostFileKind::OpenSSH)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    }
    let name = if h.port == 22 {
        h.address.clone()
    } else {
        format!("[{}]:{}", h.address, h.port)
    };
    known
        .add(&name, key, &h.name, kind.into())
        .map_err(|e| format!("cannot record the host key: {e}"))?;
    known
        .write_file(file, KnownHostFileKind::OpenSSH)
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

impl Connection for Ssh {
    fn host(&self) -> &str {
        &self.host
    }

    fn exec(&mut self, command_line: &str, timeout: Duration) -> Result<Exec> {
        self.run_channel(command_line, timeout)
    }

    fn server_version(&self) -> Option<String> {
        self.banner.clone()
    }

    fn put(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.put_file(&sftp_path(path), bytes)
    }

    fn http(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&str>,
    ) -> Result<HttpResponse> {
        let what = format!("{method} {path} on port {port}");
        self.session.set_timeout(120_000);
        let mut ch = self
            .session
            .channel_direct_tcpip("127.0.0.1", port, None)
            .map_err(|e| self.io_err(&what, format!("nothing answers on port {port} ({e})")))?;
        // JSON wherever the API offers it; `*/*` too, because a few endpoints (queue
        // actions such as sync) declare no content type and answer 406 to a client
        // that accepts JSON only, without doing anything.
        let mut req = format!(
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\nAccept: application/json, */*;q=0.5\r\n"
        );
        if let Some((user, password)) = auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            req.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || method != "GET" {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        ch.write_all(req.as_bytes())
            .map_err(|e| self.io_err(&what, e))?;
        // No half-close here: the management API's web server drops a request whose
        // client has closed its side before the answer is ready (a slow /api/nodes
        // then comes back as 0 bytes). HTTP/1.0 has the server close after answering.
        let mut raw = Vec::new();
        ch.read_to_end(&mut raw)
            .map_err(|e| self.io_err(&what, e))?;
        ch.close().ok();
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&raw) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) | Err(_) => {
                return Err(self.io_err(
                    &what,
                    format!(
                        "not an HTTP answer ({} bytes); is it the management port?",
                        raw.len()
                    ),
                ))
            }
        };
        // Some servers answer an HTTP/1.0 request in HTTP/1.1 chunks all the same
        // (HAProxy's statistics page does).
        let chunked = resp.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("transfer-encoding")
                && String::from_utf8_lossy(h.value)
                    .to_ascii_lowercase()
                    .contains("chunked")
        });
        let body = &raw[head_len..];
        let body = match chunked {
            true => super::dechunk(body).ok_or_else(|| {
                self.io_err(&what, "a chunked answer that does not parse".to_string())
            })?,
            false => body.to_vec(),
        };
        Ok(HttpResponse {
            status: resp.code.unwrap_or(0),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

impl Ssh {
    fn sftp(&mut self, what: &str) -> Result<&ssh2::Sftp> {
        if self.sftp.is_none() {
            self.session.set_timeout(120_000);
            let sftp = self.session.sftp().map_err(|e| {
                self.io_err(
                    what,
                    format!(
                        "SFTP is not available ({e}); enable the sftp subsystem in sshd_config"
                    ),
                )
            })?;
            self.sftp = Some(sftp);
        }
        Ok(self.sftp.as_ref().expect("sftp opened above"))
    }

    /// Writes through SFTP, created with mode 0600 where the server has modes, so a
    /// secret is never readable by others, not even for a moment.
    pub fn put_file(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let what = format!("writing {path}");
        self.sftp(&what)?;
        let sftp = self.sftp.as_ref().expect("sftp opened above");
        let mut f = sftp
            .open_mode(
                std::path::Path::new(path),
                ssh2::OpenFlags::WRITE | ssh2::OpenFlags::CREATE | ssh2::OpenFlags::TRUNCATE,
                0o600,
                ssh2::OpenType::File,
            )
            .map_err(|e| self.io_err(&what, e))?;
        f.write_all(bytes).map_err(|e| self.io_err(&what, e))?;
        f.fsync().ok();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::sftp_path;

    #[test]
    fn windows_paths_take_openssh_sftp_form() {
        assert_eq!(
            sftp_path(r"C:\ProgramData\RabbitMQ\rabbitmq.conf"),
            "/C:/ProgramData/RabbitMQ/rabbitmq.conf"
        );
        assert_eq!(
            sftp_path("/etc/rabbitmq/rabbitmq.conf"),
            "/etc/rabbitmq/rabbitmq.conf"
        );
    }
}
