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
            for line in format!("{e:#}").lines() {
                eprintln!("error: {line}");
            }
            ExitCode::from(1)
        }
    }
}

pub fn run(cli: Cli) -> Result<Outcome> {
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
