//! One file per command; `run` dispatches.

mod check;
mod lab;
mod render;

use crate::cli::{Cli, Command, Outcome};
use anyhow::Result;

pub fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Check => check::run(&cli.inventory),
        Command::Render { out, host } => render::run(&cli.inventory, &out, host.as_deref()),
        Command::Lab { action } => lab::run(action),
    }
}
