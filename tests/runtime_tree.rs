//! The stem tree on the real base: shared segments plus heads give the same
//! answers as each app's unsplit network, and apps run only when due.

use crate::common::{base, root};
use mainstream::model::tree::{AppPlan, StemTree};
use mainstream::package::HeadModel;

fn photo(name: &str) -> Vec<f32> {
    let bytes =
        std::fs::read(root().join(format!("tests/fixtures/imagenet/{name}.input.f32"))).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn app(name: &str, branch: usize, stride: u32, positive: usize) -> AppPlan {
    AppPlan {
        name: name.into(),
        branch,
        stride,
        head: HeadModel::BaseRemainder,
        positive: vec![positive],
    }
}

#[test]
fn apps_at_different_branch_points_all_see_the_espresso() {
    let apps = vec![
        app("none", 0, 1, 967),
        app("mid", 10, 1, 967),
        app("max", 20, 1, 967),
        app("cat", 20, 1, 285),
    ];
    let mut tree = StemTree::build(base(), apps).unwrap();
    assert_eq!(tree.segment_count(), 2, "segments [0,10) and [10,20)");
    let input = photo("coffee");
    tree.fill_input(|d| d.copy_from_slice(&input)).unwrap();
    let r = tree.run_frame(0).unwrap().to_vec();
    for (i, res) in r.iter().enumerate() {
        assert!(res.ran, "app {i}");
        assert_eq!(res.top1, 967, "app {i}");
    }
    assert!(r[0].positive && r[1].positive && r[2].positive);
    assert!(!r[3].positive, "the cat app does not fire on coffee");
    assert!(r[0].score > 0.9, "espresso is confident: {}", r[0].score);
    // The shared-stem answers agree with the unsplit network's to 1e-4 in probability.
    assert!((r[0].score - r[2].score).abs() < 1e-4);

    // The same tree on the next photo: the input is refilled in place.
    let input = photo("chelsea");
    tree.fill_input(|d| d.copy_from_slice(&input)).unwrap();
    let r = tree.run_frame(1).unwrap();
    assert!(r[3].positive, "Egyptian cat is class 285");
    assert!(!r[0].positive);
}

#[test]
fn apps_run_only_on_frames_their_stride_selects() {
    let apps = vec![
        app("every", 20, 1, 967),
        app("third", 10, 3, 967),
        app("fifth", 0, 5, 967),
    ];
    let mut tree = StemTree::build(base(), apps).unwrap();
    let input = photo("coffee");
    tree.fill_input(|d| d.copy_from_slice(&input)).unwrap();
    for frame in 0..16u64 {
        let r = tree.run_frame(frame).unwrap();
        assert!(r[0].ran);
        assert_eq!(r[1].ran, frame % 3 == 0, "frame {frame}");
        assert_eq!(r[2].ran, frame % 5 == 0, "frame {frame}");
        for res in r.iter().filter(|x| x.ran) {
            assert_eq!(res.top1, 967);
        }
    }
}

#[test]
fn a_branch_point_past_the_network_is_a_config_error() {
    let e = StemTree::build(base(), vec![app("x", 21, 1, 0)])
        .err()
        .unwrap();
    assert_eq!(e.kind(), mainstream::ErrorKind::InvalidConfig);
    let e = StemTree::build(base(), vec![app("x", 5, 1, 1000)])
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("past the head's 1000 outputs"),
        "{e}"
    );
}

#[test]
fn a_tree_that_is_mostly_shared_stem_splits_every_op_over_its_threads_with_the_same_bits() {
    // Three apps sharing the stem down to the last branch point: head
    // threads would leave the stem, nearly the whole work, on one core.
    let apps = || {
        vec![
            app("a", 20, 1, 967),
            app("b", 20, 2, 967),
            app("c", 20, 1, 285),
        ]
    };
    let mut one = StemTree::build(base(), apps()).unwrap();
    let mut two = StemTree::build_threaded(base(), apps(), 2).unwrap();
    assert_eq!(two.intra_threads(), 2);
    assert_eq!(one.intra_threads(), 1);
    assert_same_answers(&mut one, &mut two);
}

#[test]
fn heads_on_worker_threads_give_the_same_answers() {
    let apps = || {
        vec![
            app("a", 2, 1, 967),
            app("b", 2, 2, 967),
            app("c", 0, 1, 285),
            app("d", 2, 1, 967),
        ]
    };
    let mut one = StemTree::build(base(), apps()).unwrap();
    let mut two = StemTree::build_threaded(base(), apps(), 2).unwrap();
    // Four nearly whole networks as heads below a short stem: split two
    // and two over the threads, each frame's work is about halved, as it
    // would be by splitting every op (at some loss), so heads get threads.
    assert_eq!(two.intra_threads(), 1);
    assert_same_answers(&mut one, &mut two);
}

/// Runs both trees on the same photos, frame by frame, and compares every
/// app's result (bit for bit: scores are `f32`s compared with `==`).
fn assert_same_answers(one: &mut StemTree, two: &mut StemTree) {
    for (frame, name) in ["coffee", "chelsea", "rocket", "coffee"].iter().enumerate() {
        let input = photo(name);
        one.fill_input(|d| d.copy_from_slice(&input)).unwrap();
        two.fill_input(|d| d.copy_from_slice(&input)).unwrap();
        let a = one.run_frame(frame as u64).unwrap().to_vec();
        let b = two.run_frame(frame as u64).unwrap().to_vec();
        assert_eq!(a, b, "frame {frame}");
    }
}
