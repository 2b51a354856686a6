//! How warren reaches a host. Two capabilities, two traits: `Probe` can only look (run
//! read-only commands, read files, GET from a local HTTP port), `Transport` can also
//! change things. Fact gathering and `plan` receive a `Probe`; only the executor holds
//! a `Transport`, so a dry run cannot write by construction, not by care.
//!
//! SSH (the ssh2 crate) is implemented here; WinRM joins behind the same traits.

pub mod ssh;

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
    /// The last non-empty line of stderr (or stdout), for one-line error messages.
    pub fn last_line(&self) -> String {
        let pick = |s: &str| {
            s.lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        };
        pick(&self.stderr)
            .or_else(|| pick(&self.stdout))
            .unwrap_or_else(|| format!("exit status {}", self.status))
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

/// Looking without touching.
pub trait Probe: Send {
    /// The host's name in the inventory, for messages.
    fn host(&self) -> &str;
    /// Runs a command that changes nothing, such as `cat`, `sha256sum` or
    /// `rabbitmqctl cluster_status`.
    fn query(&mut self, command: &str, timeout: Duration) -> Result<Exec>;
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
}

/// Looking and changing.
pub trait Transport: Probe {
    /// Runs a command that may change the host.
    fn run(&mut self, command: &str, timeout: Duration) -> Result<Exec>;
    /// Writes `bytes` to `path`: to a temporary file beside it, owner and mode set, then
    /// renamed over it, so no reader ever sees half a file. `in_place` writes through
    /// the existing file instead (for files that are mount points, such as a
    /// container's /etc/hosts, which cannot be renamed over).
    fn upload(
        &mut self,
        path: &str,
        bytes: &[u8],
        owner: Option<&str>,
        mode: Option<u32>,
        in_place: bool,
    ) -> Result<()>;
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
    use super::*;

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
