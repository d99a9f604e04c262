//! The cost model check: when the measured CPU use stays off the plan's
//! prediction, measure the cost profile again (at most once per ten minutes).
//!
//! Every ten-second window from the first analysed frame on, the service
//! compares the process's CPU use with what it predicts: the plan's cost
//! (each camera's decoding and preprocessing at its fastest app's rate, the
//! networks) and the capture of the cameras it runs (both from the cost
//! profile, `crate::profile`). Two windows in a row more than 20% off start
//! a re-profile in the background, unless one started less than
//! [`REPROFILE_EVERY`] ago. Time comes from a [`Clock`], so the rule is
//! tested without waiting.

use crate::camera::Clock;
use std::time::Duration;

/// The least time between two re-profiles.
const REPROFILE_EVERY: Duration = Duration::from_secs(600);

/// How far (as a fraction of the prediction) a window may be off.
const TOLERANCE: f64 = 0.2;

/// Windows in a row off before re-profiling.
const WINDOWS: u32 = 2;

/// Plans predicted to use less than this many cores are not checked (the
/// service's own overhead dominates them).
const MIN_PREDICTED_CORES: f64 = 0.02;

/// What one window's measurement calls for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Not checked (nothing to compare, or a re-profile is running).
    Skipped,
    /// Within the tolerance.
    Fine,
    /// Off by `ratio - 1` of the prediction; not yet (or recently) acted on.
    Off {
        /// Measured / predicted.
        ratio: f64,
    },
    /// Off for long enough: measure the profile again now.
    Reprofile {
        /// Measured / predicted.
        ratio: f64,
    },
}

/// The check's state across windows.
#[derive(Clone, Debug, Default)]
pub(crate) struct CostCheck {
    off_windows: u32,
    last_reprofile: Option<Duration>,
    reprofiles: u64,
}

impl CostCheck {
    /// Re-profiles started so far.
    pub(crate) fn reprofiles(&self) -> u64 {
        self.reprofiles
    }

    /// One window: `measured` and `predicted` cores; `comparable` is false
    /// when the analysis is not paced by real time (a fast replay uses what
    /// it gets) or a re-profile is already running.
    pub(crate) fn window(
        &mut self,
        clock: &dyn Clock,
        measured: f64,
        predicted: f64,
        comparable: bool,
    ) -> Verdict {
        if predicted < MIN_PREDICTED_CORES || !comparable {
            self.off_windows = 0;
            return Verdict::Skipped;
        }
        let ratio = measured / predicted;
        if (ratio - 1.0).abs() < TOLERANCE {
            self.off_windows = 0;
            return Verdict::Fine;
        }
        self.off_windows += 1;
        let now = clock.now();
        let recent = self
            .last_reprofile
            .is_some_and(|t| now.saturating_sub(t) < REPROFILE_EVERY);
        if self.off_windows >= WINDOWS && !recent {
            self.off_windows = 0;
            self.last_reprofile = Some(now);
            self.reprofiles += 1;
            return Verdict::Reprofile { ratio };
        }
        Verdict::Off { ratio }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::SimClock;

    fn ten_seconds(c: &SimClock) {
        c.sleep(Duration::from_secs(10));
    }

    #[test]
    fn two_windows_off_in_a_row_start_a_reprofile() {
        let clock = SimClock::new();
        let mut check = CostCheck::default();
        assert_eq!(
            check.window(&clock, 0.5, 0.3, true),
            Verdict::Off { ratio: 0.5 / 0.3 }
        );
        ten_seconds(&clock);
        assert_eq!(
            check.window(&clock, 0.5, 0.3, true),
            Verdict::Reprofile { ratio: 0.5 / 0.3 }
        );
        assert_eq!(check.reprofiles(), 1);
    }

    #[test]
    fn a_window_within_the_tolerance_resets_the_count() {
        let clock = SimClock::new();
        let mut check = CostCheck::default();
        assert!(matches!(
            check.window(&clock, 0.5, 0.3, true),
            Verdict::Off { .. }
        ));
        assert_eq!(check.window(&clock, 0.33, 0.3, true), Verdict::Fine);
        assert!(matches!(
            check.window(&clock, 0.5, 0.3, true),
            Verdict::Off { .. }
        ));
        assert_eq!(check.reprofiles(), 0);
    }

    #[test]
    fn a_second_reprofile_waits_ten_minutes() {
        let clock = SimClock::new();
        let mut check = CostCheck::default();
        check.window(&clock, 0.1, 0.3, true);
        assert!(matches!(
            check.window(&clock, 0.1, 0.3, true),
            Verdict::Reprofile { .. }
        ));
        // Still off, but the last re-profile was moments ago.
        for _ in 0..10 {
            ten_seconds(&clock);
            assert!(matches!(
                check.window(&clock, 0.1, 0.3, true),
                Verdict::Off { .. }
            ));
        }
        clock.sleep(REPROFILE_EVERY);
        // Any window off counts once the wait is over (the count went on).
        assert!(matches!(
            check.window(&clock, 0.1, 0.3, true),
            Verdict::Reprofile { .. }
        ));
        assert_eq!(check.reprofiles(), 2);
    }

    #[test]
    fn unpaced_analysis_and_tiny_plans_are_not_checked() {
        let clock = SimClock::new();
        let mut check = CostCheck::default();
        for _ in 0..5 {
            assert_eq!(check.window(&clock, 2.0, 0.3, false), Verdict::Skipped);
            assert_eq!(check.window(&clock, 2.0, 0.01, true), Verdict::Skipped);
        }
        assert_eq!(check.reprofiles(), 0);
    }
}
