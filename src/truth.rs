//! Ground truth of labelled clips and event scoring (`demo`, `replay`, `calibrate`).
//!
//! A clip `NAME.mjpeg` made by the M-Trainer comes with `ground_truth.toml`
//! beside it: per app (by M-Package name) the event spans in frame numbers,
//! inclusive. A detected event is correct if its frames overlap a true event
//! (widened by `tolerance` frames on each side: an object half inside the
//! crop is labelled by area, the classifier sees it a frame earlier or
//! later); a true event is found if some detected event overlaps it. Event
//! recall = found / true events, precision = correct / detected, as in the
//! paper's event metrics.

use crate::error::{ErrorKind, Result, ResultExt};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// File name of a clip's ground truth.
pub const FILE: &str = "ground_truth.toml";

/// Frames of slack on each side of a labelled event when matching (the
/// demo's score and replay's default).
pub(crate) const TOLERANCE_FRAMES: u64 = 2;

/// One app's labelled events.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct TruthApp {
    /// The M-Package name the events are for.
    pub name: String,
    /// Inclusive frame spans.
    pub events: Vec<[u64; 2]>,
}

/// One object that crosses the clip (the M-Trainer lists every one, the
/// distractors too). `mainstream calibrate` resamples these: a calibration
/// is as sure as the object instances behind it allow.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub(crate) struct TruthObject {
    /// The photo it was cut from, e.g. `animals/birds/lark` (a mirrored
    /// copy ends in `_mirror`).
    pub stamp: String,
    /// Its category: an app's package name, or a distractor's.
    pub category: String,
    /// The object instance (photos of one object share it); older ground
    /// truth lacks it and [`TruthObject::instance`] derives it.
    #[serde(default)]
    pub instance: Option<String>,
    /// First and last frame it is on screen at all, inclusive.
    pub on_screen: [u64; 2],
}

impl TruthObject {
    /// The object instance: the one written, else the stamp's name without
    /// a `_mirror` suffix.
    pub(crate) fn instance(&self) -> &str {
        match &self.instance {
            Some(i) => i,
            None => {
                let name = self.stamp.rsplit('/').next().unwrap_or(&self.stamp);
                name.strip_suffix("_mirror").unwrap_or(name)
            }
        }
    }
}

/// A clip's ground truth.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Truth {
    /// Clip file name (beside the ground truth file).
    pub clip: String,
    /// Frame rate.
    pub fps: f64,
    /// Frames in the clip.
    pub frames: u64,
    /// Per app.
    #[serde(rename = "app", default)]
    pub apps: Vec<TruthApp>,
    /// The objects that cross it (empty in hand-labelled ground truth).
    #[serde(rename = "object", default)]
    pub(crate) objects: Vec<TruthObject>,
}

impl Truth {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Truth> {
        let text = std::fs::read_to_string(path).context(ErrorKind::InvalidConfig, || {
            format!("cannot read ground truth {}", path.display())
        })?;
        let t: Truth = toml::from_str(&text).map_err(|e| {
            crate::err!(
                InvalidConfig,
                "{}: {}",
                path.display(),
                e.to_string().trim_end()
            )
        })?;
        for a in &t.apps {
            if let Some(bad) = a.events.iter().find(|e| e[0] > e[1]) {
                crate::bail!(
                    InvalidConfig,
                    "{}: app {}: event {:?} ends before it starts",
                    path.display(),
                    a.name,
                    bad
                );
            }
        }
        if let Some((i, o)) = t
            .objects
            .iter()
            .enumerate()
            .find(|(_, o)| o.on_screen[0] > o.on_screen[1])
        {
            crate::bail!(
                InvalidConfig,
                "{}: object {} ({}): on_screen {:?} ends before it starts",
                path.display(),
                i + 1,
                o.stamp,
                o.on_screen
            );
        }
        Ok(t)
    }

    /// The ground truth beside a replay clip, if it describes that clip:
    /// `NAME.ground_truth.toml` for `NAME.mjpeg`, else `ground_truth.toml`.
    pub fn beside(clip: &Path) -> Option<(PathBuf, Truth)> {
        let dir = clip.parent()?;
        let name = clip.file_name()?.to_str()?;
        let stem = clip.file_stem()?.to_str()?;
        [dir.join(format!("{stem}.{FILE}")), dir.join(FILE)]
            .into_iter()
            .find_map(|path| {
                let t = Truth::load(&path).ok()?;
                (t.clip == name).then_some((path, t))
            })
    }

    /// The events of the package `name`.
    pub fn events_of(&self, name: &str) -> Option<&[[u64; 2]]> {
        self.apps
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.events.as_slice())
    }
}

/// Event recall, precision and F1 of one app.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Score {
    /// True events.
    pub truth: usize,
    /// Detected events.
    pub detected: usize,
    /// True events some detection overlaps.
    pub found: usize,
    /// Detections that overlap a true event.
    pub correct: usize,
    /// found / truth (1 with no true events).
    pub recall: f64,
    /// correct / detected (1 with no detections).
    pub precision: f64,
    /// Harmonic mean (0 if either is 0).
    pub f1: f64,
}

/// Scores `detected` spans against `truth` spans (both inclusive frame ranges).
pub fn score(truth: &[[u64; 2]], detected: &[[u64; 2]], tolerance: u64) -> Score {
    let overlaps = |t: &[u64; 2], d: &[u64; 2]| {
        d[0] <= t[1].saturating_add(tolerance) && t[0].saturating_sub(tolerance) <= d[1]
    };
    let found = truth
        .iter()
        .filter(|t| detected.iter().any(|d| overlaps(t, d)))
        .count();
    let correct = detected
        .iter()
        .filter(|d| truth.iter().any(|t| overlaps(t, d)))
        .count();
    let recall = if truth.is_empty() {
        1.0
    } else {
        found as f64 / truth.len() as f64
    };
    let precision = if detected.is_empty() {
        1.0
    } else {
        correct as f64 / detected.len() as f64
    };
    let f1 = if recall > 0.0 && precision > 0.0 {
        2.0 * recall * precision / (recall + precision)
    } else {
        0.0
    };
    Score {
        truth: truth.len(),
        detected: detected.len(),
        found,
        correct,
        recall,
        precision,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_detections_count_once_per_true_event() {
        let s = score(&[[10, 20], [50, 60]], &[[12, 14], [16, 25], [80, 90]], 0);
        assert_eq!((s.found, s.correct, s.detected), (1, 2, 3));
        assert!((s.recall - 0.5).abs() < 1e-12);
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.f1 - 4.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn tolerance_accepts_a_detection_just_outside_the_labelled_span() {
        assert_eq!(score(&[[10, 20]], &[[21, 22]], 0).found, 0);
        assert_eq!(score(&[[10, 20]], &[[21, 22]], 2).found, 1);
        assert_eq!(score(&[[10, 20]], &[[5, 8]], 2).found, 1);
    }

    #[test]
    fn nothing_detected_means_zero_recall_and_zero_f1() {
        let s = score(&[[1, 2]], &[], 1);
        assert_eq!((s.recall, s.precision, s.f1), (0.0, 1.0, 0.0));
        let s = score(&[], &[], 1);
        assert_eq!((s.recall, s.precision, s.f1), (1.0, 1.0, 1.0));
    }

    #[test]
    fn the_bundled_demo_ground_truth_loads() {
        let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo/demo.mjpeg");
        let (_, t) = Truth::beside(&clip).expect("ground truth beside the demo clip");
        assert_eq!(t.clip, "demo.mjpeg");
        assert!(t.apps.len() >= 3);
        assert!(t.events_of("birds").is_some_and(|e| !e.is_empty()));
        assert!(!t.objects.is_empty(), "the demo clip lists its objects");
    }

    #[test]
    fn an_objects_instance_is_the_written_one_else_its_photo_without_mirror() {
        let o = |stamp: &str, instance: Option<&str>| TruthObject {
            stamp: stamp.into(),
            category: "mammals".into(),
            instance: instance.map(Into::into),
            on_screen: [0, 1],
        };
        assert_eq!(
            o("animals/mammals/pig_golden2", Some("pig_golden")).instance(),
            "pig_golden"
        );
        assert_eq!(o("animals/birds/lark_mirror", None).instance(), "lark");
        assert_eq!(o("animals/birds/lark", None).instance(), "lark");
    }
}
