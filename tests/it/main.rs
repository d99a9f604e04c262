//! Every integration test in one binary (one link, one set of debug info in
//! CI instead of one per file). Each file under tests/ stays where it is and
//! is a module here, so `cargo test --test it cli::` runs the CLI tests.
//! Tests that count allocations with their own `#[global_allocator]`
//! (alloc_runtime, alloc_pool, camera_alloc, preprocess_alloc) and the trainer's smoke
//! test (run by name from tools/test.sh) are binaries of their own.

#[path = "../common/mod.rs"]
mod common;
#[path = "../frames/mod.rs"]
mod frames;

#[path = "../calibrate.rs"]
mod calibrate;
#[path = "../camera_bytes.rs"]
mod camera_bytes;
#[path = "../camera_faults.rs"]
mod camera_faults;
#[path = "../camera_probe.rs"]
mod camera_probe;
#[path = "../camera_replay.rs"]
mod camera_replay;
#[path = "../check_files.rs"]
mod check_files;
#[path = "../cli.rs"]
mod cli;
#[path = "../config_regressions.rs"]
mod config_regressions;
#[path = "../eval_report.rs"]
mod eval_report;
#[path = "../fuzz_replay.rs"]
mod fuzz_replay;
#[path = "../layers.rs"]
mod layers;
#[path = "../mqtt.rs"]
mod mqtt;
#[path = "../planner_api.rs"]
mod planner_api;
#[path = "../preprocess_corrupt.rs"]
mod preprocess_corrupt;
#[path = "../preprocess_reference.rs"]
mod preprocess_reference;
#[path = "../replay.rs"]
mod replay;
#[path = "../runtime_imagenet.rs"]
mod runtime_imagenet;
#[path = "../runtime_packages.rs"]
mod runtime_packages;
#[path = "../runtime_tree.rs"]
mod runtime_tree;
#[path = "../service.rs"]
mod service;
#[path = "../source_files.rs"]
mod source_files;
