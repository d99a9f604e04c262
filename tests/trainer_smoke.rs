//! The M-Trainer's CI smoke output runs in the Rust runtime as it ran in
//! PyTorch.
//!
//! `trainer/smoke.sh OUT` trains a tiny birds app twice: from the recipe's
//! composites (`OUT/apps/birds`, and `OUT/reselect/apps/birds` after
//! `--reselect`), and through the user's path, `mtrainer.py train`, from a
//! photo folder and two labelled clips it writes from the bundled assets
//! (`OUT/own/birds`, heads at branch points 0, 18 and 20, calibrated by
//! `mainstream calibrate` on the clips' held-out frames; and
//! `OUT/own/birds-photos` from the photos alone). For the user's package it
//! writes the reference directory `OUT/own/reference/birds/`
//! (`reference.toml`): for 4 test images the base's input, per head the base
//! tensor at its branch point as PyTorch computed it, PyTorch's logits of
//! the head as stored, and for every head stored with float16 weights an
//! fp32 twin (the same trained weights, not rounded, in a float32 file) with
//! PyTorch's logits of those weights.
//!
//! These tests load the packages with `mainstream::package::load`, run every
//! head in tract, and compare. They need that directory, so they are ignored
//! by default; `tools/test.sh` runs smoke.sh and then
//! `MAINSTREAM_TRAINER_SMOKE=OUT cargo test --test trainer_smoke -- --ignored`.

use mainstream::diag::Diagnostics;
use mainstream::model::manifest::BaseManifest;
use mainstream::model::net::{tensor_from, Base, Net};
use mainstream::model::tree::{AppPlan, StemTree};
use mainstream::package::{HeadModel, Package};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The environment variable naming smoke.sh's output directory.
const ENV: &str = "MAINSTREAM_TRAINER_SMOKE";

/// The runtime against PyTorch on the same weights: float32 arithmetic in a
/// different order (tract's kernels, PyTorch's) through up to 19 blocks. The
/// trainer's ONNX Runtime check uses the same bound (measured there: ~1e-6).
const RUNTIME_TOLERANCE: f32 = 1e-4;

/// A float16-stored head against its fp32 twin: every weight is rounded to
/// float16 (relative error up to 2^-11 = 4.9e-4), and the errors of up to 53
/// layers add up. Measured on the smoke's whole-network head: 6.5e-3 (tract),
/// on the demo packages' heads: 1.2e-3 (trainer/README.md).
const FP16_TOLERANCE: f32 = 2e-2;

/// The stem tree's softmax score of the positive class against PyTorch's
/// (base computed by tract, not PyTorch, so its rounding is added too).
const SCORE_TOLERANCE: f32 = 1e-3;

#[derive(Debug, Deserialize)]
struct Reference {
    format: u32,
    app: String,
    package: String,
    classes: Vec<String>,
    images: usize,
    input: String,
    input_shape: Vec<usize>,
    #[serde(rename = "head")]
    heads: Vec<RefHead>,
}

#[derive(Debug, Deserialize)]
struct RefHead {
    branch: usize,
    tensor: String,
    model: String,
    weights: String,
    base_tensor: String,
    base_shape: Vec<usize>,
    logits: String,
    logits_shape: Vec<usize>,
    fp32_twin: Option<String>,
    fp32_twin_sha256: Option<String>,
    fp32_logits: Option<String>,
}

/// smoke.sh's output directory, reference and package.
struct Smoke {
    refdir: PathBuf,
    reference: Reference,
    package: Package,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn smoke_dir() -> PathBuf {
    std::env::var_os(ENV).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{ENV} is not set: run `bash trainer/smoke.sh DIR`, then \
             `{ENV}=DIR cargo test --test trainer_smoke -- --ignored` (tools/test.sh does both)"
        )
    })
}

fn load(dir: &Path) -> Package {
    let mut d = Diagnostics::default();
    mainstream::package::load(dir, &mut d)
        .unwrap_or_else(|| panic!("{}: {:?}", dir.display(), d.into_vec()))
}

fn smoke() -> Smoke {
    let out = smoke_dir();
    let own = out.join("own");
    let refdir = own.join("reference/birds");
    let toml_path = refdir.join("reference.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; is {ENV}={} the output directory of trainer/smoke.sh?",
            toml_path.display(),
            out.display()
        )
    });
    let reference: Reference =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", toml_path.display()));
    assert_eq!(reference.format, 1, "{}", toml_path.display());
    let dir = own.join(&reference.package);
    let mut d = Diagnostics::default();
    let package = mainstream::package::load(&dir, &mut d)
        .unwrap_or_else(|| panic!("{}: {:?}", dir.display(), d.into_vec()));
    assert_eq!(package.name, reference.app);
    assert_eq!(package.classes.as_ref(), Some(&reference.classes));
    Smoke {
        refdir,
        reference,
        package,
    }
}

fn read_f32(path: &Path, shape: &[usize]) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let want: usize = shape.iter().product();
    assert_eq!(
        bytes.len(),
        4 * want,
        "{}: {} bytes, shape {shape:?} needs {}",
        path.display(),
        bytes.len(),
        4 * want
    );
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .expect("a non-empty logit vector")
}

/// Largest minus second largest logit.
fn margin(v: &[f32]) -> f32 {
    let top = argmax(v);
    let second = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != top)
        .map(|(_, x)| *x)
        .fold(f32::NEG_INFINITY, f32::max);
    v[top] - second
}

/// Largest |a - b| relative to max(1, largest |b|), per image.
fn relative_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

/// The package's head at `branch`.
fn stored_head(pkg: &Package, branch: usize) -> &mainstream::package::Head {
    pkg.heads
        .iter()
        .find(|h| h.branch == branch)
        .unwrap_or_else(|| panic!("{}: no head at branch point {branch}", pkg.name))
}

/// Loads the package's head file at `h.branch` (hash checked) in tract.
fn load_stored(pkg: &Package, h: &RefHead, input_shape: &[usize]) -> Net {
    let head = stored_head(pkg, h.branch);
    assert_eq!(head.tensor, h.tensor);
    match &head.model {
        HeadModel::File { path, sha256 } => {
            assert!(path.ends_with(&h.model), "{}", path.display());
            Net::load_head(path, sha256.as_deref(), input_shape)
                .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.chain()))
        }
        HeadModel::BaseRemainder => panic!("the smoke package's heads are files"),
    }
}

/// Per image: the head's logits in tract on the reference's base tensor.
fn run_per_image(net: &mut Net, base: &[f32], h: &RefHead) -> Vec<Vec<f32>> {
    let one: Vec<usize> = std::iter::once(1)
        .chain(h.base_shape[1..].iter().copied())
        .collect();
    let per: usize = one.iter().product();
    base.chunks_exact(per)
        .map(|x| {
            let t = tensor_from(&one, x).expect("a tensor of the head's input shape");
            net.run_once(t)
                .unwrap_or_else(|e| panic!("{}: {}", net.label(), e.chain()))
        })
        .collect()
}

fn rows(v: &[f32], shape: &[usize]) -> Vec<Vec<f32>> {
    v.chunks_exact(shape[1]).map(<[f32]>::to_vec).collect()
}

#[test]
#[ignore = "needs trainer/smoke.sh output; run by tools/test.sh"]
fn runtime_head_logits_match_pytorch_for_stored_heads_and_fp32_twins() {
    let s = smoke();
    let r = &s.reference;
    assert_eq!(
        s.package.heads.len(),
        r.heads.len(),
        "one reference per head"
    );
    for h in &r.heads {
        assert_eq!(h.base_shape[0], r.images);
        let one: Vec<usize> = std::iter::once(1)
            .chain(h.base_shape[1..].iter().copied())
            .collect();
        let base = read_f32(&s.refdir.join(&h.base_tensor), &h.base_shape);
        // (file, weights, PyTorch logits file)
        let mut cases = vec![(
            s.package.dir.join(&h.model),
            h.weights.clone(),
            h.logits.clone(),
        )];
        if let (Some(twin), Some(logits)) = (&h.fp32_twin, &h.fp32_logits) {
            cases.push((s.refdir.join(twin), "float32 twin".into(), logits.clone()));
        }
        for (i, (file, weights, logits_file)) in cases.iter().enumerate() {
            let mut net = if i == 0 {
                load_stored(&s.package, h, &one)
            } else {
                Net::load_head(file, h.fp32_twin_sha256.as_deref(), &one)
                    .unwrap_or_else(|e| panic!("{}: {}", file.display(), e.chain()))
            };
            let want = rows(
                &read_f32(&s.refdir.join(logits_file), &h.logits_shape),
                &h.logits_shape,
            );
            let got = run_per_image(&mut net, &base, h);
            for (img, (g, w)) in got.iter().zip(&want).enumerate() {
                let d = relative_diff(g, w);
                eprintln!(
                    "bp{:02} {weights}: image {img}: tract {g:?}, pytorch {w:?}, \
                     |diff| / max(1, |logit|) = {d:.2e}",
                    h.branch
                );
                assert!(
                    d <= RUNTIME_TOLERANCE,
                    "{} ({weights}) image {img}: tract {g:?} vs PyTorch {w:?}: {d:e} > {RUNTIME_TOLERANCE:e}",
                    file.display()
                );
            }
        }
    }
}

#[test]
#[ignore = "needs trainer/smoke.sh output; run by tools/test.sh"]
fn fp16_stored_heads_agree_with_their_fp32_twins_in_the_runtime() {
    let s = smoke();
    let r = &s.reference;
    let mut twins = 0;
    for h in &r.heads {
        let stored = stored_head(&s.package, h.branch);
        let HeadModel::File { path, .. } = &stored.model else {
            panic!("the smoke package's heads are files");
        };
        let size = std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        let Some(twin) = &h.fp32_twin else {
            assert_eq!(
                h.weights, "float32",
                "bp{:02}: a float16 head has a twin",
                h.branch
            );
            continue;
        };
        assert_eq!(h.weights, "float16", "bp{:02}", h.branch);
        twins += 1;
        let one: Vec<usize> = std::iter::once(1)
            .chain(h.base_shape[1..].iter().copied())
            .collect();
        let base = read_f32(&s.refdir.join(&h.base_tensor), &h.base_shape);
        let twin_path = s.refdir.join(twin);
        let twin_size = std::fs::metadata(&twin_path)
            .unwrap_or_else(|e| panic!("{}: {e}", twin_path.display()))
            .len();
        // Float16 storage is what keeps models/ small: the twin is about twice the size.
        assert!(
            size * 3 < twin_size * 2,
            "bp{:02}: float16 file {size} bytes, float32 twin {twin_size} bytes",
            h.branch
        );
        let mut half = load_stored(&s.package, h, &one);
        let mut full = Net::load_head(&twin_path, h.fp32_twin_sha256.as_deref(), &one)
            .unwrap_or_else(|e| panic!("{}: {}", twin_path.display(), e.chain()));
        let got_half = run_per_image(&mut half, &base, h);
        let got_full = run_per_image(&mut full, &base, h);
        for (img, (a, b)) in got_half.iter().zip(&got_full).enumerate() {
            let d = relative_diff(a, b);
            eprintln!(
                "bp{:02}: image {img}: float16 {a:?}, float32 {b:?}, |diff| / max(1, |logit|) = {d:.2e}",
                h.branch
            );
            assert!(
                d <= FP16_TOLERANCE,
                "bp{:02} image {img}: float16 head {a:?} vs float32 twin {b:?}: {d:e} > {FP16_TOLERANCE:e}",
                h.branch
            );
            // Within the tolerance, only a near tie (top-2 margin below the
            // tolerance) may change the top-1 class; anything else must not.
            if margin(b) > FP16_TOLERANCE * b.iter().fold(1.0f32, |m, x| m.max(x.abs())) {
                assert_eq!(
                    argmax(a),
                    argmax(b),
                    "bp{:02} image {img}: float16 {a:?} vs float32 {b:?}",
                    h.branch
                );
            } else {
                eprintln!(
                    "bp{:02} image {img}: near tie, top-1 not compared",
                    h.branch
                );
            }
        }
    }
    assert!(
        twins >= 1,
        "the smoke package has no float16 head to compare"
    );
}

#[test]
#[ignore = "needs trainer/smoke.sh output; run by tools/test.sh"]
fn every_head_behind_the_runtime_stem_gives_pytorchs_decision() {
    let s = smoke();
    let r = &s.reference;
    let manifest = BaseManifest::load(&root().join("models/mobilenet_v2/manifest.toml"))
        .expect("the base manifest loads");
    assert_eq!(s.package.base_sha256, manifest.sha256);
    let base = Base::load(manifest).expect("the base network loads");
    let input = read_f32(&s.refdir.join(&r.input), &r.input_shape);
    let per: usize = r.input_shape[1..].iter().product();
    let positive: Vec<usize> = s
        .package
        .positive
        .iter()
        .map(|p| {
            r.classes
                .iter()
                .position(|c| c == p)
                .expect("positive class among the classes")
        })
        .collect();
    for h in &r.heads {
        let head = stored_head(&s.package, h.branch);
        let plan = AppPlan {
            name: format!("{}@{}", s.package.name, h.branch),
            branch: h.branch,
            stride: 1,
            head: head.model.clone(),
            positive: positive.clone(),
        };
        let mut tree = StemTree::build(&base, vec![plan])
            .unwrap_or_else(|e| panic!("bp{:02}: {}", h.branch, e.chain()));
        let want = rows(
            &read_f32(&s.refdir.join(&h.logits), &h.logits_shape),
            &h.logits_shape,
        );
        for (img, (x, w)) in input.chunks_exact(per).zip(&want).enumerate() {
            tree.fill_input(|d| d.copy_from_slice(x))
                .expect("the input buffer has the base's shape");
            let res = tree.run_frame(img as u64).expect("the stem tree runs")[0];
            assert!(res.ran);
            let mx = w.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
            let sum: f32 = w.iter().map(|x| (x - mx).exp()).sum();
            let p_pos = (w[positive[0]] - mx).exp() / sum;
            eprintln!(
                "bp{:02} image {img}: runtime top-1 {} score {:.6}, pytorch top-1 {} p {:.6}",
                h.branch,
                res.top1,
                res.score,
                argmax(w),
                p_pos
            );
            assert!(
                (res.score - p_pos).abs() <= SCORE_TOLERANCE,
                "bp{:02} image {img}: runtime score {} vs PyTorch {p_pos}",
                h.branch,
                res.score
            );
            if margin(w) > SCORE_TOLERANCE {
                assert_eq!(
                    res.top1 as usize,
                    argmax(w),
                    "bp{:02} image {img}",
                    h.branch
                );
                assert_eq!(res.positive, positive.contains(&argmax(w)));
            }
        }
    }
}

#[test]
#[ignore = "needs trainer/smoke.sh output; run by tools/test.sh"]
fn a_reselected_package_keeps_the_whole_network_head_and_loads() {
    let out = smoke_dir();
    let dir = out.join("reselect/apps/birds");
    let pkg = load(&dir);
    let recipe = load(&out.join("apps/birds"));
    let branches: Vec<usize> = pkg.heads.iter().map(|h| h.branch).collect();
    assert_eq!(
        branches.first(),
        Some(&0),
        "{}: {branches:?}",
        dir.display()
    );
    // Every kept head is one the smoke run trained, byte for byte (hash checked by load).
    for h in &pkg.heads {
        let trained = stored_head(&recipe, h.branch);
        assert_eq!(
            mainstream::package::head_identity(&h.model),
            mainstream::package::head_identity(&trained.model),
            "{}: head at {}",
            dir.display(),
            h.branch
        );
    }
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("metrics.json")).expect("metrics.json"),
    )
    .expect("metrics.json is JSON");
    let kept: Vec<u64> = metrics["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert_eq!(kept, branches.iter().map(|&b| b as u64).collect::<Vec<_>>());
    assert!(
        metrics["reselected"]["previously_kept"].is_array(),
        "{}",
        dir.display()
    );
}

#[test]
#[ignore = "needs trainer/smoke.sh output; run by tools/test.sh"]
fn the_users_package_is_calibrated_on_the_held_out_frames_of_its_clips() {
    let out = smoke_dir().join("own");
    let pkg = load(&out.join("birds"));
    let branches: Vec<usize> = pkg.heads.iter().map(|h| h.branch).collect();
    assert_eq!(branches, [0, 18, 20]);
    let cal = pkg
        .calibration
        .as_ref()
        .expect("mtrainer.py train ran mainstream calibrate --write");
    assert_eq!(cal.clip, "heldout.mjpeg");
    // The held-out frames: the last 30% of the vtest clip (cut between spans).
    let truth =
        mainstream::truth::Truth::load(&out.join("birds-trainer/heldout.ground_truth.toml"))
            .expect("the held-out clip's ground truth loads");
    assert_eq!(truth.frames, cal.frames);
    assert!(
        truth.frames > 0 && truth.frames < 295,
        "{} frames",
        truth.frames
    );
    assert!(!pkg.event.assumed, "event parameters measured on the clips");
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("birds/metrics.json")).expect("metrics.json"),
    )
    .expect("metrics.json is JSON");
    assert_eq!(metrics["source"], "user");
    // The fixture's truncated JPEG and text file were skipped and named.
    let skipped = metrics["photos"]["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    // Nothing but the two packages, their extras and the reference: no partial directory left.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("OUT/own")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "birds",
            "birds-photos",
            "birds-photos-trainer",
            "birds-trainer",
            "reference"
        ]
    );
}

#[test]
#[ignore = "needs trainer/smoke.sh output; run by tools/test.sh"]
fn a_package_from_photos_alone_says_its_event_parameters_are_assumed() {
    let out = smoke_dir().join("own");
    let pkg = load(&out.join("birds-photos"));
    assert!(pkg.event.assumed);
    assert!(pkg.calibration.is_none());
    let config = out.join("birds-photos-trainer/config.toml");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_mainstream"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("mainstream check runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("WARNING: not calibrated, event parameters assumed"),
        "{stdout}"
    );
}
