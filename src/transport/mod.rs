//! How warren reaches a host: a `Connection` runs a command line and moves bytes, and
//! knows nothing of the operating system at the other end. What those command lines
//! say (POSIX sh on Linux, PowerShell on Windows) is the platform layer's business
//! (`crate::platform`), which also hands out the read-only and read-write handles.
//!
//! SSH (the ssh2 crate) is implemented here; WinRM joins behind the same trait.

pub mod ssh;
pub mod winrm;

use std::time::Duration;

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Exec {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Exec {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
    /// Why the command failed, in one line. RabbitMQ's CLI prints its reason on a
    /// line starting with "Error" and then its usage or diagnostics: that line is
    /// the reason, with the diagnostics of an unreachable node in brackets.
    /// Otherwise the last non-empty line of stderr (or stdout).
    pub fn last_line(&self) -> String {
        let stderr = strip_ansi(&self.stderr);
        let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
        if let Some(i) = lines.iter().position(|l| l.starts_with("Error")) {
            let mut reason = lines[i]
                .trim_end_matches("Please see diagnostics information and suggestions below.")
                .trim()
                .to_string();
            // `Error:` alone: the reason is on the lines after it (an Erlang term, as
            // rabbitmqctl prints an error it has no message for), up to a blank line
            // or the usage text.
            if reason.ends_with(':') {
                let rest: Vec<&str> = lines[i + 1..]
                    .iter()
                    .copied()
                    .take_while(|l| !l.is_empty() && !l.starts_with("Usage") && *l != "DIAGNOSTICS")
                    .collect();
                if !rest.is_empty() {
                    reason = format!("{reason} {}", rest.join(" "));
                }
            }
            if let Some(d) = lines.iter().position(|l| *l == "DIAGNOSTICS") {
                // The node's own section: "rabbit@h:" and its bullets.
                let details: Vec<&str> = lines[d..]
                    .iter()
                    .skip_while(|l| !(l.ends_with(':') && l.contains('@')))
                    .skip(1)
                    .take_while(|l| !l.is_empty())
                    .map(|l| l.trim_start_matches("* "))
                    .collect();
                if !details.is_empty() {
                    reason = format!("{reason} ({})", details.join("; "));
                }
            }
            return reason;
        }
        let pick = |s: &str| {
            s.lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        };
        pick(&stderr)
            .or_else(|| pick(&self.stdout))
            .unwrap_or_else(|| format!("exit status {}", self.status))
    }
}

/// `s` without terminal colour codes (RabbitMQ's CLI prints some even when piped).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An HTTP/1.1 chunked body, decoded (RFC 9112 section 7.1; chunk extensions and
/// trailers are dropped); `None` when it is not one.
pub fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// An HTTP response from a port on the host (the management API).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("{host}: cannot connect to {addr}: {reason}")]
    Connect {
        host: String,
        addr: String,
        reason: String,
    },
    #[error("{host}: {reason}")]
    HostKey { host: String, reason: String },
    #[error("{host}: login as {user} refused: {reason}")]
    Auth {
        host: String,
        user: String,
        reason: String,
    },
    #[error("{host}: {what}: {reason}")]
    Io {
        host: String,
        what: String,
        reason: String,
    },
}

pub type Result<T> = std::result::Result<T, TransportError>;

/// One open connection to a host: commands, bytes, and HTTP to the host's own ports.
pub trait Connection: Send {
    /// The host's name in the inventory, for messages.
    fn host(&self) -> &str;
    /// Runs `command_line` as the server's login shell receives it, and waits for it.
    fn exec(&mut self, command_line: &str, timeout: Duration) -> Result<Exec>;
    /// Runs `command_line` with `input` on its stdin (WinRM). Connections without
    /// one say so.
    fn exec_input(&mut self, command_line: &str, input: &[u8], timeout: Duration) -> Result<Exec> {
        let _ = (input, timeout);
        Err(TransportError::Io {
            host: self.host().to_string(),
            what: format!("running `{command_line}` with input"),
            reason: "this transport does not carry stdin".into(),
        })
    }
    /// Whether `put` moves files (SFTP); where not, the platform layer sends them
    /// through a command's stdin.
    fn can_put(&self) -> bool {
        true
    }
    /// Whether `http` reaches the host's own ports; where not, the platform layer
    /// makes the request with a command on the host.
    fn can_tunnel(&self) -> bool {
        true
    }
    /// Writes `bytes` to `path` (a path in the host's own syntax, `C:\...` on
    /// Windows), created private to the login user where the server allows. Nothing
    /// else: the platform layer moves it into place.
    fn put(&mut self, path: &str, bytes: &[u8]) -> Result<()>;
    /// An HTTP request to `127.0.0.1:port` on the host, tunnelled through the
    /// connection, so the management API need not be open to the operator's machine.
    fn http(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&str>,
    ) -> Result<HttpResponse>;
    /// What the server says it runs (the SSH banner), when the protocol tells.
    fn server_version(&self) -> Option<String> {
        None
    }
}

/// A command's first line, cut at 60 characters, for messages.
pub(crate) fn first_words(command: &str) -> String {
    let line = command.lines().next().unwrap_or("");
    match line.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn dechunks_an_http_body() {
        assert_eq!(
            super::dechunk(b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n").as_deref(),
            Some(&b"hello, world"[..])
        );
        assert_eq!(super::dechunk(b"zz\r\nhello"), None);
        assert_eq!(super::dechunk(b"5\r\nhel"), None);
    }
    use super::*;

    fn failed(stderr: &str) -> Exec {
        Exec {
            status: 64,
            stdout: String::new(),
            stderr: stderr.to_string(),
        }
    }

    /// An error rabbitmqctl has no message for: `Error:` alone, the Erlang term on the
    /// lines after it (RabbitMQ 3.10's `rabbitmqctl forget_cluster_node` of the node
    /// itself, as captured in the lab).
    #[test]
    fn a_bare_error_line_takes_the_reason_after_it() {
        let e = failed("Error:\n{:failed_to_remove_node, :rabbit@central, {:combine_error, :schema, 'Last replica'}}\n");
        assert_eq!(
            e.last_line(),
            "Error: {:failed_to_remove_node, :rabbit@central, {:combine_error, :schema, 'Last replica'}}"
        );
        assert_eq!(
            failed("Error:\nboom\n\nUsage\n\nrabbitmqctl eval\n").last_line(),
            "Error: boom"
        );
    }

    /// What RabbitMQ 3.10's rabbitmqctl prints, as captured on this machine.
    #[test]
    fn rabbitmqctl_failures_give_their_reason_not_their_usage() {
        let usage = "Error (argument validation): not enough arguments.\nArguments given:\n\t-q join_cluster\n\n\u{1b}[1mUsage\u{1b}[0m\n\nrabbitmqctl [--node <node>] [--longnames] [--quiet] join_cluster [--disc|--ram] <existing_cluster_member>\n";
        assert_eq!(
            failed(usage).last_line(),
            "Error (argument validation): not enough arguments."
        );
        let down = "Error: unable to perform an operation on node 'rabbit@vm'. Please see diagnostics information and suggestions below.\n\nMost common reasons for this are:\n\n * Target node is unreachable\n\nDIAGNOSTICS\n===========\n\nattempted to contact: [rabbit@vm]\n\nrabbit@vm:\n  * connected to epmd (port 4369) on vm\n  * epmd reports: node 'rabbit' not running at all\n                  no other nodes on vm\n  * suggestion: start the node\n\nCurrent node details:\n * node name: 'rabbitmqcli-567-rabbit@vm'\n";
        assert_eq!(
            failed(down).last_line(),
            "Error: unable to perform an operation on node 'rabbit@vm'. (connected to epmd (port 4369) on vm; epmd reports: node 'rabbit' not running at all; no other nodes on vm; suggestion: start the node)"
        );
        assert_eq!(failed("first\nlast line\n\n").last_line(), "last line");
    }

    #[test]
    fn quoting() {
        assert_eq!(
            sh_quote("/etc/rabbitmq/rabbitmq.conf"),
            "/etc/rabbitmq/rabbitmq.conf"
        );
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
    }
}
