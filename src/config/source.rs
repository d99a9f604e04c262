//! The capture source a configured camera opens.

use super::{CameraConfig, Source};
use crate::camera::SourceSpec;

impl CameraConfig {
    /// The capture source this camera opens.
    pub fn source_spec(&self) -> SourceSpec {
        let c = self;
        let path = match &c.source {
            Source::Device(p) | Source::Replay(p) => p.clone(),
        };
        SourceSpec {
            path,
            width: c.width.unwrap_or(0),
            height: c.height.unwrap_or(0),
            fps: c.fps,
            format: c.format.unwrap_or(crate::frame::PixelFormat::Mjpeg),
            pace: c.pace,
        }
    }
}
