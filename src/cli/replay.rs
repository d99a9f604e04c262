//! Options of the commands that run the pipeline on a labelled clip:
//! `replay` and `calibrate`.

use super::args::{parse_list, usage, Args};
use super::Command;
use crate::error::Result;
use std::path::PathBuf;

/// `mainstream replay` (`calibrate: false`) or `mainstream calibrate`
/// (`calibrate: true`), which share the clip and app selection.
pub(super) fn replay_or_calibrate(a: &mut Args, calibrate: bool) -> Result<Command> {
    let mut config = PathBuf::from("demo/config.toml");
    let mut json = false;
    let mut write = false;
    let mut replay = crate::replay::ReplayArgs {
        config: PathBuf::new(),
        camera: None,
        clip: None,
        truth: None,
        apps: None,
        all_cameras: false,
        budgets: Vec::new(),
        strategies: Vec::new(),
        phase_seeds: Vec::new(),
        branch: None,
        fps: None,
        frames: None,
        charge: crate::replay::Charge::All,
        tolerance: crate::truth::TOLERANCE_FRAMES,
        json: false,
    };
    while let Some((opt, inline)) = a.next_opt()? {
        match (calibrate, opt.as_str()) {
            (false, "--strategy") => {
                let v = a.value(&opt, inline, "a comma-separated list of planner names")?;
                replay.strategies = parse_list(
                    &opt,
                    &v,
                    crate::planner::Strategy::parse,
                    "mainstream, greedy, exact, heuristic, max-min, max-sharing or no-sharing",
                )?;
            }
            (false, "--budget") => {
                let v = a.value(&opt, inline, "a comma-separated list of cores, e.g. 0.25,1")?;
                replay.budgets = parse_list(
                    &opt,
                    &v,
                    |x| {
                        x.parse::<f64>()
                            .ok()
                            .filter(|b| b.is_finite() && *b > 0.0 && *b <= 1024.0)
                    },
                    "cores above 0 and at most 1024",
                )?;
            }
            (_, "--camera") => {
                replay.camera = Some(a.value(&opt, inline, "a camera name from the config")?);
            }
            (_, "--clip") => {
                replay.clip = Some(PathBuf::from(a.value(
                    &opt,
                    inline,
                    "an MJPEG file, .y4m file or directory of JPEGs",
                )?));
            }
            (_, "--truth") => {
                replay.truth = Some(PathBuf::from(a.value(
                    &opt,
                    inline,
                    "a ground-truth TOML file",
                )?));
            }
            (_, "--apps") => {
                let v = a.value(&opt, inline, "a comma-separated list of app names")?;
                replay.apps = Some(parse_list(
                    &opt,
                    &v,
                    |x| (!x.is_empty()).then(|| x.to_owned()),
                    "app names",
                )?);
            }
            (false, "--all-cameras") => {
                Args::no_value(&opt, &inline)?;
                replay.all_cameras = true;
            }
            (false, "--phase-seed") => {
                let v = a.value(&opt, inline, "a comma-separated list of whole numbers")?;
                replay.phase_seeds =
                    parse_list(&opt, &v, |x| x.parse::<u64>().ok(), "whole numbers")?;
            }
            (_, "--frames") => {
                let n: u64 = a.number(&opt, inline, "a whole number of frames above 0")?;
                if n == 0 {
                    return Err(usage("--frames 0: expected at least 1 frame".into()));
                }
                replay.frames = Some(n);
            }
            (false, "--branch") => {
                replay.branch = Some(a.number(&opt, inline, "a branch point index, e.g. 20")?);
            }
            (false, "--fps") => {
                let f: f64 = a.number(&opt, inline, "frames per second above 0")?;
                if !(f.is_finite() && f > 0.0 && f <= 1000.0) {
                    return Err(usage(format!(
                        "--fps {f} is out of range: expected above 0 and at most 1000"
                    )));
                }
                replay.fps = Some(f);
            }
            (false, "--charge") => {
                let v = a.value(&opt, inline, "network or all")?;
                replay.charge = match v.as_str() {
                    "network" => crate::replay::Charge::Network,
                    "all" => crate::replay::Charge::All,
                    _ => {
                        return Err(usage(format!(
                            "--charge {v:?} is not valid: expected network or all"
                        )))
                    }
                };
            }
            (_, "--tolerance") => {
                replay.tolerance =
                    a.number(&opt, inline, "a whole number of frames from 0 to 1000")?;
                if replay.tolerance > 1000 {
                    return Err(usage(format!(
                        "--tolerance {} is out of range 0..=1000",
                        replay.tolerance
                    )));
                }
            }
            (_, "-c" | "--config") => config = a.config(&opt, inline)?,
            (_, "--json") => {
                Args::no_value(&opt, &inline)?;
                json = true;
            }
            (true, "--write") => {
                Args::no_value(&opt, &inline)?;
                write = true;
            }
            _ => return Err(a.unknown(&opt)),
        }
    }
    Ok(if calibrate {
        Command::Calibrate(crate::calibrate::CalibrateArgs {
            select: crate::replay::ReplayArgs {
                config,
                json,
                ..replay
            },
            write,
        })
    } else {
        if replay.strategies.is_empty() {
            replay.strategies = vec![crate::planner::Strategy::Auto];
        }
        Command::Replay(crate::replay::ReplayArgs {
            config,
            json,
            ..replay
        })
    })
}
