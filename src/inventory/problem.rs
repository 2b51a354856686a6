//! A problem of the inventory: the key it concerns and a sentence that says what is
//! wrong and what to do; the list every check adds to, and what the checks share (a
//! keyword parsed among its choices, a path resolved against the inventory's folder).

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with the inventory: the key it concerns and a sentence that says
/// what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Parses a keyword such as `replication = "quorum"`; `None` when absent.
    pub(super) fn keyword<T>(
        &mut self,
        key: &str,
        value: Option<&str>,
        parse: fn(&str) -> Option<T>,
        choices: &[&str],
        default: T,
    ) -> T {
        match value {
            None => default,
            Some(v) => match parse(v) {
                Some(t) => t,
                None => {
                    self.add(
                        key,
                        format!("\"{v}\" is not one of {}; use one of them", quoted(choices)),
                    );
                    default
                }
            },
        }
    }
}

pub(super) fn quoted(choices: &[&str]) -> String {
    choices
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Relative paths are relative to the inventory's folder; `~/` is the user's home.
pub fn resolve_path(dir: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}
