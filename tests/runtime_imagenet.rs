//! The stem runtime on the real MobileNetV2 base and real photos: the unsplit
//! network agrees with PyTorch, and every stem/remainder split agrees with
//! the unsplit network.

use crate::common::{base, root};
use mainstream::model::manifest::BaseManifest;
use mainstream::model::net::{tensor_from, Base, KernelPath, Net};
use std::path::Path;

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn fixture(name: &str) -> Vec<f32> {
    read_f32(&root().join("tests/fixtures/imagenet").join(name))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap()
}

fn run(net: &mut Net, input: &[f32]) -> Vec<f32> {
    let t = tensor_from(net.input_shape(), input).unwrap();
    net.run_once(t).unwrap()
}

/// Every kernel path this CPU runs; a note for each one it lacks.
fn paths() -> Vec<KernelPath> {
    KernelPath::ALL
        .into_iter()
        .filter(|p| {
            if !p.supported() {
                eprintln!("skipping kernel path {}: this CPU lacks it", p.name());
            }
            p.supported()
        })
        .collect()
}

#[test]
fn the_unsplit_base_matches_pytorch_on_real_photos_on_every_kernel_path() {
    let b = base();
    for path in paths() {
        let mut full = b.cut_on(0, b.manifest.segments(), path).unwrap();
        for (photo, class) in [("coffee", 967), ("chelsea", 285), ("rocket", 540)] {
            let logits = run(&mut full, &fixture(&format!("{photo}.input.f32")));
            let want = fixture(&format!("{photo}.logits.f32"));
            let diff = max_abs_diff(&logits, &want);
            let name = path.name();
            eprintln!("{name} {photo}: max |ours - pytorch| = {diff:e}");
            // Logits reach ~21; PyTorch f32 is itself ~1.4e-5 from f64
            // (models/README.md).
            assert!(
                diff < 1e-4,
                "{name} {photo}: logits differ from PyTorch by {diff}"
            );
            assert_eq!(argmax(&logits), class, "{name} {photo}");
        }
    }
}

#[test]
fn the_avx2_and_avx512_paths_give_the_same_logits() {
    let (a, b) = (KernelPath::Avx2, KernelPath::Avx512);
    if !(a.supported() && b.supported()) {
        eprintln!("skipping: this CPU lacks AVX2+FMA or AVX-512F");
        return;
    }
    let base = base();
    let n = base.manifest.segments();
    let mut avx2 = base.cut_on(0, n, a).unwrap();
    let mut avx512 = base.cut_on(0, n, b).unwrap();
    for photo in ["coffee", "chelsea", "rocket"] {
        let input = fixture(&format!("{photo}.input.f32"));
        let (x, y) = (run(&mut avx2, &input), run(&mut avx512, &input));
        // Same order of every sum in the 1x1 and first convolutions: the
        // same bits, not merely close.
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&x), bits(&y), "{photo}");
    }
}

/// FNV-1a (64 bits) of the logits' little-endian bytes.
fn bits_hash(logits: &[f32]) -> u64 {
    logits
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[test]
fn the_avx512_avx2_and_neon_tiles_give_the_same_logit_bits_on_x86_64_and_aarch64() {
    // Every 1x1 and first convolution sums bias then one fused multiply-add
    // per input channel in order, on every tile path, and the other ops run
    // the same code: the logits' bits do not depend on the architecture.
    // Recorded from the AVX-512 path on x86_64 and the NEON path under
    // qemu-aarch64 (docs/engine.md, "aarch64"); a change to the arithmetic
    // of any op on these paths changes them.
    const WANT: [(&str, u64); 3] = [
        ("coffee", 0x3aef_f5bb_ac98_8a3b),
        ("chelsea", 0x83ac_f61c_f44a_0562),
        ("rocket", 0xfbd4_4637_a9a7_79ac),
    ];
    let tiles = [KernelPath::Avx512, KernelPath::Avx2, KernelPath::Neon];
    let b = base();
    for path in paths().into_iter().filter(|p| tiles.contains(p)) {
        let mut full = b.cut_on(0, b.manifest.segments(), path).unwrap();
        let got: Vec<(&str, u64)> = WANT
            .iter()
            .map(|&(photo, _)| {
                let logits = run(&mut full, &fixture(&format!("{photo}.input.f32")));
                (photo, bits_hash(&logits))
            })
            .collect();
        assert_eq!(got, WANT, "{}: the logits' hashes (left)", path.name());
    }
}

#[test]
fn every_split_point_reproduces_the_unsplit_network() {
    let b = base();
    let n = b.manifest.segments();
    let input = fixture("coffee.input.f32");
    let mut full = b.cut(0, n).unwrap();
    let want = run(&mut full, &input);
    for k in 1..n {
        let mut stem = b.cut(0, k).unwrap();
        let mut rest = b.cut(k, n).unwrap();
        let mid = run(&mut stem, &input);
        assert_eq!(stem.output_shape(), &b.manifest.points[k].shape[..]);
        let got = run(&mut rest, &mid);
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= 1e-4, "split at {k}: differs from unsplit by {diff}");
        assert_eq!(argmax(&got), 967, "split at {k}");
        // Where PyTorch's own tensor at this branch point was saved, compare it too.
        let p = root().join(format!("tests/fixtures/imagenet/coffee.bp{k:02}.f32"));
        if p.exists() {
            let d = max_abs_diff(&mid, &read_f32(&p));
            assert!(d < 1e-3, "stem to {k} differs from PyTorch by {d}");
        }
    }
}

#[test]
fn a_base_file_that_does_not_match_its_manifest_is_refused() {
    let mut m = BaseManifest::load(&root().join("models/mobilenet_v2/manifest.toml")).unwrap();
    m.sha256 = "00".repeat(32);
    let e = Base::load(m).err().expect("refused");
    assert_eq!(e.kind(), mainstream::ErrorKind::Model);
    assert!(e.to_string().contains("has SHA-256 893bfc8f"), "{e}");
}

#[test]
fn a_plans_nodes_count_the_multiply_adds_the_manifest_states_on_every_path() {
    // What the engine and aarch64-proxy benches divide by: tract's cost
    // model for its own ops, ours for ours, summed over the optimised plan.
    let b = base();
    let want = b.manifest.points.last().unwrap().macs_to_here as f64;
    for path in paths() {
        let net = b.cut_on(0, b.manifest.segments(), path).unwrap();
        let model = net.plan().model();
        let got: u64 = (0..model.nodes().len())
            .map(|id| mainstream::model::net::node_multiply_adds(model, id).unwrap())
            .sum();
        let off = (got as f64 - want).abs() / want;
        assert!(
            off < 0.005,
            "{}: {got} multiply-adds in the plan against {want} in the manifest",
            path.name()
        );
    }
}
