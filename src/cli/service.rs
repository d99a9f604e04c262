//! Options of the service's commands: `run`, `demo` and `status`.

use super::args::{usage, Args};
use super::{Command, RunArgs};
use crate::config::DEFAULT_CONFIG;
use crate::error::Result;
use std::path::PathBuf;

/// `mainstream run` (`demo: false`) or `mainstream demo` (`demo: true`).
pub(super) fn run_or_demo(a: &mut Args, demo: bool) -> Result<Command> {
    let mut config = PathBuf::from(if demo {
        "demo/config.toml"
    } else {
        DEFAULT_CONFIG
    });
    let mut json = false;
    let mut budget = None;
    let mut strategy = crate::planner::Strategy::Auto;
    let mut duration = None;
    let mut watch = true;
    while let Some((opt, inline)) = a.next_opt()? {
        match (demo, opt.as_str()) {
            (_, "--strategy") => {
                let v = a.value(&opt, inline, "a planner name")?;
                strategy = crate::planner::Strategy::parse(&v).ok_or_else(|| {
                    usage(format!(
                        "--strategy {v:?} is not valid: expected mainstream, greedy, exact, heuristic, max-min, max-sharing or no-sharing"
                    ))
                })?;
            }
            (false, "--duration") => {
                let s: f64 = a.number(&opt, inline, "seconds above 0")?;
                if !(s.is_finite() && s > 0.0 && s <= 1e9) {
                    return Err(usage(format!(
                        "--duration {s} is out of range: expected seconds above 0"
                    )));
                }
                duration = Some(std::time::Duration::from_secs_f64(s));
            }
            (false, "--no-watch") => {
                Args::no_value(&opt, &inline)?;
                watch = false;
            }
            (_, "-c" | "--config") => config = a.config(&opt, inline)?,
            (true, "--json") => {
                Args::no_value(&opt, &inline)?;
                json = true;
            }
            (_, "--budget") => budget = Some(a.budget(&opt, inline)?),
            _ => return Err(a.unknown(&opt)),
        }
    }
    let run = RunArgs {
        config,
        strategy,
        budget,
        status_line: demo,
        watch: watch && !demo,
        duration,
    };
    Ok(if demo {
        Command::Demo { run, json }
    } else {
        Command::Run(run)
    })
}

/// `mainstream status`.
pub(super) fn status(a: &mut Args) -> Result<Command> {
    let mut config = PathBuf::from(DEFAULT_CONFIG);
    let mut json = false;
    while let Some((opt, inline)) = a.next_opt()? {
        match opt.as_str() {
            "-c" | "--config" => config = a.config(&opt, inline)?,
            "--json" => {
                Args::no_value(&opt, &inline)?;
                json = true;
            }
            _ => return Err(a.unknown(&opt)),
        }
    }
    Ok(Command::Status { config, json })
}
