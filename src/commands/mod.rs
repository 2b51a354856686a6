//! One file per command; `run` dispatches.

mod apply;
mod check;
mod lab;
mod plan;
mod render;
pub mod status;
mod verify;

use crate::cli::{Cli, Command, Outcome};
use anyhow::Result;

pub fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Check => check::run(&cli.inventory),
        Command::Render { out, host } => render::run(&cli.inventory, &out, host.as_deref()),
        Command::Plan { exit_code, timings } => plan::run(&cli.inventory, exit_code, timings),
        Command::Apply {
            yes,
            dry_run,
            force,
            timings,
        } => apply::run(
            &cli.inventory,
            apply::Flags {
                yes,
                dry_run,
                force,
                timings,
            },
        ),
        Command::Status { json } => status::run(&cli.inventory, json),
        Command::Verify { json } => verify::run(&cli.inventory, json),
        Command::Lab { action } => lab::run(action),
    }
}
