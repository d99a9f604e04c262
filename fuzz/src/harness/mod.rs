//! Harness bodies of the camera-bytes and state-file fuzz targets (issue 24).
//!
//! Each submodule has one `run(data: &[u8])`: what its cargo-fuzz target
//! executes for one input. Besides "no panic, no hang" each checks the
//! guarantees of what it drives (in the manner of retina's
//! `check_invariants()`) and panics when one is broken.
//!
//! These files use only `std` and the public API of `mainstream`, so the main
//! crate's test suite compiles them too (`tests/fuzz_replay.rs` includes this
//! directory with `#[path]`) and replays the committed seeds and every
//! regression input through the same code in CI, where no instrumented build
//! can run.

pub mod eventlog;
pub mod mjpeg;
pub mod preprocess;
pub mod scratch;
pub mod store;
pub mod tail;
pub mod y4m;

/// One target's harness body.
pub type Harness = fn(&[u8]);

/// The targets of this directory, by name, as the replay test iterates them.
pub const TARGETS: [(&str, Harness); 6] = [
    ("preprocess", preprocess::run),
    ("mjpeg", mjpeg::run),
    ("y4m", y4m::run),
    ("eventlog", eventlog::run),
    ("store", store::run),
    ("tail", tail::run),
];
