//! `warren lab up|down|reset|status [--name NAME]`: the local lab of real hosts.

use super::Outcome;
use crate::cli::LabAction;
use anyhow::Result;

pub fn run(name: Option<&str>, action: LabAction) -> Result<Outcome> {
    let lab = crate::lab::Lab::here(name)?;
    match action {
        LabAction::Up { hosts, systemd } => lab.up(hosts, systemd)?,
        LabAction::Down => lab.down()?,
        LabAction::Reset => lab.reset()?,
        LabAction::Status => lab.status()?,
    }
    Ok(Outcome::Success)
}
