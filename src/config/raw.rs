//! Phase one: the configuration exactly as written, with spans.
//!
//! Every struct rejects unknown keys, so a typo (`budget_core = 2`) is an
//! error with a position instead of a silently ignored setting. Every field is
//! optional here; defaults and range checks live in phase two
//! ([`super::Config`]), which needs the spans kept by [`Spanned`] to point at
//! the offending value.

use serde::Deserialize;
use toml::Spanned;

/// `[output]` (its raw structs live beside its validation).
pub(crate) use super::output::RawOutput;

/// `[device]`: the box as a whole.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDevice {
    /// Compute budget in CPU cores (core-seconds of analysis per second).
    pub budget_cores: Option<Spanned<f64>>,
    /// Where state (plan, cost profile, event log) is kept.
    pub state_dir: Option<Spanned<String>>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: Option<Spanned<String>>,
    /// Directory of app drop-in files (`*.toml`, one app each).
    pub apps_dir: Option<Spanned<String>>,
    /// The base network's manifest (`manifest.toml`).
    pub base: Option<Spanned<String>>,
    /// Threads for inference (default: all cores).
    pub threads: Option<Spanned<i64>>,
    /// Predicted F1 a more shared head must gain before it replaces an app's
    /// least-shared head.
    pub share_margin: Option<Spanned<f64>>,
}

/// `[[camera]]`: one video source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCamera {
    pub name: Option<Spanned<String>>,
    /// `/dev/videoN`, `/dev/v4l/by-id/...`, or a replay file/directory.
    pub source: Option<Spanned<String>>,
    pub width: Option<Spanned<i64>>,
    pub height: Option<Spanned<i64>>,
    pub fps: Option<Spanned<f64>>,
    pub pixel_format: Option<Spanned<String>>,
    /// Replay only: `realtime` (default) or `fast`.
    pub pace: Option<Spanned<String>>,
    /// Replay only: start again at the end (soak tests, demos).
    #[serde(rename = "loop")]
    pub looping: Option<Spanned<bool>>,
}

/// `[[app]]` or one drop-in file: one analysis app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    /// Required inline; a drop-in defaults to its file name without `.toml`.
    pub name: Option<Spanned<String>>,
    pub camera: Option<Spanned<String>>,
    /// Directory of the app's M-Package (holds `package.toml`).
    pub package: Option<Spanned<String>>,
    /// Typical event duration in milliseconds (default from the package).
    pub event_length_ms: Option<Spanned<f64>>,
    /// Fraction of event-length windows that contain an event (default from the package).
    pub event_frequency: Option<Spanned<f64>>,
    /// Inter-frame correlation of detections, 0..=1 (default from the package).
    pub correlation: Option<Spanned<f64>>,
    /// Consecutive positive samples needed to report an event (default 1).
    pub voting: Option<Spanned<i64>>,
    /// Lowest event F1 this app is useful at; admission control refuses to
    /// run it below that (default 0: always admit).
    pub min_f1: Option<Spanned<f64>>,
    /// `false` keeps the file but does not run the app (default true).
    pub enabled: Option<Spanned<bool>>,
}
