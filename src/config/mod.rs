//! The configuration: one TOML file plus app drop-ins, read in two phases.
//!
//! Phase one ([`raw`]) deserialises each section on its own with unknown keys
//! rejected, so one typo does not hide the next. Phase two (this module) fills
//! in documented defaults, checks ranges and cross-references (every app's
//! camera exists, names are unique, files are present and readable, each
//! app's M-Package is valid and was cut from the configured base) and builds
//! a [`Config`] whose fields need no further checking. Every problem in every
//! file is collected as a [`Diagnostic`] (`FILE:LINE:COL: message`).
//!
//! The reference of every key, with defaults, is in `docs/config.md`.

mod app;
mod camera;
pub mod models;
pub mod output;
mod problem;
pub mod raw;
mod reported;
mod source;

pub use crate::diag::{Diagnostic, Diagnostics, Position, SourceFile};
use crate::frame::PixelFormat;
use crate::package::Package;
use app::{load_dropins, validate_app, AppContext};
use camera::validate_camera;
use raw::{RawApp, RawCamera, RawDevice};
pub use reported::{load_reporting, load_verified_reporting, reported, DiagSink};
use serde::de::{Deserialize, IntoDeserializer};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// X-voting when an app does not set it: an event opens after 2 positive
/// samples in a row and closes after 2 negatives. On the labelled evaluation
/// stream this raised the mean event F1 of eight apps by 0.09-0.12 for every
/// planner against X = 1, which turns every flicker of a passing distractor
/// into an event (docs/eval.md, "X-voting"); the planner predicts with it.
pub(crate) const DEFAULT_VOTING: u32 = 2;
/// `[device] share_margin` when the file does not set it: how much better, in
/// predicted event F1, a more shared head must be than an app's least-shared
/// head before the planner gives the latter up (docs/eval.md, "Sharing
/// margin": the size of the differences between one app's heads that the
/// calibrated model cannot resolve).
pub(crate) const DEFAULT_SHARE_MARGIN: f64 = 0.05;
/// Where the service looks for its configuration unless told otherwise.
pub(crate) const DEFAULT_CONFIG: &str = "/etc/mainstream/config.toml";
/// Default drop-in directory, relative to the config file's directory.
pub const DEFAULT_APPS_DIR: &str = "apps.d";
/// Default state directory when systemd's `$STATE_DIRECTORY` is not set.
const DEFAULT_STATE_DIR: &str = "/var/lib/mainstream";
/// Default base network manifest.
const DEFAULT_BASE: &str = "/usr/share/mainstream/models/mobilenet_v2/manifest.toml";
pub use crate::diag::{read_source, MAX_FILE_BYTES};
/// Most apps one box accepts.
pub const MAX_APPS: usize = 256;
/// Most cameras one box accepts.
pub const MAX_CAMERAS: usize = 64;

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The main config file.
    pub path: PathBuf,
    /// `[device]`.
    pub device: Device,
    /// `[[camera]]` entries in file order.
    pub cameras: Vec<CameraConfig>,
    /// Enabled and disabled apps: inline ones first, then drop-ins by file name.
    pub apps: Vec<App>,
    /// `[output.*]`: MQTT and snapshots (none by default).
    pub output: output::Output,
}

/// `[device]`, with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Compute budget in cores.
    pub budget_cores: f64,
    /// State directory (may not exist yet).
    pub state_dir: PathBuf,
    /// Log level.
    pub log_level: log::LevelFilter,
    /// Drop-in directory.
    pub apps_dir: PathBuf,
    /// Base network manifest.
    pub base: PathBuf,
    /// Where `base =` is written (`None`: the default base), for problems
    /// with the base network's files to point back at.
    pub base_at: Option<Position>,
    /// Inference threads.
    pub threads: usize,
    /// The planner's sharing margin (predicted F1).
    pub share_margin: f64,
}

/// Where a camera's frames come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A V4L2 device node or a stable link to one (`/dev/v4l/by-id/...`).
    Device(PathBuf),
    /// A recorded file or directory (MJPEG stream, Y4M, directory of JPEGs).
    Replay(PathBuf),
}

/// How a replay source is paced (`realtime` in the config is [`Pace::Nominal`]).
pub use crate::camera::Pace;

/// One `[[camera]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraConfig {
    /// Unique name.
    pub name: String,
    /// Device or replay path (absolute).
    pub source: Source,
    /// Requested width; `None` for replay sources, which know their own.
    pub width: Option<u32>,
    /// Requested height; `None` for replay sources.
    pub height: Option<u32>,
    /// Frames per second the stream delivers.
    pub fps: f64,
    /// Requested pixel format (`None`: the source's own for replay, MJPEG for devices).
    pub format: Option<PixelFormat>,
    /// Replay pacing.
    pub pace: Pace,
    /// Replay only: start the file again when it ends.
    pub looping: bool,
}

/// An app's events as the configuration gives them, after defaults from
/// the M-Package are applied (the planner's [`crate::planner::EventParams`]
/// adds the X-voting count).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AppEvents {
    /// Typical event duration in ms.
    pub length_ms: f64,
    /// The M-Package's measured event length quantiles, unless the app sets
    /// `event_length_ms` itself (then none: every event is that long).
    pub lengths: crate::planner::EventLengths,
    /// Fraction of event-length windows containing an event, in (0, 1].
    pub frequency: f64,
    /// Inter-frame correlation, in [0, 1].
    pub correlation: f64,
}

/// One app, inline or from a drop-in.
#[derive(Clone, Debug)]
pub struct App {
    /// Unique name.
    pub name: String,
    /// Index into [`Config::cameras`].
    pub camera: usize,
    /// The loaded, validated M-Package.
    pub package: Package,
    /// Event parameters.
    pub event: AppEvents,
    /// X-voting: consecutive positive samples needed for an event
    /// ([`DEFAULT_VOTING`] unless the app's file sets it).
    pub voting: u32,
    /// Minimum useful event F1 (admission control).
    pub min_f1: f64,
    /// Whether the app runs.
    pub enabled: bool,
    /// The file the app was defined in.
    pub origin: PathBuf,
}

impl Config {
    /// The enabled apps.
    pub fn enabled_apps(&self) -> impl Iterator<Item = &App> {
        self.apps.iter().filter(|a| a.enabled)
    }
}

/// Everything wrong with a configuration, plus warnings that did not stop it.
#[derive(Debug, Default)]
pub struct Report {
    /// Problems that make the config unusable.
    pub errors: Vec<Diagnostic>,
    /// Things an operator should know (a camera not plugged in now, an empty drop-in dir).
    pub warnings: Vec<Diagnostic>,
    /// `[device]`, if the main file's own section is valid: where the state
    /// of a running service is, even while a drop-in is broken (`status`).
    /// Boxed: a `Result` with this report stays small.
    pub device: Option<Box<Device>>,
}

/// Loads and validates the configuration at `path` with its drop-ins.
///
/// Returns the config and its warnings, or every problem found.
pub fn load(path: &Path) -> Result<(Config, Vec<Diagnostic>), Report> {
    let mut errors = Diagnostics::default();
    let mut warnings = Diagnostics::default();
    let mut device = None;
    let cfg = load_inner(path, &mut errors, &mut warnings, &mut device);
    finish(cfg, device, errors, warnings)
}

fn finish(
    cfg: Option<Config>,
    device: Option<Device>,
    errors: Diagnostics,
    warnings: Diagnostics,
) -> Result<(Config, Vec<Diagnostic>), Report> {
    match cfg {
        Some(c) if errors.is_empty() => Ok((c, warnings.into_vec())),
        _ => Err(Report {
            errors: errors.into_vec(),
            warnings: warnings.into_vec(),
            device: device.map(Box::new),
        }),
    }
}

/// [`load`], then phase three: the model files are read and verified as
/// `run` will load them ([`models::verify_models`]). `check` and `run` use
/// this; it reads every head file, so it takes a moment.
pub fn load_verified(path: &Path) -> Result<(Config, Vec<Diagnostic>), Report> {
    let (cfg, warnings) = load(path)?;
    let mut errors = Diagnostics::default();
    let mut more = Diagnostics::default();
    models::verify_models(&cfg, &mut errors, &mut more);
    let mut warnings = warnings;
    warnings.extend(more.into_vec());
    if errors.is_empty() {
        Ok((cfg, warnings))
    } else {
        Err(Report {
            errors: errors.into_vec(),
            warnings,
            device: Some(Box::new(cfg.device)),
        })
    }
}

/// Validates configuration text as if it had been read from `path` (drop-ins
/// and relative paths are resolved from there). For fuzzing and tests.
pub fn load_str(path: &Path, text: &str) -> Result<(Config, Vec<Diagnostic>), Report> {
    let mut errors = Diagnostics::default();
    let mut warnings = Diagnostics::default();
    let src = SourceFile::new(path.to_owned(), text.to_owned());
    let mut device = None;
    let cfg = validate_source(src, &mut errors, &mut warnings, &mut device);
    finish(cfg, device, errors, warnings)
}

fn load_inner(
    path: &Path,
    errors: &mut Diagnostics,
    warnings: &mut Diagnostics,
    device: &mut Option<Device>,
) -> Option<Config> {
    let src = match read_source(path) {
        Ok(s) => s,
        Err(msg) => {
            errors.file(path, msg);
            return None;
        }
    };
    validate_source(src, errors, warnings, device)
}

/// Validates the main file `src` and its drop-ins; `device_out` receives
/// `[device]` if that section alone is valid.
fn validate_source(
    src: SourceFile,
    errors: &mut Diagnostics,
    warnings: &mut Diagnostics,
    device_out: &mut Option<Device>,
) -> Option<Config> {
    let path = src.path.clone();
    let path = path.as_path();
    let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let mut sections = parse_sections(&src, errors)?;
    // Drop-ins are checked even when [device] has problems of its own.
    let apps_dir = sections.device.apps_dir.as_ref().map_or_else(
        || base_dir.join(DEFAULT_APPS_DIR),
        |a| resolve(&base_dir, a.get_ref()),
    );

    let device = validate_device(&src, &base_dir, sections.device, apps_dir.clone(), errors);
    let mut cameras = Vec::new();
    let mut camera_names: HashSet<String> = HashSet::new();
    let declared = std::mem::take(&mut sections.camera_names);
    for rc in sections.cameras {
        if let Some(c) = validate_camera(&src, &base_dir, rc, &mut camera_names, errors, warnings) {
            cameras.push(c);
        }
    }
    if cameras.len() > MAX_CAMERAS {
        errors.at(
            &src,
            0..0,
            format!("at most {MAX_CAMERAS} cameras are supported"),
        );
    }

    if !sections.device_failed {
        device_out.clone_from(&device);
    }
    let base = match &device {
        Some(d) if !sections.device_failed => load_base_identity(d, errors),
        _ => None,
    };
    let ctx = AppContext {
        declared: &declared,
        camera_order: cameras.iter().map(|c| c.name.clone()).collect(),
        base_sha256: base,
        packages: Default::default(),
    };
    let mut app_names: HashSet<String> = HashSet::new();
    let mut apps = Vec::new();
    for ra in sections.apps {
        if let Some(a) = validate_app(&src, &base_dir, ra, None, &ctx, &mut app_names, errors) {
            apps.push(a);
        }
    }
    load_dropins(
        &src,
        &sections.apps_dir_span,
        &apps_dir,
        &ctx,
        &mut app_names,
        &mut apps,
        errors,
        warnings,
    );
    if apps.len() > MAX_APPS {
        errors.at(&src, 0..0, format!("at most {MAX_APPS} apps are supported"));
    }
    let output = output::validate(&src, &base_dir, sections.output, errors, warnings);
    Some(Config {
        path: path.to_owned(),
        device: device?,
        cameras,
        apps,
        output: output?,
    })
}

struct Sections {
    device: RawDevice,
    /// `[device]` was present but could not be read: its defaults are not
    /// the operator's intent, so checks that depend on it are skipped.
    device_failed: bool,
    apps_dir_span: Option<std::ops::Range<usize>>,
    cameras: Vec<Spanned<RawCamera>>,
    /// Names of every `[[camera]]`, including ones that failed to deserialise,
    /// so that apps naming them get no misleading "does not exist".
    camera_names: Vec<String>,
    apps: Vec<Spanned<RawApp>>,
    output: raw::RawOutput,
}

/// Deserialises one value with spans, reporting its problems.
fn de_value<T: for<'de> Deserialize<'de>>(
    src: &SourceFile,
    v: Spanned<DeValue<'_>>,
    errors: &mut Diagnostics,
) -> Option<Spanned<T>> {
    let span = v.span();
    match T::deserialize(v.into_deserializer()) {
        Ok(t) => Some(Spanned::new(span, t)),
        Err(e) => {
            errors.toml(src, &e, span);
            None
        }
    }
}

fn parse_sections(src: &SourceFile, errors: &mut Diagnostics) -> Option<Sections> {
    let (root, parse_errors) = DeTable::parse_recoverable(src.text());
    if !parse_errors.is_empty() {
        for e in &parse_errors {
            errors.toml(src, e, 0..0);
        }
        return None;
    }
    let mut s = Sections {
        device: RawDevice::default(),
        device_failed: false,
        apps_dir_span: None,
        cameras: Vec::new(),
        camera_names: Vec::new(),
        apps: Vec::new(),
        output: raw::RawOutput::default(),
    };
    for (key, value) in root.into_inner() {
        match key.get_ref().as_ref() {
            "device" => match de_value::<RawDevice>(src, value, errors) {
                Some(d) => {
                    s.apps_dir_span = d.get_ref().apps_dir.as_ref().map(|a| a.span());
                    s.device = d.into_inner();
                }
                None => s.device_failed = true,
            },
            "output" => {
                if let Some(o) = de_value::<raw::RawOutput>(src, value, errors) {
                    s.output = o.into_inner();
                }
            }
            k @ ("camera" | "app") => {
                let span = value.span();
                let DeValue::Array(items) = value.into_inner() else {
                    errors.at(
                        src,
                        span,
                        format!("`{k}` must be an array of tables: write [[{k}]]"),
                    );
                    continue;
                };
                for item in items.iter().cloned() {
                    if k == "camera" {
                        if let Some(n) = item
                            .get_ref()
                            .get("name")
                            .and_then(|n| n.get_ref().as_str())
                        {
                            s.camera_names.push(n.to_owned());
                        }
                        if let Some(c) = de_value::<RawCamera>(src, item, errors) {
                            s.cameras.push(c);
                        }
                    } else if let Some(a) = de_value::<RawApp>(src, item, errors) {
                        s.apps.push(a);
                    }
                }
            }
            other => errors.at(
                src,
                key.span(),
                format!("unknown section `{other}`, expected one of `device`, `camera`, `app`, `output`"),
            ),
        }
    }
    Some(s)
}

/// `p` as written in a file of `base_dir`: absolute as it is, relative to the file.
fn resolve(base_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base_dir.join(p)
    }
}

/// Names appear in logs, JSON and file names: keep them to a safe alphabet.
fn check_name(
    src: &SourceFile,
    errors: &mut Diagnostics,
    name: &Spanned<String>,
    what: &str,
) -> bool {
    let n = name.get_ref();
    let ok = is_valid_name(n);
    if !ok {
        errors.at(
            src,
            name.span(),
            format!("{what} name {n:?} must be 1-64 characters of A-Z, a-z, 0-9, '-', '_', '.' and not start with '.'"),
        );
    }
    ok
}

fn in_range(
    src: &SourceFile,
    errors: &mut Diagnostics,
    v: &Spanned<f64>,
    what: &str,
    lo: f64,
    hi: f64,
    lo_inclusive: bool,
) -> Option<f64> {
    let x = *v.get_ref();
    let above_lo = if lo_inclusive { x >= lo } else { x > lo };
    if x.is_finite() && above_lo && x <= hi {
        Some(x)
    } else {
        let lo_word = if lo_inclusive { "at least" } else { "above" };
        errors.at(
            src,
            v.span(),
            format!("{what} must be {lo_word} {lo} and at most {hi}, not {x}"),
        );
        None
    }
}

fn int_in_range(
    src: &SourceFile,
    errors: &mut Diagnostics,
    v: &Spanned<i64>,
    what: &str,
    lo: i64,
    hi: i64,
) -> Option<i64> {
    let x = *v.get_ref();
    if (lo..=hi).contains(&x) {
        Some(x)
    } else {
        errors.at(
            src,
            v.span(),
            format!("{what} must be between {lo} and {hi}, not {x}"),
        );
        None
    }
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn validate_device(
    src: &SourceFile,
    base_dir: &Path,
    d: RawDevice,
    apps_dir: PathBuf,
    errors: &mut Diagnostics,
) -> Option<Device> {
    let before = errors.len();
    let budget_cores = match &d.budget_cores {
        Some(b) => in_range(src, errors, b, "budget_cores", 0.0, 1024.0, false),
        None => Some(default_parallelism() as f64),
    };
    let state_dir = match &d.state_dir {
        Some(s) if s.get_ref().is_empty() => {
            errors.at(src, s.span(), "state_dir must not be empty");
            None
        }
        Some(s) => Some(resolve(base_dir, s.get_ref())),
        None => Some(
            std::env::var_os("STATE_DIRECTORY")
                // systemd may pass several colon-separated directories; we use the first.
                .and_then(|v| {
                    v.to_str()
                        .and_then(|s| s.split(':').next())
                        .map(PathBuf::from)
                })
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        ),
    };
    let log_level = match &d.log_level {
        Some(l) => match l.get_ref().parse::<log::LevelFilter>() {
            Ok(v) => Some(v),
            Err(_) => {
                errors.at(
                    src,
                    l.span(),
                    format!(
                        "log_level {:?} is not one of off, error, warn, info, debug, trace",
                        l.get_ref()
                    ),
                );
                None
            }
        },
        None => Some(log::LevelFilter::Info),
    };
    let base = d.base.as_ref().map_or_else(
        || PathBuf::from(DEFAULT_BASE),
        |b| resolve(base_dir, b.get_ref()),
    );
    let base_at = d.base.as_ref().map(|b| src.position(b.span().start));
    let threads = match &d.threads {
        Some(t) => int_in_range(src, errors, t, "threads", 1, 256).map(|t| t as usize),
        None => Some(default_parallelism()),
    };
    let share_margin = match &d.share_margin {
        Some(m) => in_range(src, errors, m, "share_margin", 0.0, 1.0, true),
        None => Some(DEFAULT_SHARE_MARGIN),
    };
    if errors.len() != before {
        return None;
    }
    Some(Device {
        budget_cores: budget_cores?,
        state_dir: state_dir?,
        log_level: log_level?,
        apps_dir,
        base,
        base_at,
        threads: threads?,
        share_margin: share_margin?,
    })
}

/// Reads the base manifest, for its `sha256` that packages are checked
/// against. Its problems are reported at its own lines and again at the
/// `base =` line that names it. Its model files are read in phase three
/// ([`models::verify_models`]).
fn load_base_identity(device: &Device, errors: &mut Diagnostics) -> Option<String> {
    let path = &device.base;
    let before = errors.len();
    let manifest = match read_source(path) {
        Ok(src) => match crate::model::manifest::BaseManifest::parse(path, src.text()) {
            Ok(m) => Some(m),
            Err(e) => {
                // A TOML problem has a position in the manifest: report it there.
                match std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<toml::de::Error>())
                {
                    Some(t) => errors.toml(&src, t, 0..0),
                    None => errors.file(path, format!("base network manifest: {}", e.chain())),
                }
                None
            }
        },
        Err(msg) => {
            errors.file(path, format!("base network manifest: {msg}"));
            None
        }
    };
    if errors.len() != before {
        base_named_here(device, errors);
    }
    manifest.map(|m| m.sha256)
}

/// Points back at the `base =` line whose base has the problems just reported.
fn base_named_here(device: &Device, errors: &mut Diagnostics) {
    if let Some(at) = &device.base_at {
        errors.at_position(
            at,
            format!(
                "the base network named here ({}) is not usable: see the problems above",
                device.base.display()
            ),
        );
    }
}

fn is_valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests;
