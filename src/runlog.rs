//! The run log: every `apply`, `drill` and `backup` writes one file on the operator's
//! machine, under `$XDG_STATE_HOME/warren/runs/` (default `~/.local/state/warren/runs/`),
//! mode 0600, so that a failed run can be understood without reproducing it: each
//! command with its host, exit code, duration, script and output; each HTTP request
//! with its method, path and status (never its body); each file put, by path and size
//! (never its bytes). Every secret the run knows (the cookie, passwords, TLS keys) is
//! masked wherever it would appear, as `plan` masks them. The last `KEEP` runs are
//! kept. Like Terraform's `TF_LOG_PATH` and Ansible's `log_path`, but always on.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How many runs' logs are kept.
pub const KEEP: usize = 50;

/// What replaces a secret in the log.
pub const MASK: &str = "********";

struct RunLog {
    path: PathBuf,
    file: File,
    secrets: Vec<String>,
}

static LOG: Mutex<Option<RunLog>> = Mutex::new(None);

/// Where run logs go.
pub fn folder() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/state")
        });
    state.join("warren/runs")
}

/// Starts this process's run log for `verb` (`apply`, `drill`, `backup`), run as
/// `command` (its arguments as typed); the older runs' logs beyond `KEEP` are
/// removed. A log that cannot be written is said once on stderr, never fatal: the
/// run itself matters more.
pub fn start(verb: &str, command: &str) {
    match open(&folder(), verb, command) {
        Ok(log) => *LOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(log),
        Err(e) => eprintln!("warning: no run log: {e}"),
    }
}

fn open(dir: &Path, verb: &str, command: &str) -> std::io::Result<RunLog> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let stamp = crate::util::utc_stamp(SystemTime::now());
    let path = dir.join(format!("{stamp}-{verb}-{}.log", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.create_new(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    writeln!(
        file,
        "warren {command}\nstarted {}\n",
        humantime::format_rfc3339_seconds(SystemTime::now())
    )?;
    prune(dir)?;
    Ok(RunLog {
        path,
        file,
        secrets: Vec::new(),
    })
}

/// Removes the oldest logs beyond `KEEP` (their names sort by time).
fn prune(dir: &Path) -> std::io::Result<()> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(KEEP);
    for p in &logs[..excess] {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// The run's log file, when there is one.
pub fn path() -> Option<PathBuf> {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|l| l.path.clone())
}

/// A secret to mask wherever it would appear in the log from now on.
pub fn secret(value: &str) {
    // Short values would mask ordinary words; warren's secrets are long.
    if value.trim().len() < 6 {
        return;
    }
    if let Some(l) = LOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        l.secrets.push(value.trim().to_string());
    }
}

/// Writes `text` to the log, every secret masked.
pub fn write(text: &str) {
    let mut guard = LOG.lock().unwrap_or_else(|e| e.into_inner());
    let Some(l) = guard.as_mut() else {
        return;
    };
    let mut text = text.to_string();
    for s in &l.secrets {
        text = text.replace(s.as_str(), MASK);
    }
    let _ = l.file.write_all(text.as_bytes());
}

/// A command run on `host`: its script (as the host's shell receives it, before any
/// encoding), exit code, duration and output.
pub fn command(
    host: &str,
    script: &str,
    status: Result<i32, &str>,
    took: Duration,
    stdout: &str,
    stderr: &str,
) {
    if path().is_none() {
        return;
    }
    let mut s = format!(
        "== {} {host}: {} ({:.2} s)\n{}\n",
        humantime::format_rfc3339_millis(SystemTime::now()),
        match status {
            Ok(code) => format!("exit {code}"),
            Err(e) => format!("failed: {e}"),
        },
        took.as_secs_f64(),
        indent("$ ", script.trim_end()),
    );
    if !stdout.trim().is_empty() {
        s.push_str(&format!("{}\n", indent("> ", stdout.trim_end())));
    }
    if !stderr.trim().is_empty() {
        s.push_str(&format!("{}\n", indent("! ", stderr.trim_end())));
    }
    s.push('\n');
    write(&s);
}

/// Anything else worth a line (an HTTP request, a file put, the outcome).
pub fn line(host: &str, what: &str) {
    if path().is_none() {
        return;
    }
    write(&format!(
        "== {} {host}: {what}\n\n",
        humantime::format_rfc3339_millis(SystemTime::now())
    ));
}

fn indent(prefix: &str, text: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_old_runs_pruned() {
        let dir = tempfile::tempdir().unwrap();
        for k in 0..KEEP + 3 {
            std::fs::write(
                dir.path().join(format!("20260101-0000{k:02}-apply-1.log")),
                "",
            )
            .unwrap();
        }
        let log = open(dir.path(), "apply", "apply --yes").unwrap();
        let path = log.path.clone();
        *LOG.lock().unwrap() = Some(log);
        secret("SUPERSECRETCOOKIE");
        command(
            "site1",
            "cat x",
            Ok(1),
            Duration::from_millis(5),
            "got SUPERSECRETCOOKIE",
            "Error:\nbad",
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("SUPERSECRETCOOKIE"), "{text}");
        assert!(
            text.contains("site1: exit 1")
                && text.contains("> got ********")
                && text.contains("! bad"),
            "{text}"
        );
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, KEEP);
        assert!(path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        *LOG.lock().unwrap() = None;
    }
}
