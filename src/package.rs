//! M-Package metadata: one app's model set, as written by the M-Trainer.
//!
//! An M-Package is a directory holding `package.toml` and one head ONNX file
//! per kept branch point. The head at branch point *k* takes the base
//! network's tensor at *k* and returns the app's class scores. The package
//! names the base it was cut from by the base ONNX file's SHA-256; a package
//! cut from another base is refused. The format is documented in
//! `models/README.md`.

use crate::config::diag::{Diagnostics, SourceFile};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The only `format` this build reads.
pub const FORMAT_VERSION: i64 = 1;
/// Name of the metadata file inside a package directory.
pub const META_FILE: &str = "package.toml";
/// `model = "base"`: the head is the base network's own remainder from the
/// branch point on (an unmodified ImageNet classifier), cut at run time.
pub const BASE_REMAINDER: &str = "base";

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
    frequency: Option<Spanned<f64>>,
    correlation: Option<Spanned<f64>>,
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

/// Default event parameters an app inherits unless its config overrides them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EventDefaults {
    /// Typical event duration, ms.
    pub length_ms: Option<f64>,
    /// Fraction of windows that hold an event.
    pub frequency: Option<f64>,
    /// Inter-frame correlation of detections.
    pub correlation: Option<f64>,
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
    /// Per-frame top-1 accuracy on the package's test split.
    pub accuracy: f64,
    /// Per-frame false-positive rate on the test split.
    pub fpr: f64,
}

/// A validated M-Package.
#[derive(Clone, Debug, PartialEq)]
pub struct Package {
    /// The package directory.
    pub dir: PathBuf,
    /// The package's own name.
    pub name: String,
    /// Free text.
    pub description: String,
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
    let src = match crate::config::read_source(&path) {
        Ok(s) => s,
        Err(msg) => {
            diags.file(&path, format!("cannot read M-Package metadata: {msg}"));
            return None;
        }
    };
    parse(&src, dir, diags)
}

/// Validates package metadata already read into `src`; `dir` resolves file names.
pub fn parse(src: &SourceFile, dir: &Path, diags: &mut Diagnostics) -> Option<Package> {
    let before = diags.len();
    let raw: RawPackage = match toml::from_str(src.text()) {
        Ok(r) => r,
        Err(e) => {
            diags.toml(src, &e, 0..0);
            return None;
        }
    };
    if *raw.format.get_ref() != FORMAT_VERSION {
        diags.at(
            src,
            raw.format.span(),
            format!(
                "M-Package format {} is not supported by this build (it reads format {FORMAT_VERSION})",
                raw.format.get_ref()
            ),
        );
    }
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
        event.frequency = checked(src, diags, &ev.frequency, "event.frequency", 0.0, 1.0);
        event.correlation = checked(src, diags, &ev.correlation, "event.correlation", 0.0, 1.0);
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
            if let Err(e) = std::fs::File::open(&path) {
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
    })
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
}
