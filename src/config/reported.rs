//! Loading the configuration for a command or the service, its problems
//! reported to the person at the terminal or to the journal.

use super::{Config, Diagnostic};
use crate::error::{Error, ErrorKind, Result};
use std::path::Path;

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

/// Loads the configuration ([`super::load`]), reporting every problem and
/// warning to `sink`. On problems, returns an [`ErrorKind::InvalidConfig`]
/// error that counts them.
pub fn load_reporting(path: &Path, sink: DiagSink) -> Result<Config> {
    reported(path, sink, super::load(path))
}

/// [`load_reporting`] plus the model files read and verified as `run` loads
/// them ([`super::load_verified`]): what `check`, `run`, `replay` and
/// `calibrate` use.
pub fn load_verified_reporting(path: &Path, sink: DiagSink) -> Result<Config> {
    reported(path, sink, super::load_verified(path))
}

/// Reports a load's problems and warnings to `sink`; its configuration, or
/// an [`ErrorKind::InvalidConfig`] error that counts the problems.
pub fn reported(
    path: &Path,
    sink: DiagSink,
    loaded: std::result::Result<(Config, Vec<Diagnostic>), super::Report>,
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
                    crate::diag::escape_controls(&path.display().to_string())
                ),
            ))
        }
    }
}
