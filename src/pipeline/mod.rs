//! The frame pipeline that the service, `replay` and `calibrate` share.
//!
//! A camera's frame goes through the same steps wherever it comes from:
//! each app's [`Sampler`] decides whether the app is due at its planned
//! rate, the frame is preprocessed into the stem tree's input, the tree runs
//! the due apps, and each app's X-voting [`Detector`] turns its samples into
//! opened and closed events. [`Analyser`] does exactly that for one frame.
//! What differs between its callers stays with them: the clock (wall time on
//! the box, a simulated budget in `replay`), which late frames to drop, and
//! what to do with the results (status and the event log, a score against
//! ground truth, per-head rates).

pub mod analyser;
pub mod assignment;
pub mod bad_frames;
pub mod sampler;
pub mod voting;

pub use analyser::{preprocessor_for, Analyser, AnalysisClock, AppRun, AppStep, Frame, Timing};
pub(crate) use bad_frames::BadFrames;
pub use voting::{Change, Closed, Opened};
