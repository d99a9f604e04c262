//! M-Package metadata: one app's model set, as written by the M-Trainer.
//!
//! An M-Package is a directory holding `package.toml` and one head ONNX file
//! per kept branch point. The head at branch point *k* takes the base
//! network's tensor at *k* and returns the app's class scores. The package
//! names the base it was cut from by the base ONNX file's SHA-256; a package
//! cut from another base is refused. The format is documented in
//! `models/README.md`.
//!
//! A package directory may also hold `calibration.toml`, written by
//! `mainstream calibrate`: each head's per-frame detection rate inside events
//! and false-positive rate elsewhere, and the event parameters, measured by
//! the real pipeline on a labelled clip of the footage the app will watch.
//! Those replace the trained values (measured on the trainer's test images)
//! as the planner's inputs; the trained values stay in `package.toml`.
//! A calibration measured with another head file than the package's is
//! refused (run `calibrate` again or delete the file).

use crate::diag::{Diagnostics, Position, SourceFile};
use crate::planner::{EventLengths, MAX_EVENT_LENGTHS};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The only `format` this build reads.
pub(crate) const FORMAT_VERSION: i64 = 1;
/// Name of the metadata file inside a package directory.
pub const META_FILE: &str = "package.toml";
/// Name of the optional calibration file inside a package directory.
pub(crate) const CALIBRATION_FILE: &str = "calibration.toml";
/// The only calibration `format` this build reads and writes.
pub(crate) const CALIBRATION_FORMAT: i64 = 1;
/// `model = "base"`: the head is the base network's own remainder from the
/// branch point on (an unmodified ImageNet classifier), cut at run time.
const BASE_REMAINDER: &str = "base";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    format: Spanned<i64>,
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    base_sha256: Spanned<String>,
    #[serde(default)]
    classes: Option<Spanned<Vec<String>>>,
    positive: Spanned<Vec<String>>,
    event: Option<RawEvent>,
    #[serde(default)]
    head: Vec<Spanned<RawHead>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    length_ms: Option<Spanned<f64>>,
    #[serde(default)]
    lengths_ms: Option<Spanned<Vec<f64>>>,
    frequency: Option<Spanned<f64>>,
    correlation: Option<Spanned<f64>>,
    #[serde(default)]
    assumed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    branch: Spanned<i64>,
    tensor: Spanned<String>,
    model: Spanned<String>,
    #[serde(default)]
    sha256: Option<Spanned<String>>,
    accuracy: Spanned<f64>,
    fpr: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalibration {
    format: Spanned<i64>,
    clip: String,
    // Provenance for the reader; loading does not need it.
    #[serde(default)]
    #[allow(dead_code)]
    clip_sha256: Option<String>,
    frames: u64,
    #[serde(default)]
    #[allow(dead_code)]
    tolerance: Option<u64>,
    event: Option<RawEvent>,
    #[serde(default)]
    head: Vec<Spanned<RawCalibratedHead>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalibratedHead {
    branch: Spanned<i64>,
    sha256: Spanned<String>,
    accuracy: Spanned<f64>,
    fpr: Spanned<f64>,
    #[serde(default)]
    gain_sd: Option<Spanned<f64>>,
    #[serde(default)]
    accuracy_sd: Option<Spanned<f64>>,
    #[serde(default)]
    fpr_sd: Option<Spanned<f64>>,
    // The counts behind the rates, for the reader.
    #[serde(default)]
    #[allow(dead_code)]
    event_frames: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    negative_frames: Option<u64>,
}

/// Where a package's planner inputs were measured, if `calibration.toml`
/// replaced the trained ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// The labelled clip's file name.
    pub clip: String,
    /// Its frames.
    pub frames: u64,
    /// The trained (`package.toml`) accuracy and false-positive rate of
    /// every calibrated head, by branch point.
    pub trained: Vec<(usize, f64, f64)>,
    /// The trained event defaults.
    pub trained_event: EventDefaults,
}

/// Default event parameters an app inherits unless its config overrides them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EventDefaults {
    /// Typical event duration, ms.
    pub length_ms: Option<f64>,
    /// Quantiles of the windows in which a detection finds an event
    /// (`calibration.toml`; empty when not measured).
    pub lengths: EventLengths,
    /// Fraction of windows that hold an event.
    pub frequency: Option<f64>,
    /// Inter-frame correlation of detections.
    pub correlation: Option<f64>,
    /// `assumed = true`: the trainer's stated defaults, not measured on a
    /// labelled clip (a package made from photos alone).
    pub assumed: bool,
}

/// Where a head's weights come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadModel {
    /// A fine-tuned ONNX file in the package directory, with its SHA-256 if declared.
    File {
        /// Absolute path.
        path: PathBuf,
        /// Expected lower-case hex SHA-256.
        sha256: Option<String>,
    },
    /// The base network's own remainder.
    BaseRemainder,
}

/// One kept branch point of the package.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    /// Branch-point index in the base manifest (number of shared segments).
    pub branch: usize,
    /// The base's tensor name at that branch point (checked against the manifest).
    pub tensor: String,
    /// The head's model.
    pub model: HeadModel,
    /// Per-frame detection probability inside an event (the model's `p`):
    /// the top-1 accuracy on the trainer's test split, or, calibrated, the
    /// measured rate of positive frames inside labelled events.
    pub accuracy: f64,
    /// Per-frame false-positive rate (the model's `q`): on the test split's
    /// negatives, or, calibrated, on the clip's frames away from any event.
    pub fpr: f64,
    /// Calibrated only: the bootstrap standard deviation of this head's
    /// predicted event-F1 gain over the package's least-shared head (`0`
    /// when not measured); see [`crate::planner::CurvePoint::gain_sd`].
    pub gain_sd: f64,
    /// Calibrated only: the bootstrap standard deviations of `accuracy` and
    /// `fpr` over the clip's object instances (`0` when not measured).
    pub rate_sd: (f64, f64),
    /// Where its `model =` is written in `package.toml`, for problems with
    /// the model file to point at.
    pub at: Position,
}

/// The identity a calibration records for a head's weights.
pub fn head_identity(model: &HeadModel) -> &str {
    match model {
        HeadModel::File {
            sha256: Some(s), ..
        } => s,
        HeadModel::File { sha256: None, .. } => "unknown",
        HeadModel::BaseRemainder => BASE_REMAINDER,
    }
}

/// A validated M-Package.
#[derive(Clone, Debug, PartialEq)]
pub struct Package {
    /// The package directory.
    pub dir: PathBuf,
    /// The package's own name.
    pub name: String,
    /// Free text.
    pub(crate) description: String,
    /// SHA-256 of the base ONNX the heads were cut from.
    pub base_sha256: String,
    /// Class labels in output order; `None` means the base's own classes.
    pub classes: Option<Vec<String>>,
    /// Classes whose top-1 detection counts as the app's event.
    pub positive: Vec<String>,
    /// Event defaults.
    pub event: EventDefaults,
    /// Kept branch points, sorted by `branch`.
    pub heads: Vec<Head>,
    /// Set when `calibration.toml` replaced the trained accuracy, FPR and
    /// event defaults.
    pub calibration: Option<Calibration>,
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Reads and validates `dir/package.toml`, pushing every problem into `diags`.
/// Returns `None` if the package is unusable.
pub fn load(dir: &Path, diags: &mut Diagnostics) -> Option<Package> {
    let path = dir.join(META_FILE);
    // Bounded read, like the config file itself.
    let src = match crate::diag::read_source(&path) {
        Ok(s) => s,
        Err(msg) => {
            diags.file(&path, format!("cannot read M-Package metadata: {msg}"));
            return None;
        }
    };
    let mut pkg = parse(&src, dir, diags)?;
    let cal_path = dir.join(CALIBRATION_FILE);
    if cal_path.exists() {
        let cal = match crate::diag::read_source(&cal_path) {
            Ok(s) => s,
            Err(msg) => {
                diags.file(&cal_path, format!("cannot read the calibration: {msg}"));
                return None;
            }
        };
        apply_calibration(&mut pkg, &cal, diags)?;
    }
    Some(pkg)
}

/// Replaces the trained accuracy, FPR and event defaults of `pkg` by those of
/// a calibration file already read into `src`.
pub(crate) fn apply_calibration(
    pkg: &mut Package,
    src: &SourceFile,
    diags: &mut Diagnostics,
) -> Option<()> {
    let before = diags.len();
    let raw: RawCalibration = from_toml(src, diags)?;
    check_format(src, diags, &raw.format, "calibration", CALIBRATION_FORMAT);
    let mut event = pkg.event;
    if let Some(ev) = &raw.event {
        event.assumed = false;
        // Measured lengths replace the trained ones, or none are left.
        event.lengths = checked_lengths(src, diags, &ev.lengths_ms);
        let mut set = |v: &Option<Spanned<f64>>, what, lo, hi, slot: &mut Option<f64>| {
            if let Some(x) = checked(src, diags, v, what, lo, hi) {
                *slot = Some(x);
            }
        };
        set(
            &ev.length_ms,
            "event.length_ms",
            1.0,
            3.6e6,
            &mut event.length_ms,
        );
        set(
            &ev.frequency,
            "event.frequency",
            1e-9,
            1.0,
            &mut event.frequency,
        );
        set(
            &ev.correlation,
            "event.correlation",
            0.0,
            1.0,
            &mut event.correlation,
        );
    }
    let mut heads = pkg.heads.clone();
    let mut trained = Vec::new();
    for h in &raw.head {
        let hr = h.get_ref();
        let branch = *hr.branch.get_ref();
        let Some(head) = heads.iter_mut().find(|x| x.branch as i64 == branch) else {
            diags.at(
                src,
                hr.branch.span(),
                format!(
                    "the package has no head at branch {branch}; run `mainstream calibrate` again or delete this file"
                ),
            );
            continue;
        };
        let want = head_identity(&head.model);
        if !hr.sha256.get_ref().eq_ignore_ascii_case(want) {
            diags.at(
                src,
                hr.sha256.span(),
                format!(
                    "measured with another head file than the package's (package: {want}); run `mainstream calibrate` again or delete this file"
                ),
            );
            continue;
        }
        let accuracy = checked(src, diags, &Some(hr.accuracy.clone()), "accuracy", 0.0, 1.0);
        let fpr = checked(src, diags, &Some(hr.fpr.clone()), "fpr", 0.0, 1.0);
        // An absent spread is 0: not measured.
        let sd_of = |v: &Option<Spanned<f64>>, what, diags: &mut Diagnostics| match v {
            Some(_) => checked(src, diags, v, what, 0.0, 1.0),
            None => Some(0.0),
        };
        let gain_sd = sd_of(&hr.gain_sd, "gain_sd", diags);
        let accuracy_sd = sd_of(&hr.accuracy_sd, "accuracy_sd", diags);
        let fpr_sd = sd_of(&hr.fpr_sd, "fpr_sd", diags);
        if let (Some(a), Some(f), Some(sd), Some(asd), Some(fsd)) =
            (accuracy, fpr, gain_sd, accuracy_sd, fpr_sd)
        {
            trained.push((head.branch, head.accuracy, head.fpr));
            head.accuracy = a;
            head.fpr = f;
            head.gain_sd = sd;
            head.rate_sd = (asd, fsd);
        }
    }
    // Calibrated and trained rates are not comparable: all heads or none.
    for h in &heads {
        if !trained.iter().any(|t| t.0 == h.branch) && diags.len() == before {
            diags.at(
                src,
                0..0,
                format!(
                    "the package's head at branch {} is not calibrated here; run `mainstream calibrate` again or delete this file",
                    h.branch
                ),
            );
        }
    }
    if diags.len() != before {
        return None;
    }
    pkg.calibration = Some(Calibration {
        clip: raw.clip,
        frames: raw.frames,
        trained,
        trained_event: pkg.event,
    });
    pkg.event = event;
    pkg.heads = heads;
    Some(())
}

/// Validates package metadata already read into `src`; `dir` resolves file names.
pub fn parse(src: &SourceFile, dir: &Path, diags: &mut Diagnostics) -> Option<Package> {
    let before = diags.len();
    let raw: RawPackage = from_toml(src, diags)?;
    check_format(src, diags, &raw.format, "M-Package", FORMAT_VERSION);
    let base_sha256 = raw.base_sha256.get_ref().to_ascii_lowercase();
    if !is_sha256_hex(&base_sha256) {
        diags.at(
            src,
            raw.base_sha256.span(),
            "base_sha256 must be 64 hexadecimal digits",
        );
    }
    if let Some(classes) = &raw.classes {
        if classes.get_ref().len() < 2 {
            diags.at(src, classes.span(), "classes must list at least 2 labels");
        }
    }
    if raw.positive.get_ref().is_empty() {
        diags.at(
            src,
            raw.positive.span(),
            "positive must name at least one class",
        );
    }
    if let Some(classes) = &raw.classes {
        for p in raw.positive.get_ref() {
            if !classes.get_ref().contains(p) {
                diags.at(
                    src,
                    raw.positive.span(),
                    format!("positive class {p:?} is not in classes"),
                );
            }
        }
    }
    let mut event = EventDefaults::default();
    if let Some(ev) = &raw.event {
        event.length_ms = checked(src, diags, &ev.length_ms, "event.length_ms", 1.0, 3.6e6);
        event.lengths = checked_lengths(src, diags, &ev.lengths_ms);
        event.frequency = checked(src, diags, &ev.frequency, "event.frequency", 0.0, 1.0);
        event.correlation = checked(src, diags, &ev.correlation, "event.correlation", 0.0, 1.0);
        event.assumed = ev.assumed;
        if event.frequency == Some(0.0) {
            if let Some(f) = &ev.frequency {
                diags.at(src, f.span(), "event.frequency must be above 0");
            }
        }
    }
    if raw.head.is_empty() {
        diags.at(
            src,
            0..0,
            "the package has no [[head]]: at least one branch point is needed",
        );
    }
    let mut heads = Vec::with_capacity(raw.head.len());
    for h in &raw.head {
        let hr = h.get_ref();
        let branch = *hr.branch.get_ref();
        if !(0..=10_000).contains(&branch) {
            diags.at(
                src,
                hr.branch.span(),
                "branch must be a branch-point index >= 0",
            );
            continue;
        }
        if heads.iter().any(|x: &Head| x.branch == branch as usize) {
            diags.at(
                src,
                hr.branch.span(),
                format!("branch {branch} has two heads"),
            );
        }
        let model = if hr.model.get_ref() == BASE_REMAINDER {
            HeadModel::BaseRemainder
        } else {
            let path = dir.join(hr.model.get_ref());
            // Opened, not read: whether it hashes and parses is checked
            // with the base (config::verify_models); here only that it is a
            // file that can be read.
            let problem = match crate::files::open_regular(&path) {
                Ok((_, m)) if m.len() > crate::files::MAX_MODEL_BYTES => {
                    Some(crate::files::FileError::TooLarge {
                        size: m.len(),
                        limit: crate::files::MAX_MODEL_BYTES,
                    })
                }
                Ok(_) => None,
                Err(e) => Some(e),
            };
            if let Some(e) = problem {
                diags.at(
                    src,
                    hr.model.span(),
                    format!("cannot read head model {}: {e}", path.display()),
                );
            }
            let sha256 = hr.sha256.as_ref().map(|s| s.get_ref().to_ascii_lowercase());
            if let (Some(s), Some(sp)) = (&sha256, &hr.sha256) {
                if !is_sha256_hex(s) {
                    diags.at(src, sp.span(), "sha256 must be 64 hexadecimal digits");
                }
            }
            HeadModel::File { path, sha256 }
        };
        if model == HeadModel::BaseRemainder && raw.classes.is_some() {
            diags.at(
                src,
                hr.model.span(),
                "a head with model = \"base\" outputs the base's own classes: remove `classes`",
            );
        }
        if model != HeadModel::BaseRemainder && raw.classes.is_none() {
            diags.at(
                src,
                hr.model.span(),
                "a fine-tuned head needs `classes` (its output labels) in the package",
            );
        }
        let accuracy = checked(src, diags, &Some(hr.accuracy.clone()), "accuracy", 0.0, 1.0);
        let fpr = checked(src, diags, &Some(hr.fpr.clone()), "fpr", 0.0, 1.0);
        heads.push(Head {
            branch: branch as usize,
            tensor: hr.tensor.get_ref().clone(),
            model,
            accuracy: accuracy.unwrap_or(0.0),
            fpr: fpr.unwrap_or(1.0),
            gain_sd: 0.0,
            rate_sd: (0.0, 0.0),
            at: src.position(hr.model.span().start),
        });
    }
    heads.sort_by_key(|h| h.branch);
    if diags.len() != before {
        return None;
    }
    Some(Package {
        dir: dir.to_owned(),
        name: raw.name.into_inner(),
        description: raw.description.unwrap_or_default(),
        base_sha256,
        classes: raw.classes.map(Spanned::into_inner),
        positive: raw.positive.into_inner(),
        event,
        heads,
        calibration: None,
    })
}

/// `src` deserialised, or `None` with the TOML error reported.
fn from_toml<T: serde::de::DeserializeOwned>(
    src: &SourceFile,
    diags: &mut Diagnostics,
) -> Option<T> {
    match toml::from_str(src.text()) {
        Ok(r) => Some(r),
        Err(e) => {
            diags.toml(src, &e, 0..0);
            None
        }
    }
}

/// Reports a `format` other than the one this build reads.
fn check_format(
    src: &SourceFile,
    diags: &mut Diagnostics,
    format: &Spanned<i64>,
    what: &str,
    reads: i64,
) {
    if *format.get_ref() != reads {
        diags.at(
            src,
            format.span(),
            format!(
                "{what} format {} is not supported by this build (it reads format {reads})",
                format.get_ref()
            ),
        );
    }
}

/// Range-checks an optional spanned number, reporting a problem if it is out of `lo..=hi`.
fn checked(
    src: &SourceFile,
    diags: &mut Diagnostics,
    v: &Option<Spanned<f64>>,
    what: &str,
    lo: f64,
    hi: f64,
) -> Option<f64> {
    let v = v.as_ref()?;
    let x = *v.get_ref();
    if x.is_finite() && (lo..=hi).contains(&x) {
        Some(x)
    } else {
        diags.at(
            src,
            v.span(),
            format!("{what} must be between {lo} and {hi}, not {x}"),
        );
        None
    }
}

/// `event.lengths_ms`: 1 to [`MAX_EVENT_LENGTHS`] lengths, each between 1 ms
/// and an hour (absent: none).
fn checked_lengths(
    src: &SourceFile,
    diags: &mut Diagnostics,
    v: &Option<Spanned<Vec<f64>>>,
) -> EventLengths {
    let Some(v) = v else {
        return EventLengths::default();
    };
    let ms = v.get_ref();
    let bad = ms
        .iter()
        .find(|&&x| !(x.is_finite() && (1.0..=3.6e6).contains(&x)));
    if ms.is_empty() || ms.len() > MAX_EVENT_LENGTHS || bad.is_some() {
        let what = match bad {
            Some(x) => format!("holds {x}"),
            None => format!("has {} values", ms.len()),
        };
        diags.at(
            src,
            v.span(),
            format!(
                "event.lengths_ms must list 1 to {MAX_EVENT_LENGTHS} lengths between 1 and 3600000 ms; it {what}"
            ),
        );
        return EventLengths::default();
    }
    EventLengths::new(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
format = 1
name = "vans"
base_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
positive = ["minivan", "moving van"]

[event]
length_ms = 4000
frequency = 0.3
correlation = 0.7

[[head]]
branch = 20
tensor = "pool"
model = "base"
accuracy = 0.9
fpr = 0.05
"#;

    fn src(text: &str) -> SourceFile {
        SourceFile::new("p/package.toml", text.into())
    }

    #[test]
    fn a_base_remainder_package_loads_with_its_event_defaults() {
        let mut d = Diagnostics::default();
        let p = parse(&src(GOOD), Path::new("p"), &mut d).expect("valid");
        assert!(d.is_empty());
        assert_eq!(p.heads.len(), 1);
        assert_eq!(p.heads[0].model, HeadModel::BaseRemainder);
        assert_eq!(p.event.length_ms, Some(4000.0));
    }

    #[test]
    fn out_of_range_accuracy_is_reported_at_its_line() {
        let bad = GOOD.replace("accuracy = 0.9", "accuracy = 1.5");
        let mut d = Diagnostics::default();
        assert!(parse(&src(&bad), Path::new("p"), &mut d).is_none());
        let msg = d.iter().next().unwrap().to_string();
        assert!(
            msg.starts_with("p/package.toml:16:12: accuracy must be between"),
            "{msg}"
        );
    }

    #[test]
    fn a_fine_tuned_head_without_its_file_is_refused() {
        let bad = GOOD
            .replace("model = \"base\"", "model = \"head.onnx\"")
            .replace(
                "positive =",
                "classes = [\"other\", \"minivan\", \"moving van\"]\npositive =",
            );
        let mut d = Diagnostics::default();
        assert!(parse(&src(&bad), Path::new("/nonexistent"), &mut d).is_none());
        assert!(
            d.iter().any(|x| x.msg.contains("cannot read head model")),
            "{d:?}"
        );
    }

    const CALIBRATION: &str = r#"
format = 1
clip = "cal.mjpeg"
frames = 1000
tolerance = 2

[event]
length_ms = 1500.0
frequency = 0.12

[[head]]
branch = 20
sha256 = "base"
accuracy = 0.7
fpr = 0.2
"#;

    fn calibrated(cal: &str) -> (Option<Package>, Diagnostics) {
        let mut d = Diagnostics::default();
        let mut p = parse(&src(GOOD), Path::new("p"), &mut d).expect("valid");
        let cal = SourceFile::new("p/calibration.toml", cal.into());
        let ok = apply_calibration(&mut p, &cal, &mut d);
        (ok.map(|()| p), d)
    }

    #[test]
    fn a_calibrations_length_quantiles_reach_the_event_defaults_sorted() {
        let cal = CALIBRATION.replace(
            "frequency = 0.12",
            "frequency = 0.12\nlengths_ms = [1900.0, 1100.0, 1500.0]",
        );
        let (p, d) = calibrated(&cal);
        assert!(d.is_empty(), "{d:?}");
        let p = p.expect("applies");
        assert_eq!(p.event.lengths.as_slice(), [1100.0, 1500.0, 1900.0]);
        // Without them (an older calibration) there are none.
        let (p, _) = calibrated(CALIBRATION);
        assert!(p.expect("applies").event.lengths.is_empty());
    }

    #[test]
    fn a_length_quantile_out_of_range_is_reported_at_its_line() {
        let cal = CALIBRATION.replace(
            "frequency = 0.12",
            "frequency = 0.12\nlengths_ms = [1100.0, -5.0]",
        );
        let (p, d) = calibrated(&cal);
        assert!(p.is_none());
        let msg = d.iter().next().unwrap().to_string();
        assert!(
            msg.starts_with("p/calibration.toml:10:")
                && msg.contains("event.lengths_ms must list 1 to 8 lengths")
                && msg.contains("holds -5"),
            "{msg}"
        );
    }

    #[test]
    fn a_calibration_replaces_the_trained_rates_and_keeps_them_for_reference() {
        let (p, d) = calibrated(CALIBRATION);
        let p = p.expect("applies");
        assert!(d.is_empty());
        assert_eq!((p.heads[0].accuracy, p.heads[0].fpr), (0.7, 0.2));
        assert_eq!(p.event.length_ms, Some(1500.0));
        assert_eq!(p.event.frequency, Some(0.12));
        // Not in the calibration: the package's own value stays.
        assert_eq!(p.event.correlation, Some(0.7));
        let c = p.calibration.expect("recorded");
        assert_eq!((c.clip.as_str(), c.frames), ("cal.mjpeg", 1000));
        assert_eq!(c.trained, vec![(20, 0.9, 0.05)]);
        assert_eq!(c.trained_event.length_ms, Some(4000.0));
    }

    #[test]
    fn assumed_event_parameters_are_marked_until_a_calibration_measures_them() {
        let photos_only = GOOD.replace("correlation = 0.7", "correlation = 0.7\nassumed = true");
        let mut d = Diagnostics::default();
        let mut p = parse(&src(&photos_only), Path::new("p"), &mut d).expect("valid");
        assert!(d.is_empty(), "{d:?}");
        assert!(p.event.assumed);
        assert!(
            !parse(&src(GOOD), Path::new("p"), &mut d)
                .expect("valid")
                .event
                .assumed
        );
        let cal = SourceFile::new("p/calibration.toml", CALIBRATION.into());
        apply_calibration(&mut p, &cal, &mut d).expect("applies");
        assert!(!p.event.assumed);
        assert!(p.calibration.expect("recorded").trained_event.assumed);
    }

    #[test]
    fn calibrated_rate_spreads_are_read_and_checked_at_their_line() {
        let cal = CALIBRATION.replace("fpr = 0.2", "fpr = 0.2\naccuracy_sd = 0.08\nfpr_sd = 0.01");
        let (p, d) = calibrated(&cal);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(p.expect("applies").heads[0].rate_sd, (0.08, 0.01));
        assert_eq!(
            calibrated(CALIBRATION).0.expect("applies").heads[0].rate_sd,
            (0.0, 0.0),
            "not measured"
        );
        let (p, d) = calibrated(&CALIBRATION.replace("fpr = 0.2", "fpr = 0.2\nfpr_sd = 2"));
        assert!(p.is_none());
        let msg = d.iter().next().unwrap().to_string();
        assert!(
            msg.starts_with("p/calibration.toml:16:10: fpr_sd must be between 0 and 1, not 2"),
            "{msg}"
        );
    }

    #[test]
    fn a_calibrated_gain_uncertainty_is_read_and_checked_at_its_line() {
        let (p, d) = calibrated(&CALIBRATION.replace("fpr = 0.2", "fpr = 0.2\ngain_sd = 0.04"));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(p.expect("applies").heads[0].gain_sd, 0.04);
        assert_eq!(
            calibrated(CALIBRATION).0.expect("applies").heads[0].gain_sd,
            0.0
        );
        let (p, d) = calibrated(&CALIBRATION.replace("fpr = 0.2", "fpr = 0.2\ngain_sd = -1"));
        assert!(p.is_none());
        let msg = d.iter().next().unwrap().to_string();
        assert!(
            msg.starts_with("p/calibration.toml:16:11: gain_sd must be between 0 and 1, not -1"),
            "{msg}"
        );
    }

    #[test]
    fn a_calibration_of_a_branch_the_package_lacks_is_reported_at_its_line() {
        let (p, d) = calibrated(&CALIBRATION.replace("branch = 20", "branch = 12"));
        assert!(p.is_none());
        let msg = d.iter().next().unwrap().to_string();
        assert!(
            msg.starts_with("p/calibration.toml:12:10: the package has no head at branch 12"),
            "{msg}"
        );
    }

    #[test]
    fn a_calibration_that_leaves_a_head_out_is_refused() {
        let two = GOOD.to_owned()
            + "\n[[head]]\nbranch = 12\ntensor = \"bp12\"\nmodel = \"base\"\naccuracy = 0.95\nfpr = 0.04\n";
        let mut d = Diagnostics::default();
        let mut p = parse(&src(&two), Path::new("p"), &mut d).expect("valid");
        let cal = SourceFile::new("p/calibration.toml", CALIBRATION.into());
        assert!(apply_calibration(&mut p, &cal, &mut d).is_none());
        let msg = d.iter().next().unwrap().to_string();
        assert!(
            msg.contains("head at branch 12 is not calibrated here"),
            "{msg}"
        );
        assert_eq!(p.heads[0].accuracy, 0.95, "nothing applied");
    }

    #[test]
    fn a_calibration_in_another_format_or_with_unknown_keys_is_refused() {
        let (p, d) = calibrated(&CALIBRATION.replace("format = 1", "format = 2"));
        assert!(p.is_none());
        assert!(
            d.iter().any(|x| x.msg.contains("calibration format 2")),
            "{d:?}"
        );
        let (p, d) = calibrated(&CALIBRATION.replace("fpr = 0.2", "fpr = 0.2\nfnr = 0.1"));
        assert!(p.is_none());
        assert!(d.iter().any(|x| x.msg.contains("fnr")), "{d:?}");
    }
}
