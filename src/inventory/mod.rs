//! The inventory: `inventory.toml` read into raw serde structs (`raw`), then checked into
//! the model (`model`) that the rest of warren works from. Secrets are references only.

pub mod balancer;
mod hosts;
mod keys;
pub mod model;
mod problem;
pub mod raw;
pub mod secret;
pub mod secret_check;
mod sites;
pub mod tls;
pub mod validate;
mod versions;

pub use model::*;
pub use problem::Problem;
pub use secret::{Secret, SecretRef};
pub use secret_check::Needs;

use std::fmt;
use std::path::{Path, PathBuf};

/// Why an inventory could not be loaded: the file itself, or the problems in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    #[error("{}: cannot read the inventory: {source}; give its path with -i FILE", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}", Listed(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

struct Listed<'a>(&'a Path, &'a [Problem]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.1.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", self.0.display(), p)?;
        }
        Ok(())
    }
}

impl InventoryError {
    /// Every problem as its own line, file first: what `warren check` prints.
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

/// Parses and validates without reading any secret. Every problem is reported at
/// once: unknown keys (removed first, each named with its line) along with every
/// problem validation finds in the rest.
pub fn parse(text: &str, path: &Path) -> Result<Inventory, InventoryError> {
    let syntax = |e: toml::de::Error| InventoryError::Syntax {
        path: path.to_path_buf(),
        message: syntax_message(&e),
    };
    let mut value: toml::Value = toml::from_str(text).map_err(syntax)?;
    let mut problems = keys::strip_unknown(&mut value, text);
    let raw: raw::RawInventory = if problems.is_empty() {
        // Straight from the text: type errors then carry their line.
        toml::from_str(text).map_err(syntax)?
    } else {
        match value.try_into() {
            Ok(raw) => raw,
            Err(e) => {
                problems.push(Problem {
                    key: "inventory".into(),
                    message: format!("{}; fix the TOML", e.message().trim_end_matches('.')),
                });
                return Err(InventoryError::Invalid {
                    path: path.to_path_buf(),
                    problems,
                });
            }
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match validate::validate(raw, path, &dir) {
        Ok(inv) if problems.is_empty() => Ok(inv),
        Ok(_) => Err(InventoryError::Invalid {
            path: path.to_path_buf(),
            problems,
        }),
        Err(more) => {
            problems.extend(more);
            Err(InventoryError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }
}

/// toml's message spans several lines (a source excerpt); keep it to one sentence with
/// the line number, which is what an operator needs.
fn syntax_message(e: &toml::de::Error) -> String {
    let msg = e.message().trim_end_matches('.').to_string();
    let line = e.span().map(|s| s.start);
    match line {
        Some(_) => format!("{msg} (line {}); fix the TOML there", line_of(e)),
        None => format!("{msg}; fix the TOML"),
    }
}

fn line_of(e: &toml::de::Error) -> usize {
    // toml's Display starts with "TOML parse error at line N, column M".
    let text = e.to_string();
    text.split("line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Reads, parses, validates, and checks that every secret `needs` requires can be read.
pub fn load(path: &Path, needs: Needs) -> Result<Inventory, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let inv = parse(&text, path)?;
    let problems = secret_check::check_secrets(&inv, needs);
    if problems.is_empty() {
        Ok(inv)
    } else {
        Err(InventoryError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}
