//! Secrets: references to where a secret lives (a file or an environment variable), and
//! `Secret<T>`, a value that never prints itself.

use serde::{Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// A value that must not appear in any output. `Debug`, `Display` and `Serialize` all
/// print `(sensitive value)`; the only way to the value is `expose()`, so every place
/// that uses it is easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

pub const REDACTED: &str = "(sensitive value)";

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Where a secret comes from. File paths are resolved against the inventory's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    File(PathBuf),
    Env(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::File(p) => write!(f, "file {}", p.display()),
            SecretRef::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

impl SecretRef {
    /// Reads the secret. A file's trailing newline is not part of the secret.
    pub fn read(&self) -> Result<Secret<String>, String> {
        match self {
            SecretRef::File(p) => match std::fs::read_to_string(p) {
                Ok(s) => Ok(Secret::new(s.trim_end_matches(['\r', '\n']).to_string())),
                Err(e) => Err(format!("cannot read {}: {}", p.display(), e)),
            },
            SecretRef::Env(v) => match std::env::var(v) {
                Ok(s) => Ok(Secret::new(s)),
                Err(_) => Err(format!("environment variable {v} is not set")),
            },
        }
    }

    /// Reads the secret; a cookie file that does not exist yet is created first with a
    /// fresh random cookie, readable by its owner only (mode 0600).
    pub fn read_or_create_random(&self) -> Result<Secret<String>, String> {
        if let SecretRef::File(p) = self {
            if !p.exists() {
                create_random_file(p)?;
            }
        }
        self.read()
    }
}

/// Writes a new random Erlang cookie: 32 upper-case letters and digits, which every
/// RabbitMQ version and both operating systems accept.
fn create_random_file(path: &Path) -> Result<(), String> {
    use rand::distributions::{Distribution, Uniform};
    use std::io::Write;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rngs::OsRng;
    let pick = Uniform::from(0..ALPHABET.len());
    let cookie: String = (0..32)
        .map(|_| ALPHABET[pick.sample(&mut rng)] as char)
        .collect();
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {}", dir.display(), e))?;
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot create {}: {}", path.display(), e))?;
    f.write_all(cookie.as_bytes())
        .map_err(|e| format!("cannot write {}: {}", path.display(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn missing_cookie_file_is_created_private_and_random() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/cookie");
        let r = SecretRef::File(p.clone());
        let a = r.read_or_create_random().unwrap();
        assert_eq!(a.expose().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // A second read keeps the cookie it made.
        assert_eq!(r.read_or_create_random().unwrap(), a);
        let other = dir.path().join("other");
        let b = SecretRef::File(other).read_or_create_random().unwrap();
        assert_ne!(a, b);
    }
}
