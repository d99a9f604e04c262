//! One function per subcommand. `main` parses arguments and dispatches here;
//! these functions do the work and return errors whose kind decides the exit code.

use crate::cli::Command;
use crate::config::{self, DiagSink, Source};
use crate::error::{Error, ErrorKind, Result};
use std::io::Write;
use std::path::Path;

/// Runs a parsed command, writing its normal output to `out`.
pub fn run(cmd: Command, out: &mut dyn Write) -> Result<()> {
    match cmd {
        Command::Help(topic) => {
            let text = crate::cli::help_for(topic.as_deref()).unwrap_or(crate::cli::HELP);
            out.write_all(text.as_bytes())?;
            Ok(())
        }
        Command::Version => {
            writeln!(out, "mainstream {}", env!("CARGO_PKG_VERSION"))?;
            Ok(())
        }
        Command::Check { config } => check(&config, out),
        Command::Run(args) => {
            crate::daemon::run(&run_options(args), out)?;
            Ok(())
        }
        Command::Demo { run, json } => demo(&run_options(run), json, out),
        Command::Status { config, json } => status(&config, json, out),
        Command::Bench(args) => crate::bench::run(&args, out),
        Command::Replay(args) => crate::replay::run(&args, out),
        Command::Calibrate(args) => crate::calibrate::run(&args, out),
        Command::Cameras { json } => {
            let devices = crate::camera::list_devices()?;
            crate::camera::render_devices(&devices, json, out)
        }
        Command::CameraTest { spec, frames } => {
            let opts = crate::camera::ProbeOptions {
                frames,
                ..crate::camera::ProbeOptions::default()
            };
            let report = crate::camera::probe(&spec, &opts);
            crate::camera::render_probe(&report, &opts, out)?;
            if report.passed(&opts) {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::Io,
                    format!("camera test of {} failed", spec.path.display()),
                ))
            }
        }
        Command::Simulate(args) => simulate(&args, out),
        Command::Plan {
            config,
            budget,
            json,
        } => plan(&config, budget, json, out),
        Command::Profile { config, runs } => {
            let cfg = config::load_reporting(&config, DiagSink::Stderr)?;
            let p = crate::profile::measure_and_save(
                &cfg.device.base,
                &cfg.device.state_dir,
                runs,
                &cfg.cameras,
            )?;
            writeln!(
                out,
                "cost profile of {} on {} ({} runs per segment, median):",
                cfg.device.base.display(),
                p.cpu,
                p.runs
            )?;
            let mut total = 0.0;
            for (k, ms) in p.segment_ms.iter().enumerate() {
                total += ms;
                writeln!(
                    out,
                    "  segment {k:>2} -> {:>2}: {ms:>8.3} ms   (cumulative {total:>8.3} ms)",
                    k + 1
                )?;
            }
            if !p.frames.is_empty() {
                writeln!(out, "outside the network, per frame (median):")?;
            }
            for f in &p.frames {
                writeln!(
                    out,
                    "  {}: preprocessing {:.3} ms, capture {:.3} ms",
                    f.mode, f.preprocess_ms, f.capture_ms
                )?;
            }
            writeln!(
                out,
                "saved to {}",
                crate::profile::path_in(&cfg.device.state_dir).display()
            )?;
            Ok(())
        }
    }
}

/// `mainstream status`: the state directory comes from the main file's
/// `[device]`; problems elsewhere in the configuration (a broken drop-in,
/// which the running service refuses while it keeps its plan) are shown
/// beside the service's status, not instead of it.
pub fn status(path: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    let (state_dir, problems) = match config::load(path) {
        Ok((cfg, _)) => (cfg.device.state_dir, Vec::new()),
        Err(report) => match report.device {
            Some(d) => (d.state_dir, report.errors),
            // Without a valid [device] there is no state directory to read.
            None => return config::reported(path, DiagSink::Stderr, Err(report)).map(drop),
        },
    };
    crate::daemon::summary::status(&state_dir, &problems, json, out)
}

/// `mainstream check`.
pub fn check(path: &Path, out: &mut dyn Write) -> Result<()> {
    let cfg = config::load_verified_reporting(path, DiagSink::Stderr)?;
    writeln!(out, "{}: configuration is valid", cfg.path.display())?;
    let d = &cfg.device;
    writeln!(
        out,
        "device: budget {} cores, {} inference threads, state in {}, log level {}",
        d.budget_cores,
        d.threads,
        d.state_dir.display(),
        d.log_level
    )?;
    writeln!(out, "base network: {}", d.base.display())?;
    writeln!(out, "cameras: {}", cfg.cameras.len())?;
    for c in &cfg.cameras {
        let (kind, p) = match &c.source {
            Source::Device(p) => ("v4l2", p),
            Source::Replay(p) => ("replay", p),
        };
        let size = match (c.width, c.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "size from file".into(),
        };
        let fmt = c
            .format
            .map_or_else(|| "format from file".into(), |f| f.to_string());
        writeln!(
            out,
            "  {:<16} {kind} {}  {size} {fmt} {} fps",
            c.name,
            p.display(),
            c.fps
        )?;
    }
    let enabled = cfg.enabled_apps().count();
    writeln!(out, "apps: {} ({} enabled)", cfg.apps.len(), enabled)?;
    for a in &cfg.apps {
        writeln!(
            out,
            "  {:<16} camera {}, package {} ({} branch points, {}), event {} ms{} / freq {} / corr {}, voting {}{}",
            a.name,
            cfg.cameras[a.camera].name,
            a.package.name,
            a.package.heads.len(),
            match &a.package.calibration {
                Some(c) => format!("calibrated on {} ({} frames)", c.clip, c.frames),
                None if a.package.event.assumed => "WARNING: not calibrated, event parameters assumed (made from photos alone; calibrate on a labelled clip)".into(),
                None => "trained values, not calibrated".into(),
            },
            a.event.length_ms,
            match a.event.lengths.as_slice() {
                [] => String::new(),
                l => format!(" ({:.0}-{:.0} ms windows)", l[0], l[l.len() - 1]),
            },
            a.event.frequency,
            a.event.correlation,
            a.voting,
            if a.enabled { "" } else { "  [disabled]" }
        )?;
    }
    Ok(())
}

/// The service's options from the command line's.
fn run_options(a: crate::cli::RunArgs) -> crate::daemon::RunOptions {
    crate::daemon::RunOptions {
        config: a.config,
        strategy: a.strategy,
        budget: a.budget,
        status_line: a.status_line,
        watch: a.watch,
        duration: a.duration,
    }
}

/// `mainstream demo`: the service on the demo config until the clip ends,
/// then each app's event recall, precision and F1 against the ground truth.
pub fn demo(run: &crate::daemon::RunOptions, json: bool, out: &mut dyn Write) -> Result<()> {
    use crate::daemon::summary;
    if !run.config.exists() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "{} does not exist: run the demo from the repository root (tools/demo.sh does), or pass --config",
                run.config.display()
            ),
        ));
    }
    // Events stream to stdout as they happen; the summary follows.
    let s = crate::daemon::run(run, out)?;
    let r = summary::score_demo(&s);
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&r).map_err(|e| crate::err!(Internal, "demo summary: {e}"))?
        )?;
    } else {
        out.write_all(summary::render_demo(&r).as_bytes())?;
    }
    Ok(())
}

/// `mainstream simulate`: the paper's three tables from its published curves.
pub fn simulate(args: &crate::cli::SimulateArgs, out: &mut dyn Write) -> Result<()> {
    use crate::planner::simulate;
    let mut rows = Vec::new();
    for mut opts in simulate::suite() {
        opts.workloads = args.workloads;
        opts.seed = args.seed;
        log::info!(
            "simulate: {} ({} workloads per point)",
            opts.name,
            opts.workloads
        );
        rows.extend(simulate::run(&opts)?);
    }
    let text = if args.json {
        simulate::render_json(&rows)
    } else {
        simulate::render_text(&rows)
    };
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// `mainstream plan`.
pub fn plan(config: &Path, budget: Option<f64>, json: bool, out: &mut dyn Write) -> Result<()> {
    use crate::planner::{report, Strategy};
    let cfg = config::load_reporting(config, DiagSink::Stderr)?;
    let profile = crate::profile::for_config(&cfg)?;
    let costs = profile.camera_costs(&cfg);
    let problem = cfg.planning_problem(
        &profile.segment_ms,
        &crate::profile::preprocess_ms(&costs),
        budget.unwrap_or(cfg.device.budget_cores),
    );
    let cmp = report::compare(&problem, Strategy::Auto)?;
    let text = if json {
        report::render_json(&problem, &cmp)
    } else {
        report::render_text(&problem, &cmp)
    };
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}
