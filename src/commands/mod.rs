//! The commands: `main` parses the command line, `run` dispatches to one file per
//! command, and the exit code is chosen here, in one place.

mod apply;
mod backup;
mod check;
mod doctor;
mod drill;
mod lab;
mod plan;
mod render;
pub mod status;
mod verify;

use crate::cli::{Cli, Command};
use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;

/// How a command ended, mapped to an exit code in one place.
pub enum Outcome {
    Success,
    /// `plan --exit-code` with changes pending.
    Changes,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Err(e) => {
            crate::runlog::write(&format!("\nfailed:\n{e:#}\n"));
            for line in format!("{e:#}").lines() {
                eprintln!("error: {line}");
            }
            if let Some(p) = crate::runlog::path() {
                eprintln!(
                    "error: every command of this run, with its output: {}",
                    p.display()
                );
            }
            ExitCode::from(1)
        }
    }
}

pub fn run(cli: Cli) -> Result<Outcome> {
    let logged = match cli.command {
        Command::Apply { .. } => Some("apply"),
        Command::Drill { .. } => Some("drill"),
        Command::Backup { .. } => Some("backup"),
        _ => None,
    };
    if let Some(verb) = logged {
        let args: Vec<String> = std::env::args().skip(1).collect();
        crate::runlog::start(verb, &args.join(" "));
        mask_secrets(&cli.inventory);
    }
    match cli.command {
        Command::Check => check::run(&cli.inventory),
        Command::Render { out, host } => render::run(&cli.inventory, &out, host.as_deref()),
        Command::Plan {
            exit_code,
            timings,
            backup,
        } => plan::run(&cli.inventory, exit_code, timings, backup.as_deref()),
        Command::Backup { out } => backup::run(&cli.inventory, &out),
        Command::Doctor { json, hosts } => doctor::run(&cli.inventory, json, &hosts),
        Command::Apply {
            yes,
            dry_run,
            force,
            timings,
            accept_new_host_keys,
            allow_disruptive,
            break_lock,
        } => apply::run(
            &cli.inventory,
            apply::Flags {
                yes,
                dry_run,
                force,
                timings,
                accept_new_host_keys,
                allow_disruptive,
                break_lock,
            },
        ),
        Command::Status { json } => status::run(&cli.inventory, json),
        Command::Verify { json } => verify::run(&cli.inventory, json),
        Command::Drill {
            site,
            messages,
            yes,
            break_lock,
        } => drill::run(&cli.inventory, &site, messages as usize, yes, break_lock),
        Command::Lab { name, action } => lab::run(name.as_deref(), action),
    }
}

/// Asks on the terminal; only "yes" goes ahead. Without a terminal it refuses and
/// names `--yes`, so a script never hangs on a question.
fn confirm(question: &str, action: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not asking on a non-interactive input: rerun with --yes to {action}");
    }
    eprint!("{question} Only 'yes' goes ahead: ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        anyhow::bail!("the answer was not 'yes'; nothing was changed");
    }
    Ok(())
}

/// Tells the run log every secret the inventory names (the cookie, users' and links'
/// passwords, WinRM passwords, TLS keys), so that it masks them wherever they would
/// appear. An inventory that cannot be read is the command's own error to report.
fn mask_secrets(path: &std::path::Path) {
    let Ok(inv) = crate::inventory::load(path, crate::inventory::Needs::Hosts) else {
        return;
    };
    // The cookie as render reads it: made on the first run, as render would make it.
    if let Ok(v) = inv.cluster.cookie.read_or_create_random() {
        crate::runlog::secret(v.expose());
    }
    let mut refs: Vec<&crate::inventory::SecretRef> = Vec::new();
    refs.extend(inv.users.iter().map(|u| &u.password));
    refs.extend(inv.sites.iter().filter_map(|s| s.link_password.as_ref()));
    refs.extend(inv.hosts.iter().filter_map(|h| h.password.as_ref()));
    for r in refs {
        if let Ok(v) = r.read() {
            crate::runlog::secret(v.expose());
        }
    }
    for h in &inv.hosts {
        if let Some(tls) = &h.tls {
            if let Ok(key) = std::fs::read_to_string(&tls.key) {
                for line in key.lines().filter(|l| !l.starts_with("-----")) {
                    crate::runlog::secret(line);
                }
            }
        }
    }
}
