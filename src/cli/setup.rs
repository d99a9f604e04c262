//! Options of the commands that read the configuration before the service
//! runs: `check`, `plan` and `profile`.

use super::args::{usage, Args};
use super::Command;
use crate::config::DEFAULT_CONFIG;
use crate::error::Result;
use std::path::PathBuf;

/// `mainstream check`.
pub(super) fn check(a: &mut Args) -> Result<Command> {
    let mut config = PathBuf::from(DEFAULT_CONFIG);
    while let Some((opt, inline)) = a.next_opt()? {
        match opt.as_str() {
            "-c" | "--config" => config = a.config(&opt, inline)?,
            _ => return Err(a.unknown(&opt)),
        }
    }
    Ok(Command::Check { config })
}

/// `mainstream plan`.
pub(super) fn plan(a: &mut Args) -> Result<Command> {
    let mut config = PathBuf::from(DEFAULT_CONFIG);
    let mut budget = None;
    let mut json = false;
    while let Some((opt, inline)) = a.next_opt()? {
        match opt.as_str() {
            "-c" | "--config" => config = a.config(&opt, inline)?,
            "--json" => {
                Args::no_value(&opt, &inline)?;
                json = true;
            }
            "--budget" => budget = Some(a.budget(&opt, inline)?),
            _ => return Err(a.unknown(&opt)),
        }
    }
    Ok(Command::Plan {
        config,
        budget,
        json,
    })
}

/// `mainstream profile`.
pub(super) fn profile(a: &mut Args) -> Result<Command> {
    let mut config = PathBuf::from(DEFAULT_CONFIG);
    let mut runs = 7u32;
    while let Some((opt, inline)) = a.next_opt()? {
        match opt.as_str() {
            "--runs" => {
                runs = a.number(&opt, inline, "a whole number of runs from 1 to 1000")?;
                if !(1..=1000).contains(&runs) {
                    return Err(usage(format!("--runs {runs} is out of range 1..=1000")));
                }
            }
            "-c" | "--config" => config = a.config(&opt, inline)?,
            _ => return Err(a.unknown(&opt)),
        }
    }
    Ok(Command::Profile { config, runs })
}
