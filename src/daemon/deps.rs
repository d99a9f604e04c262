//! What the service is given rather than opens itself: its clock, how it
//! opens a camera's source, how it measures the cost profile, and whether it
//! answers to systemd and to signals.
//!
//! `mainstream run` uses [`Deps::real`]. Unit tests start a whole
//! [`super::Service`] with a simulated clock, scripted camera failures
//! ([`crate::camera::ScriptedOpener`]) and an instant profile, on real files
//! in a temporary directory and the bundled demo models.

use super::systemd::Notifier;
use crate::camera::{Clock, SourceOpener, SpecOpener, SystemClock};
use crate::config::CameraConfig;
use crate::error::Result;
use crate::model::net::Base;
use crate::profile::{FrameCost, Profile};
use std::sync::Arc;

/// Opens what the service reads from the outside world.
pub(crate) trait Opener: Send + Sync {
    /// The opener of camera `index`'s source; replay pacing uses `clock`.
    fn camera(
        &self,
        index: usize,
        camera: &CameraConfig,
        clock: Arc<dyn Clock>,
    ) -> Box<dyn SourceOpener>;
    /// Measures the cost profile of `base` (at boot when none is stored, and
    /// when the cost model check asks for it; called on a background thread).
    fn measure_profile(&self, base: &Base) -> Result<Profile>;
    /// Times `camera`'s frames outside the networks (at boot for a camera
    /// mode the profile lacks, and with every re-profile).
    fn measure_frames(&self, base: &Base, camera: &CameraConfig) -> Result<FrameCost>;
}

/// The real thing: the configured source, the profile timed on this CPU.
struct RealOpener;

impl Opener for RealOpener {
    fn camera(
        &self,
        _index: usize,
        camera: &CameraConfig,
        _clock: Arc<dyn Clock>,
    ) -> Box<dyn SourceOpener> {
        Box::new(SpecOpener::new(camera.source_spec()))
    }

    fn measure_profile(&self, base: &Base) -> Result<Profile> {
        crate::profile::measure(base, 5, |done, total| {
            if done % 5 == 0 || done == total {
                log::info!("profile: segment {done}/{total}");
            }
        })
    }

    fn measure_frames(&self, base: &Base, camera: &CameraConfig) -> Result<FrameCost> {
        crate::profile::measure_frames(&base.manifest, camera)
    }
}

/// Everything the service depends on that a test replaces.
pub(crate) struct Deps {
    /// The service's clock (the camera threads' too).
    pub clock: Arc<dyn Clock>,
    /// Camera sources and profile measurement.
    pub opener: Arc<dyn Opener>,
    /// The systemd notification socket.
    pub notifier: Notifier,
    /// Whether SIGTERM/SIGINT/SIGHUP (process-wide flags) stop and reload
    /// this service. Off in tests, where several services share a process.
    pub signals: bool,
}

impl Deps {
    /// The appliance: the system clock, real sources and profile, systemd's
    /// socket, and the signal handlers installed.
    pub(crate) fn real() -> Result<Deps> {
        super::systemd::install_signal_handlers()?;
        Ok(Deps {
            clock: SystemClock::shared(),
            opener: Arc::new(RealOpener),
            notifier: Notifier::from_env(),
            signals: true,
        })
    }
}
