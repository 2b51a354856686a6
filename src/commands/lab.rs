//! `warren lab up|down|status`: the local lab of real hosts.

use super::Outcome;
use crate::cli::LabAction;
use anyhow::Result;

pub fn run(action: LabAction) -> Result<Outcome> {
    let lab = crate::lab::Lab::here()?;
    match action {
        LabAction::Up { hosts, systemd } => lab.up(hosts, systemd)?,
        LabAction::Down => lab.down()?,
        LabAction::Status => lab.status()?,
    }
    Ok(Outcome::Success)
}
