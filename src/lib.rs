//! mainstream: stem-sharing multi-app video analytics for edge appliances.
//!
//! Many apps on one box each run a classifier fine-tuned from the same base
//! network. The layers they share are computed once per frame (the stem); each
//! app runs only its own remainder (its head). A planner picks, per app, the
//! branch point and frame rate that maximise mean event F1 within the box's
//! compute budget. This is the design of Mainstream (Jiang et al., USENIX ATC
//! 2018), rebuilt as one static binary.
//!
//! # Layout
//!
//! Data flows camera → preprocess → stem runtime → events; the planner and the
//! state store sit beside that path. docs/architecture.md gives each module a
//! layer and the import graph, which `tests/layers.rs` keeps true.
//!
//! - [`error`]: the one error type, its kinds and exit codes.
//! - [`frame`]: pixel formats and frame metadata shared by capture and preprocessing.
//! - [`cli`]: command-line parsing and `--help` texts.
//! - [`config`]: the TOML configuration and app drop-ins, parsed in two phases
//!   (raw serde structs, then a validated [`config::Config`]).
//! - [`logging`]: log setup, with journald priority prefixes under systemd.
//! - [`camera`]: frame sources (V4L2 devices, replay files) behind one trait.
//! - [`preprocess`]: pixel-format conversion, resize and normalisation into the
//!   model's preallocated input.
//! - [`planner`]: the event-F1 model, the cost model and the planners.
//! - [`model`]: the base network, cutting it into stem segments, and the stem
//!   tree that runs shared segments once and each app's head at its stride.
//! - [`package`]: M-Package metadata (one app's heads and curves).
//! - [`bench`]: `mainstream bench`, stem-sharing throughput on this machine.
//! - [`profile`]: the device cost profile (ms per base segment, measured with
//!   tract, and per camera mode the decoding and capture of a frame).
//! - [`rng`]: the one deterministic random generator (workloads, phases, bootstrap).
//! - [`files`]: reading the files the configuration names: regular files of
//!   bounded size only, never blocking.
//! - [`diag`]: `FILE:LINE:COL` diagnostics of the text files an operator
//!   writes (config, drop-ins, package and base manifests), and reading them.
//! - [`store`]: crash-safe postcard state files (versioned, checksummed, atomic).
//! - [`pipeline`]: the per-frame step (sampling, preprocessing, the stem tree,
//!   X-voting) that the service, replay and calibrate share.
//! - [`truth`]: ground truth of labelled clips and event scoring (demo,
//!   replay, calibrate).
//! - [`daemon`]: the appliance service (`run`, `demo`, `status`): camera
//!   threads, events, the event log, state, systemd notification.
//! - [`replay`]: `mainstream replay`, the real pipeline on a labelled clip under
//!   a simulated clock that honours a compute budget, scored against ground truth.
//! - [`calibrate`]: `mainstream calibrate`, every head's detection and
//!   false-positive rates measured on a labelled clip, saved beside its package.
//! - [`commands`]: one function per subcommand; `main` only dispatches.

// `unsafe` only where it is needed, each place allowing it with its reason:
// model::kernels (SIMD on raw pointers), preprocess::jpegdec and
// preprocess::Preprocessor::process (SIMD builds chosen at run time),
// camera::v4l2 (ioctls, mmap) and daemon::systemd (sigaction).
#![deny(unsafe_code)]

pub mod bench;
pub mod calibrate;
pub mod camera;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod error;
pub mod files;
pub mod frame;
pub mod logging;
pub mod model;
pub mod package;
pub mod pipeline;
pub mod planner;
pub mod preprocess;
pub mod profile;
pub mod replay;
pub mod rng;
pub mod store;
pub mod truth;

pub use error::{Error, ErrorKind, Result};
