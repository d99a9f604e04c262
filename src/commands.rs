//! One function per subcommand. `main` parses arguments and dispatches here;
//! these functions do the work and return errors whose kind decides the exit code.

use crate::cli::Command;
use crate::config::{self, Config, Diagnostic, Source};
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
        Command::Run(opts) => {
            crate::daemon::run(&opts, out)?;
            Ok(())
        }
        Command::Demo { run, json } => demo(&run, json, out),
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
            let cfg = load_config(&config)?;
            let p = measure_profile(&cfg, runs)?;
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
            writeln!(
                out,
                "saved to {}",
                crate::profile::path_in(&cfg.device.state_dir).display()
            )?;
            Ok(())
        }
    }
}

/// Where configuration problems are reported: a command prints them for the
/// person at the terminal, the service logs them for the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagSink {
    /// Standard error.
    Stderr,
    /// The log (errors at error level, warnings at warn level).
    Log,
}

fn report_diags(sink: DiagSink, kind: &str, diags: &[Diagnostic]) {
    for d in diags {
        let text = d.with_kind(kind).to_string();
        match sink {
            DiagSink::Stderr => eprintln!("{text}"),
            DiagSink::Log if kind == "error" => log::error!("{text}"),
            DiagSink::Log => log::warn!("{text}"),
        }
    }
}

/// Loads the configuration, printing every problem and warning to stderr.
/// On problems, returns an [`ErrorKind::InvalidConfig`] error that counts them.
pub fn load_config(path: &Path) -> Result<Config> {
    load_config_to(path, DiagSink::Stderr)
}

/// [`load_config`], reporting problems to `sink`.
pub fn load_config_to(path: &Path, sink: DiagSink) -> Result<Config> {
    report_config(path, sink, config::load(path))
}

/// [`load_config_to`] plus the model files read and verified as `run` loads
/// them ([`config::load_verified`]): what `check` and `run` use.
pub fn load_verified_config_to(path: &Path, sink: DiagSink) -> Result<Config> {
    report_config(path, sink, config::load_verified(path))
}

fn report_config(
    path: &Path,
    sink: DiagSink,
    loaded: std::result::Result<(Config, Vec<Diagnostic>), config::Report>,
) -> Result<Config> {
    match loaded {
        Ok((cfg, warnings)) => {
            report_diags(sink, "warning", &warnings);
            Ok(cfg)
        }
        Err(report) => {
            report_diags(sink, "error", &report.errors);
            report_diags(sink, "warning", &report.warnings);
            let n = report.errors.len();
            Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "{n} problem{} in the configuration {}",
                    if n == 1 { "" } else { "s" },
                    config::diag::escape_controls(&path.display().to_string())
                ),
            ))
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
            None => return report_config(path, DiagSink::Stderr, Err(report)).map(drop),
        },
    };
    crate::daemon::summary::status(&state_dir, &problems, json, out)
}

/// `mainstream check`.
pub fn check(path: &Path, out: &mut dyn Write) -> Result<()> {
    let cfg = load_verified_config_to(path, DiagSink::Stderr)?;
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
            "  {:<16} camera {}, package {} ({} branch points, {}), event {} ms / freq {} / corr {}, voting {}{}",
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
            a.event.frequency,
            a.event.correlation,
            a.voting,
            if a.enabled { "" } else { "  [disabled]" }
        )?;
    }
    Ok(())
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

/// Measures the device cost profile for the configured base and saves it in
/// the state directory (a failure to save is a warning: the plan still works).
pub(crate) fn measure_profile(cfg: &Config, runs: u32) -> Result<crate::profile::Profile> {
    let manifest = crate::model::manifest::BaseManifest::load(&cfg.device.base)?;
    let base = crate::model::net::Base::load(manifest)?;
    let n = base.manifest.segments();
    log::info!(
        "measuring the cost of the {n} segments of {} on this CPU",
        base.manifest.name
    );
    let p = crate::profile::measure(&base, runs, |done, total| {
        log::info!("profile: segment {done}/{total}");
    })?;
    if let Err(e) = crate::profile::save(&cfg.device.state_dir, &p) {
        log::warn!("could not save the cost profile: {}", e.chain());
    }
    Ok(p)
}

/// Builds the planning problem for the enabled apps of `cfg`.
pub fn problem_from_config(
    cfg: &Config,
    segment_ms: &[f64],
    budget_cores: f64,
) -> crate::planner::Problem {
    use crate::planner::{AppSpec, CurvePoint, EventParams, FpsGrid, Problem, StreamSpec, Units};
    Problem {
        segment_costs: segment_ms.to_vec(),
        streams: cfg
            .cameras
            .iter()
            .map(|c| StreamSpec {
                name: c.name.clone(),
                fps: c.fps,
            })
            .collect(),
        apps: cfg
            .enabled_apps()
            .map(|a| AppSpec {
                name: a.name.clone(),
                stream: a.camera,
                curve: a
                    .package
                    .heads
                    .iter()
                    .map(|h| CurvePoint {
                        branch: h.branch,
                        accuracy: h.accuracy,
                        fpr: h.fpr,
                        gain_sd: h.gain_sd,
                    })
                    .collect(),
                event: EventParams {
                    length_ms: a.event.length_ms,
                    frequency: a.event.frequency,
                    correlation: a.event.correlation,
                    voting: a.voting,
                },
                min_f1: a.min_f1,
            })
            .collect(),
        // Costs are ms per frame, so the budget is core-ms per second.
        budget: budget_cores * 1000.0,
        units: Units::Physical,
        fps_grid: FpsGrid::Fine,
        share_margin: cfg.device.share_margin,
    }
}

/// `mainstream plan`.
pub fn plan(config: &Path, budget: Option<f64>, json: bool, out: &mut dyn Write) -> Result<()> {
    use crate::planner::{report, Strategy};
    let cfg = load_config(config)?;
    let sha = crate::model::manifest::BaseManifest::load(&cfg.device.base)?.sha256;
    let profile = match crate::profile::load(&cfg.device.state_dir, &sha)? {
        Some(p) => p,
        None => {
            log::info!(
                "no cost profile for this base and CPU in {}; measuring it now (`mainstream profile` does this ahead of time)",
                cfg.device.state_dir.display()
            );
            measure_profile(&cfg, 5)?
        }
    };
    let problem = problem_from_config(
        &cfg,
        &profile.segment_ms,
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
