//! Command-line parsing: the commands, their table and the dispatch to each
//! command family's option parser.
//!
//! Hand-written on purpose: a handful of subcommands with a few options each
//! does not justify a parser crate in a firmware-sized binary. Every error
//! names the option and says what was expected; exit code 2.

mod args;
mod cameras;
mod experiments;
mod help;
mod replay;
mod service;
mod setup;

use crate::error::{Error, ErrorKind, Result};
use args::{usage, Args};
pub(crate) use help::HELP;
use help::{
    HELP_BENCH, HELP_CALIBRATE, HELP_CAMERAS, HELP_CHECK, HELP_DEMO, HELP_PLAN, HELP_PROFILE,
    HELP_REPLAY, HELP_RUN, HELP_SIMULATE, HELP_STATUS,
};
use std::ffi::OsString;
use std::path::PathBuf;

/// `run` and `demo`'s options, as typed; `commands` turns them into the
/// service's options.
#[derive(Clone, Debug, PartialEq)]
pub struct RunArgs {
    /// The configuration file.
    pub config: PathBuf,
    /// The planner.
    pub strategy: crate::planner::Strategy,
    /// Budget in cores, overriding the configuration's.
    pub budget: Option<f64>,
    /// Demo: a live status line on stderr.
    pub status_line: bool,
    /// Re-plan when the config file or a drop-in changes (besides SIGHUP).
    pub watch: bool,
    /// Stop after this long (`None`: until a signal or the sources end).
    pub duration: Option<std::time::Duration>,
}

/// What the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `mainstream check`: validate config and drop-ins.
    Check {
        /// Config file.
        config: PathBuf,
    },
    /// `mainstream cameras`: list video devices.
    Cameras {
        /// Print JSON instead of a table.
        json: bool,
    },
    /// `mainstream cameras --test DEVICE`: stream one camera through preprocessing.
    CameraTest {
        /// What to open and ask for.
        spec: crate::camera::SourceSpec,
        /// Frames to stream.
        frames: u32,
    },
    /// `mainstream plan`: show the scheduler's plan for the configured apps.
    Plan {
        /// Config file.
        config: PathBuf,
        /// Budget in cores, overriding `[device] budget_cores`.
        budget: Option<f64>,
        /// Print JSON.
        json: bool,
    },
    /// `mainstream profile`: measure this device's per-segment costs.
    Profile {
        /// Config file (for the base network and the state directory).
        config: PathBuf,
        /// Timed runs per segment.
        runs: u32,
    },
    /// `mainstream simulate`: reproduce the paper's scheduler results.
    Simulate(SimulateArgs),
    /// `mainstream bench`: stem-sharing throughput on this machine.
    Bench(crate::bench::BenchArgs),
    /// `mainstream replay`: the real pipeline on a labelled clip under a simulated clock.
    Replay(crate::replay::ReplayArgs),
    /// `mainstream calibrate`: measure every head's rates on a labelled clip.
    Calibrate(crate::calibrate::CalibrateArgs),
    /// `mainstream run`: the appliance service.
    Run(RunArgs),
    /// `mainstream demo`: the service on the bundled demo, scored against its ground truth.
    Demo {
        /// How to run the service.
        run: RunArgs,
        /// Print the summary as JSON.
        json: bool,
    },
    /// `mainstream status`: what the running service is doing.
    Status {
        /// Config file (for the state directory).
        config: PathBuf,
        /// Print JSON.
        json: bool,
    },
    /// `mainstream help [COMMAND]` or `--help`.
    Help(Option<String>),
    /// `mainstream --version`.
    Version,
}

/// Options of `mainstream simulate`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateArgs {
    /// Print JSON.
    pub json: bool,
    /// Random workloads per table cell.
    pub workloads: usize,
    /// PRNG seed.
    pub seed: u64,
}

/// Every command with its help text, in the order `mainstream --help` lists
/// them: the one table the parser, `help COMMAND` and the help test read.
pub const COMMANDS: &[(&str, &str)] = &[
    ("run", HELP_RUN),
    ("demo", HELP_DEMO),
    ("status", HELP_STATUS),
    ("check", HELP_CHECK),
    ("plan", HELP_PLAN),
    ("simulate", HELP_SIMULATE),
    ("profile", HELP_PROFILE),
    ("cameras", HELP_CAMERAS),
    ("bench", HELP_BENCH),
    ("replay", HELP_REPLAY),
    ("calibrate", HELP_CALIBRATE),
    ("help", HELP),
];

/// Help text for a command, or `None` if there is no such command.
pub fn help_for(cmd: Option<&str>) -> Option<&'static str> {
    match cmd {
        None => Some(HELP),
        Some(name) => COMMANDS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h),
    }
}

/// Parses the process arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command> {
    let mut strings = Vec::new();
    for a in args {
        match a.into_string() {
            Ok(s) => strings.push(s),
            Err(a) => return Err(usage(format!("argument {a:?} is not valid UTF-8"))),
        }
    }
    let mut it = strings.into_iter();
    let Some(first) = it.next() else {
        return Ok(Command::Help(None));
    };
    let cmd: &'static str = match first.as_str() {
        "-h" | "--help" => return Ok(Command::Help(None)),
        "-V" | "--version" => return Ok(Command::Version),
        "help" => {
            // `help --help` is help about help: the overview.
            let topic = it.next().filter(|t| t != "-h" && t != "--help");
            if let Some(extra) = it.next() {
                return Err(usage(format!(
                    "unexpected argument {extra:?} after `help {}`",
                    topic.unwrap_or_default()
                )));
            }
            if let Some(t) = &topic {
                if help_for(Some(t)).is_none() {
                    return Err(usage(format!(
                        "no such command {t:?}; see `mainstream --help`"
                    )));
                }
            }
            return Ok(Command::Help(topic));
        }
        name => match COMMANDS.iter().find(|(n, _)| *n == name) {
            Some((n, _)) => n,
            None => {
                let names: Vec<&str> = COMMANDS.iter().map(|(n, _)| *n).collect();
                return Err(usage(format!(
                    "unknown command {name:?}; commands are: {}",
                    names.join(", ")
                )));
            }
        },
    };
    let mut a = Args {
        cmd,
        rest: it.collect::<Vec<_>>().into_iter(),
        help: false,
    };
    let parsed = match cmd {
        "check" => setup::check(&mut a)?,
        "plan" => setup::plan(&mut a)?,
        "profile" => setup::profile(&mut a)?,
        "run" => service::run_or_demo(&mut a, false)?,
        "demo" => service::run_or_demo(&mut a, true)?,
        "status" => service::status(&mut a)?,
        "replay" => replay::replay_or_calibrate(&mut a, false)?,
        "calibrate" => replay::replay_or_calibrate(&mut a, true)?,
        "cameras" => cameras::cameras(&mut a)?,
        "bench" => experiments::bench(&mut a)?,
        "simulate" => experiments::simulate(&mut a)?,
        _ => {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("command {cmd} has no parser"),
            ))
        }
    };
    if a.help {
        return Ok(Command::Help(Some(cmd.to_owned())));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG;

    fn p(args: &[&str]) -> Result<Command> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn no_arguments_shows_help() {
        assert_eq!(p(&[]).unwrap(), Command::Help(None));
    }

    #[test]
    fn check_takes_config_in_both_spellings() {
        let want = Command::Check {
            config: "x.toml".into(),
        };
        assert_eq!(p(&["check", "--config", "x.toml"]).unwrap(), want);
        assert_eq!(p(&["check", "--config=x.toml"]).unwrap(), want);
        assert_eq!(p(&["check", "-c", "x.toml"]).unwrap(), want);
        assert_eq!(
            p(&["check"]).unwrap(),
            Command::Check {
                config: DEFAULT_CONFIG.into()
            }
        );
    }

    #[test]
    fn help_after_a_command_shows_that_commands_help() {
        assert_eq!(
            p(&["plan", "--help"]).unwrap(),
            Command::Help(Some("plan".into()))
        );
        assert_eq!(
            p(&["help", "check"]).unwrap(),
            Command::Help(Some("check".into()))
        );
    }

    #[test]
    fn mistakes_are_usage_errors_that_name_the_option() {
        for (args, needle) in [
            (&["frobnicate"][..], "unknown command \"frobnicate\""),
            (&["check", "--confg", "x"][..], "unknown option --confg"),
            (&["check", "--config"][..], "--config needs a value"),
            (
                &["plan", "--budget", "lots"][..],
                "--budget \"lots\" is not valid",
            ),
            (&["plan", "--budget", "-1"][..], "out of range"),
            (&["cameras", "--json=yes"][..], "--json takes no value"),
            (&["check", "stray"][..], "unexpected argument \"stray\""),
            (&["help", "nope"][..], "no such command"),
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{args:?}");
            assert!(e.to_string().contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn every_command_has_help() {
        for c in ["check", "cameras", "plan", "simulate", "bench", "profile"] {
            assert!(help_for(Some(c)).is_some(), "{c}");
            assert!(HELP.contains(c), "{c} missing from top-level help");
        }
    }
}
