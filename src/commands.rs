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
        Command::Bench(args) => crate::bench::run(&args, out),
        Command::Cameras { json } => {
            let devices = crate::camera::list_devices()?;
            crate::camera::render_devices(&devices, json, out)
        }
        Command::Plan { .. } | Command::Simulate(_) => Err(Error::new(
            ErrorKind::Unsupported,
            "this command is not built yet",
        )),
    }
}

fn print_diags(kind: &str, diags: &[Diagnostic]) {
    for d in diags {
        if d.line == 0 {
            eprintln!("{}: {kind}: {}", d.path.display(), d.msg);
        } else {
            eprintln!(
                "{}:{}:{}: {kind}: {}",
                d.path.display(),
                d.line,
                d.col,
                d.msg
            );
        }
    }
}

/// Loads the configuration, printing every problem and warning to stderr.
/// On problems, returns an [`ErrorKind::InvalidConfig`] error that counts them.
pub fn load_config(path: &Path) -> Result<Config> {
    match config::load(path) {
        Ok((cfg, warnings)) => {
            print_diags("warning", &warnings);
            Ok(cfg)
        }
        Err(report) => {
            print_diags("error", &report.errors);
            print_diags("warning", &report.warnings);
            let n = report.errors.len();
            Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "{n} problem{} in the configuration {}",
                    if n == 1 { "" } else { "s" },
                    path.display()
                ),
            ))
        }
    }
}

/// `mainstream check`.
pub fn check(path: &Path, out: &mut dyn Write) -> Result<()> {
    let cfg = load_config(path)?;
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
            "  {:<16} camera {}, package {} ({} branch points), event {} ms / freq {} / corr {}, voting {}{}",
            a.name,
            cfg.cameras[a.camera].name,
            a.package.name,
            a.package.heads.len(),
            a.event.length_ms,
            a.event.frequency,
            a.event.correlation,
            a.voting,
            if a.enabled { "" } else { "  [disabled]" }
        )?;
    }
    Ok(())
}
