//! `Remote`: a connection and the platform of the host at its other end. How a script
//! travels (one command line, or a file when too long), how a file is put in place
//! (through a private folder or beside its target), and how an HTTP request reaches
//! the host's own port (a tunnel, or a script on the host).

use super::{cli_slot, Platform, Probe, Query, Transport};
use crate::transport::{self, Connection, Exec, HttpResponse};
use std::collections::BTreeSet;
use std::time::Duration;

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
    /// Whether those names end in random characters (always, but in transcripts), so
    /// that no one can place a file under the name the next script will have.
    random_names: bool,
}

impl Remote {
    pub fn new(conn: Box<dyn Connection>, platform: Box<dyn Platform>) -> Remote {
        Remote {
            conn,
            platform,
            folders: BTreeSet::new(),
            scripts: 0,
            run_id: std::process::id() as u64,
            random_names: true,
        }
    }

    /// The same, with script file names fixed by `run_id`, their random part shown as
    /// `XXXXXXXXXXXXXXXX` (for transcripts).
    pub fn with_run_id(mut self, run_id: u64) -> Remote {
        self.run_id = run_id;
        self.random_names = false;
        self
    }

    /// A new script file's name.
    fn script_name(&mut self) -> String {
        self.scripts += 1;
        script_name(self.run_id * 1000 + self.scripts, self.random_names)
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

    /// Sends a script (see `send_script`), and writes it, with what came back, to the
    /// run log.
    fn exec_script(&mut self, script: &str, timeout: Duration) -> transport::Result<Exec> {
        let t0 = std::time::Instant::now();
        let result = self.send_script(script, timeout);
        let host = self.conn.host().to_string();
        match &result {
            Ok(e) => crate::runlog::command(
                &host,
                script,
                Ok(e.status),
                t0.elapsed(),
                &e.stdout,
                &e.stderr,
            ),
            Err(e) => {
                crate::runlog::command(&host, script, Err(&e.to_string()), t0.elapsed(), "", "")
            }
        }
        result
    }

    /// Sends a script: on one command line, or, when too long for one, as a file.
    fn send_script(&mut self, script: &str, timeout: Duration) -> transport::Result<Exec> {
        if let Some(line) = self.platform.command_line(script) {
            return self.conn.exec(&line, timeout);
        }
        let name = self.script_name();
        let f = self.platform.script_file(script, &name);
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

    /// `request`, written to the run log by method, path and status: never a body
    /// (a user's definition carries its password) nor the credentials.
    fn logged_request(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&str>,
    ) -> transport::Result<HttpResponse> {
        let t0 = std::time::Instant::now();
        let result = self.request(port, method, path, auth, body);
        let outcome = match &result {
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("failed: {e}"),
        };
        crate::runlog::line(
            self.conn.host(),
            &format!(
                "HTTP {method} {path} on port {port}: {outcome} ({:.2} s)",
                t0.elapsed().as_secs_f64()
            ),
        );
        result
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
        self.logged_request(port, "GET", path, auth, None)
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
        self.logged_request(port, method, path, auth, body)
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
        crate::runlog::line(
            self.conn.host(),
            &format!("putting {path}: {} bytes by way of {tmp}", bytes.len()),
        );
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

/// Script file name `n`: numbered, then 16 random hex digits (shown as X when not
/// `random`).
fn script_name(n: u64, random: bool) -> String {
    let tail = if random {
        format!("{:016x}", rand::random::<u64>())
    } else {
        "X".repeat(16)
    };
    format!("{n}-{tail}")
}

#[cfg(test)]
mod tests {
    use super::script_name;

    /// No one can put a file under the name of the next script: 64 random bits.
    #[test]
    fn script_names_are_numbered_and_unguessable() {
        let a = script_name(7001, true);
        let b = script_name(7001, true);
        assert_ne!(a, b);
        for n in [&a, &b] {
            let (num, tail) = n.split_once('-').unwrap();
            assert_eq!(num, "7001");
            assert_eq!(tail.len(), 16);
            assert!(tail.chars().all(|c| c.is_ascii_hexdigit()), "{n}");
        }
        assert_eq!(script_name(7001, false), "7001-XXXXXXXXXXXXXXXX");
    }
}
