//! Options of the measuring commands that need no configuration: `bench`
//! (stem sharing on this machine) and `simulate` (the paper's scheduler).

use super::args::{parse_list, usage, Args};
use super::{Command, SimulateArgs};
use crate::bench::Sharing;
use crate::error::Result;
use std::path::PathBuf;

/// `mainstream bench`.
pub(super) fn bench(a: &mut Args) -> Result<Command> {
    let mut bench = crate::bench::BenchArgs {
        base: PathBuf::from("models/mobilenet_v2/manifest.toml"),
        apps: vec![1, 2, 4, 8],
        sharing: vec![Sharing::None, Sharing::Mid, Sharing::Max],
        frames: 20,
        runs: 5,
        processes: false,
        json: false,
        inputs: Vec::new(),
        threads: 1,
        cameras: 1,
    };
    while let Some((opt, inline)) = a.next_opt()? {
        match opt.as_str() {
            "--apps" => {
                let v = a.value(
                    &opt,
                    inline,
                    "a comma-separated list of app counts, e.g. 1,2,4,8",
                )?;
                bench.apps = parse_list(
                    &opt,
                    &v,
                    |x| x.parse::<usize>().ok().filter(|n| (1..=64).contains(n)),
                    "app counts from 1 to 64",
                )?;
            }
            "--sharing" => {
                let v = a.value(&opt, inline, "a comma-separated list of none, mid, max")?;
                bench.sharing = parse_list(&opt, &v, Sharing::parse, "none, mid or max")?;
            }
            "--frames" => {
                bench.frames =
                    a.number(&opt, inline, "a whole number of frames from 1 to 100000")?;
                if !(1..=100_000).contains(&bench.frames) {
                    return Err(usage(format!(
                        "--frames {} is out of range 1..=100000",
                        bench.frames
                    )));
                }
            }
            "--runs" => {
                bench.runs = a.number(&opt, inline, "a whole number of runs from 1 to 100")?;
                if !(1..=100).contains(&bench.runs) {
                    return Err(usage(format!(
                        "--runs {} is out of range 1..=100",
                        bench.runs
                    )));
                }
            }
            "--threads" => {
                bench.threads = a.number(&opt, inline, "a number of threads from 1 to 64")?;
                if !(1..=64).contains(&bench.threads) {
                    return Err(usage(format!(
                        "--threads {} is out of range 1..=64",
                        bench.threads
                    )));
                }
            }
            "--cameras" => {
                bench.cameras = a.number(&opt, inline, "a number of cameras from 1 to 16")?;
                if !(1..=16).contains(&bench.cameras) {
                    return Err(usage(format!(
                        "--cameras {} is out of range 1..=16",
                        bench.cameras
                    )));
                }
            }
            "--processes" => {
                Args::no_value(&opt, &inline)?;
                bench.processes = true;
            }
            "--base" => {
                bench.base =
                    PathBuf::from(a.value(&opt, inline, "the base network's manifest.toml")?)
            }
            "--input" => bench.inputs.push(PathBuf::from(a.value(
                &opt,
                inline,
                "a raw f32 input tensor file",
            )?)),
            "--json" => {
                Args::no_value(&opt, &inline)?;
                bench.json = true;
            }
            _ => return Err(a.unknown(&opt)),
        }
    }
    if bench.inputs.is_empty() {
        bench.inputs = ["coffee", "chelsea", "rocket"]
            .iter()
            .map(|p| PathBuf::from(format!("tests/fixtures/imagenet/{p}.input.f32")))
            .collect();
    }
    Ok(Command::Bench(bench))
}

/// `mainstream simulate`.
pub(super) fn simulate(a: &mut Args) -> Result<Command> {
    let mut json = false;
    let mut workloads = 100usize;
    let mut seed = crate::planner::simulate::DEFAULT_SEED;
    while let Some((opt, inline)) = a.next_opt()? {
        match opt.as_str() {
            "--json" => {
                Args::no_value(&opt, &inline)?;
                json = true;
            }
            "--workloads" => {
                workloads =
                    a.number(&opt, inline, "a whole number of workloads from 1 to 100000")?;
                if !(1..=100_000).contains(&workloads) {
                    return Err(usage(format!(
                        "--workloads {workloads} is out of range 1..=100000"
                    )));
                }
            }
            "--seed" => seed = a.number(&opt, inline, "a whole number")?,
            _ => return Err(a.unknown(&opt)),
        }
    }
    Ok(Command::Simulate(SimulateArgs {
        json,
        workloads,
        seed,
    }))
}
