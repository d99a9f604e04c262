//! The base network's manifest (`manifest.toml`): its ONNX file, the input
//! format, and the ordered list of branch points where stems may be cut.
//! Written by `trainer/export_base.py`; described in `models/README.md`.

use crate::error::{ErrorKind, Result, ResultExt};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The only manifest `format` this build reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// What a branch-point entry stands for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The network input: branching here shares nothing.
    Input,
    /// An inner tensor where the network may be cut.
    Branch,
    /// The network output (not a branch point; closes the last segment).
    Output,
}

/// One entry of `[[branch_point]]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct BranchPoint {
    /// Position in the list.
    pub index: usize,
    /// Tensor (and producing node) name in the ONNX graph.
    pub tensor: String,
    /// Input, branch or output.
    pub role: Role,
    /// The torchvision module this tensor follows (documentation).
    #[serde(default)]
    pub follows: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Trainable parameters of a head that starts here (ImageNet classifier included).
    pub params_after: u64,
    /// The same without the classifier.
    #[serde(default)]
    pub feature_params_after: u64,
    /// Multiply-adds from the previous branch point to this one.
    pub segment_macs: u64,
    /// Multiply-adds from the input to here.
    pub macs_to_here: u64,
}

/// The `[input]` section: how frames become the network's input.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct InputSpec {
    /// Input tensor name.
    pub tensor: String,
    /// `[1, 3, H, W]`.
    pub shape: Vec<usize>,
    /// Channel order of the input.
    #[serde(default = "rgb")]
    colour_order: String,
    /// `value = (pixel * scale - mean[c]) / std[c]`.
    pub scale: f32,
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
    /// Evaluation transform: the frame's short side is resized to this…
    #[serde(default)]
    pub resize_short_side: Option<u32>,
    /// …and the centred `crop` x `crop` region is the input. Both absent: the
    /// largest centred region with the input's aspect ratio.
    #[serde(default)]
    pub crop: Option<u32>,
}

impl InputSpec {
    /// How camera frames are mapped onto this input.
    pub fn fit(&self) -> crate::preprocess::Fit {
        match (self.resize_short_side, self.crop) {
            (Some(r), Some(c)) if c > 0 && c <= r => crate::preprocess::Fit::ResizeCrop {
                resize_short_side: r,
                crop: c,
            },
            _ => crate::preprocess::Fit::CenterCrop,
        }
    }

    /// The preprocessing parameters (input size and normalisation).
    pub fn preprocess_spec(&self) -> crate::preprocess::InputSpec {
        let dim = |i: usize| self.shape.get(i).copied().unwrap_or(0) as u32;
        crate::preprocess::InputSpec {
            width: dim(3),
            height: dim(2),
            scale: self.scale,
            mean: self.mean,
            std: self.std,
        }
    }
}

fn rgb() -> String {
    "RGB".into()
}

#[derive(Deserialize)]
struct RawOutput {
    tensor: String,
    classes: usize,
}

#[derive(Deserialize)]
struct RawManifest {
    format: u32,
    name: String,
    onnx: String,
    onnx_sha256: String,
    #[serde(default)]
    labels: Option<String>,
    input: InputSpec,
    output: RawOutput,
    #[serde(default)]
    branch_point: Vec<BranchPoint>,
}

/// A parsed and checked base-network manifest.
#[derive(Clone, Debug)]
pub struct BaseManifest {
    /// The manifest file.
    pub path: PathBuf,
    /// Base name, e.g. `mobilenet_v2`.
    pub name: String,
    /// The ONNX file (absolute or relative to the working directory).
    pub onnx: PathBuf,
    /// SHA-256 of the ONNX file, lower-case hex. M-Packages name their base by it.
    pub sha256: String,
    /// Class names file, if any.
    pub labels: Option<PathBuf>,
    /// Input format.
    pub input: InputSpec,
    /// Output tensor name.
    pub output: String,
    /// Number of output classes.
    pub classes: usize,
    /// Entries in network order: `[0]` is the input, the last is the output.
    pub points: Vec<BranchPoint>,
}

impl BaseManifest {
    /// Reads and checks a manifest. The ONNX file's hash is checked when the
    /// runtime loads it, not here (that reads 14 MB).
    pub fn load(path: &Path) -> Result<Self> {
        // Bounded read: a wrong path must not make us read a huge file whole.
        let src = crate::diag::read_source(path)
            .map_err(|m| crate::err!(InvalidConfig, "cannot read {}: {m}", path.display()))?;
        Self::parse(path, src.text())
    }

    /// Parses manifest text; `path` locates the files it names.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |msg: String| crate::err!(InvalidConfig, "{}: {msg}", path.display());
        let raw: RawManifest = toml::from_str(text).context(ErrorKind::InvalidConfig, || {
            format!("{} is not a valid base manifest", path.display())
        })?;
        if raw.format != FORMAT_VERSION {
            return Err(bad(format!(
                "manifest format {} is not supported (this build reads {FORMAT_VERSION})",
                raw.format
            )));
        }
        let pts = &raw.branch_point;
        if pts.len() < 2 {
            return Err(bad(
                "needs at least the input and the output branch points".into()
            ));
        }
        for (i, p) in pts.iter().enumerate() {
            if p.index != i {
                return Err(bad(format!("branch point {i} has index {}", p.index)));
            }
            let want = if i == 0 {
                Role::Input
            } else if i + 1 == pts.len() {
                Role::Output
            } else {
                Role::Branch
            };
            if p.role != want {
                return Err(bad(format!(
                    "branch point {i} has role {:?}, expected {want:?}",
                    p.role
                )));
            }
            if p.shape.is_empty() || p.shape.contains(&0) {
                return Err(bad(format!("branch point {i} has an empty shape")));
            }
        }
        if pts[0].tensor != raw.input.tensor || pts[0].shape != raw.input.shape {
            return Err(bad("the first branch point must be the input tensor".into()));
        }
        if pts[pts.len() - 1].tensor != raw.output.tensor {
            return Err(bad("the last branch point must be the output tensor".into()));
        }
        let s = &raw.input.shape;
        if s.len() != 4 || s[0] != 1 || s[1] != 3 {
            return Err(bad(format!("input shape {s:?} is not [1, 3, H, W]")));
        }
        if raw.input.std.iter().any(|&x| !(x.is_finite() && x > 0.0))
            || !raw.input.scale.is_finite()
        {
            return Err(bad("input std must be positive and scale finite".into()));
        }
        match (raw.input.resize_short_side, raw.input.crop) {
            (None, None) => {}
            (Some(r), Some(c)) if c > 0 && c <= r && r <= 16_384 => {}
            (r, c) => {
                return Err(bad(format!(
                    "input resize_short_side {r:?} and crop {c:?}: give both, with 0 < crop <= resize_short_side <= 16384"
                )))
            }
        }
        let sha = raw.onnx_sha256.to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("onnx_sha256 must be 64 hexadecimal digits".into()));
        }
        let dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(BaseManifest {
            path: path.to_owned(),
            name: raw.name,
            onnx: dir.join(&raw.onnx),
            sha256: sha,
            labels: raw.labels.map(|l| dir.join(l)),
            input: raw.input,
            output: raw.output.tensor,
            classes: raw.output.classes,
            points: raw.branch_point,
        })
    }

    /// Number of segments (branch points minus one): a plan's branch point `k`
    /// in `0..=segments()` means the first `k` segments are shared.
    pub fn segments(&self) -> usize {
        self.points.len() - 1
    }

    /// Reads the class names (one per line), checking there are `classes` of them.
    pub(crate) fn load_labels(&self) -> Result<Vec<String>> {
        let Some(p) = &self.labels else {
            return Ok((0..self.classes).map(|i| format!("class {i}")).collect());
        };
        let bytes = crate::files::read_bounded(p, crate::diag::MAX_FILE_BYTES)
            .context(ErrorKind::InvalidConfig, || {
                format!("cannot read class names {}", p.display())
            })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            crate::err!(
                InvalidConfig,
                "class names {}: not UTF-8 text (invalid byte at offset {})",
                p.display(),
                e.utf8_error().valid_up_to()
            )
        })?;
        let labels: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
        if labels.len() != self.classes {
            crate::bail!(
                InvalidConfig,
                "{} lists {} class names, the manifest says {}",
                p.display(),
                labels.len(),
                self.classes
            );
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mobilenet_v2/manifest.toml")
    }

    #[test]
    fn the_bundled_mobilenet_v2_manifest_has_21_cut_points() {
        let m = BaseManifest::load(&bundled()).unwrap();
        assert_eq!(m.name, "mobilenet_v2");
        // input, features.0..18 (19 tensors), pool, logits = 22 entries, 21 segments.
        assert_eq!(m.points.len(), 22);
        assert_eq!(m.segments(), 21);
        assert_eq!(m.input.shape, vec![1, 3, 224, 224]);
        assert_eq!(m.points[20].tensor, "bp20_pool");
        let labels = m.load_labels().unwrap();
        assert_eq!(labels[967], "espresso");
    }

    #[test]
    fn a_manifest_with_shuffled_branch_points_is_refused() {
        let text = std::fs::read_to_string(bundled()).unwrap();
        let bad = text.replacen("index = 1\n", "index = 7\n", 1);
        let e = BaseManifest::parse(&bundled(), &bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("branch point 1 has index 7"), "{e}");
    }
}
