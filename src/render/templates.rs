//! Tera templates: the defaults are compiled into the binary; a `templates/` folder
//! beside the inventory overrides them file by file (same relative name).

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tera::{Tera, Value};

/// Every template warren renders, by name, with its built-in text.
pub const DEFAULTS: &[(&str, &str)] = &[
    (
        "common/rabbitmq.conf.tera",
        include_str!("../../templates/common/rabbitmq.conf.tera"),
    ),
    (
        "common/rabbitmq.config.tera",
        include_str!("../../templates/common/rabbitmq.config.tera"),
    ),
    (
        "common/enabled_plugins.tera",
        include_str!("../../templates/common/enabled_plugins.tera"),
    ),
    (
        "common/hosts.tera",
        include_str!("../../templates/common/hosts.tera"),
    ),
    (
        "common/inter_node_tls.config.tera",
        include_str!("../../templates/common/inter_node_tls.config.tera"),
    ),
    (
        "common/prometheus.yml.tera",
        include_str!("../../templates/common/prometheus.yml.tera"),
    ),
    (
        "linux/rabbitmq-env.conf.tera",
        include_str!("../../templates/linux/rabbitmq-env.conf.tera"),
    ),
    (
        "linux/systemd-warren.conf.tera",
        include_str!("../../templates/linux/systemd-warren.conf.tera"),
    ),
    (
        "linux/haproxy.cfg.tera",
        include_str!("../../templates/linux/haproxy.cfg.tera"),
    ),
    (
        "windows/rabbitmq-env-conf.bat.tera",
        include_str!("../../templates/windows/rabbitmq-env-conf.bat.tera"),
    ),
    (
        "windows/bootstrap.ps1.tera",
        include_str!("../../templates/windows/bootstrap.ps1.tera"),
    ),
];

pub struct Templates {
    pub tera: Tera,
    /// The templates taken from the override folder, as (name, file).
    pub overridden: Vec<(String, PathBuf)>,
}

impl Templates {
    /// The built-in templates, each replaced by `override_dir/NAME` where that exists.
    pub fn load(override_dir: &Path) -> Result<Templates> {
        let mut tera = Tera::default();
        let mut overridden = Vec::new();
        let mut sources = Vec::new();
        for (name, text) in DEFAULTS {
            let file = override_dir.join(name);
            if file.is_file() {
                let own = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read the template {}", file.display()))?;
                // The repository's own templates/ folder sits beside inventory.toml;
                // a copy identical to the built-in one is not an override.
                if own != *text {
                    overridden.push((name.to_string(), file));
                }
                sources.push((name.to_string(), own));
            } else {
                sources.push((name.to_string(), text.to_string()));
            }
        }
        for (name, text) in &sources {
            tera.add_raw_template(name, text).map_err(|e| {
                let origin = overridden
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, f)| f.display().to_string())
                    .unwrap_or_else(|| format!("built-in {name}"));
                anyhow::anyhow!(
                    "{origin}: the template does not parse: {}; fix it or delete the override",
                    chain(&e)
                )
            })?;
        }
        tera.register_filter("erl_atom", erl_atom);
        tera.register_filter("erl_string", erl_string);
        tera.register_filter("erl_binary", erl_binary);
        tera.register_filter("ps_string", ps_string);
        Ok(Templates { tera, overridden })
    }

    pub fn render(&self, name: &str, ctx: &tera::Context) -> Result<String> {
        self.tera.render(name, ctx).map_err(|e| {
            let origin = self
                .overridden
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, f)| f.display().to_string())
                .unwrap_or_else(|| format!("built-in {name}"));
            anyhow::anyhow!("{origin}: rendering failed: {}", chain(&e))
        })
    }
}

/// Tera nests the real cause several errors deep, and its parse errors quote the
/// source over several lines; keep one line: where, and what was expected.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![one_line(&e.to_string())];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(one_line(&s.to_string()));
        cur = s.source();
    }
    parts.join(": ")
}

fn one_line(msg: &str) -> String {
    if !msg.contains('\n') {
        return msg.to_string();
    }
    let lines: Vec<&str> = msg.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .find_map(|l| l.strip_prefix("--> "))
        .map(|pos| format!("at line:column {pos}"));
    let what = lines.iter().find_map(|l| l.strip_prefix("= "));
    let head = lines[0].trim_end_matches(':');
    [Some(head.to_string()), at, what.map(str::to_string)]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

fn as_str<'a>(v: &'a Value, filter: &str) -> tera::Result<&'a str> {
    v.as_str()
        .ok_or_else(|| tera::Error::msg(format!("{filter} expects a string, got {v}")))
}

/// `'rabbit@host'`: an Erlang quoted atom.
fn erl_atom(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(v, "erl_atom")?;
    Ok(Value::String(format!(
        "'{}'",
        s.replace('\\', "\\\\").replace('\'', "\\'")
    )))
}

/// `"text"`: an Erlang string (a list of characters).
fn erl_string(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(v, "erl_string")?;
    Ok(Value::String(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    )))
}

/// `<<"text">>`: an Erlang binary.
fn erl_binary(v: &Value, a: &HashMap<String, Value>) -> tera::Result<Value> {
    let Value::String(s) = erl_string(v, a)? else {
        unreachable!("erl_string returns a string")
    };
    Ok(Value::String(format!("<<{s}>>")))
}

/// `'text'`: a PowerShell literal string, in which only `'` needs doubling.
fn ps_string(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(v, "ps_string")?;
    Ok(Value::String(format!("'{}'", s.replace('\'', "''"))))
}
