//! The committed M-Packages (models/apps/*) load in the Rust runtime: every
//! head's ONNX file matches its hash, takes the base's tensor at its branch
//! point, and runs in a stem tree on a real photo.

use crate::common::root;
use mainstream::diag::Diagnostics;
use mainstream::model::manifest::BaseManifest;
use mainstream::model::net::Base;
use mainstream::model::tree::{AppPlan, StemTree};
use std::path::PathBuf;

#[test]
fn every_committed_package_loads_and_runs_every_head() {
    let manifest = BaseManifest::load(&root().join("models/mobilenet_v2/manifest.toml")).unwrap();
    let base = Base::load(manifest.clone()).unwrap();
    let bytes = std::fs::read(root().join("tests/fixtures/imagenet/coffee.input.f32")).unwrap();
    let input: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("models/apps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("package.toml").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "models/apps holds no M-Package");
    for dir in dirs {
        let mut d = Diagnostics::default();
        let pkg = mainstream::package::load(&dir, &mut d)
            .unwrap_or_else(|| panic!("{}: {:?}", dir.display(), d.into_vec()));
        assert_eq!(pkg.base_sha256, manifest.sha256, "{}", pkg.name);
        let classes = pkg
            .classes
            .clone()
            .expect("fine-tuned packages list their classes");
        let positive: Vec<usize> = pkg
            .positive
            .iter()
            .map(|p| classes.iter().position(|c| c == p).unwrap())
            .collect();
        for h in &pkg.heads {
            assert_eq!(
                h.tensor, manifest.points[h.branch].tensor,
                "{} head {}",
                pkg.name, h.branch
            );
            let plan = AppPlan {
                name: format!("{}@{}", pkg.name, h.branch),
                branch: h.branch,
                stride: 1,
                head: h.model.clone(),
                positive: positive.clone(),
            };
            let mut tree = StemTree::build(&base, vec![plan])
                .unwrap_or_else(|e| panic!("{} head {}: {}", pkg.name, h.branch, e.chain()));
            tree.fill_input(|d| d.copy_from_slice(&input)).unwrap();
            let r = tree.run_frame(0).unwrap()[0];
            assert!(r.ran);
            assert!((r.top1 as usize) < classes.len());
            assert!((0.0..=1.0).contains(&r.score), "{r:?}");
        }
    }
}
