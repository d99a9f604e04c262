//! Sampling an app at its planned frame rate on a stream of another rate.

/// Samples an app at a planned rate that need not divide the camera's.
///
/// With `interval = stream fps / app fps` frames between samples, the app is
/// due on the first frame at or after each multiple of `interval`; frames
/// skipped past a due point count as missed samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sampler {
    interval: f64,
    phase: f64,
    next: Option<f64>,
}

impl Sampler {
    /// A sampler for `app_fps` on a `stream_fps` stream.
    pub(crate) fn new(stream_fps: f64, app_fps: f64) -> Sampler {
        let interval = if app_fps > 0.0 && stream_fps > 0.0 {
            (stream_fps / app_fps).max(1.0)
        } else {
            f64::INFINITY
        };
        Sampler {
            interval,
            phase: 0.0,
            next: None,
        }
    }

    /// The same sampler with its first sample `phase` frames after the first
    /// frame seen (the paper's random phase; 0 = the first frame).
    pub(crate) fn with_phase(self, phase: f64) -> Sampler {
        Sampler {
            phase: if phase.is_finite() {
                phase.max(0.0)
            } else {
                0.0
            },
            ..self
        }
    }

    /// Frames between samples (infinite for a zero rate).
    pub(crate) fn interval(&self) -> f64 {
        self.interval
    }

    /// Whether frame `seq` is a sample, and how many due points before it
    /// were skipped. The first frame seen is a sample unless a phase is set.
    pub(crate) fn due(&mut self, seq: u64) -> (bool, u64) {
        if !self.interval.is_finite() {
            return (false, 0);
        }
        let s = seq as f64;
        let next = *self.next.get_or_insert(s + self.phase);
        if s + 1e-9 < next {
            return (false, 0);
        }
        let owed = ((s - next) / self.interval).floor() as u64 + 1;
        self.next = Some(next + owed as f64 * self.interval);
        (true, owed - 1)
    }

    /// Whether frame `seq` would be a sample, without taking it.
    #[cfg(test)]
    pub(crate) fn would_be_due(&self, seq: u64) -> bool {
        self.interval.is_finite() && self.next.is_none_or(|n| seq as f64 + 1e-9 >= n)
    }

    /// Starts again from the next frame seen (the source was reopened and
    /// its sequence numbers restarted).
    pub(crate) fn restart(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampler_takes_fractional_rates_on_average() {
        // 3 fps out of 10: 30 samples in 100 frames, spaced 3 or 4 apart.
        let mut s = Sampler::new(10.0, 3.0);
        let due: Vec<u64> = (0..100).filter(|&f| s.due(f).0).collect();
        assert_eq!(due.len(), 30);
        assert!(due.windows(2).all(|w| (3..=4).contains(&(w[1] - w[0]))));
        assert_eq!(due[0], 0);
    }

    #[test]
    fn a_sampler_counts_due_points_skipped_by_dropped_frames() {
        let mut s = Sampler::new(10.0, 5.0); // every 2nd frame
        assert_eq!(s.due(0), (true, 0));
        assert!(!s.would_be_due(1));
        // Frames 1..=6 dropped: due points 2, 4, 6 passed; 7 takes the sample.
        assert_eq!(s.due(7), (true, 2));
        assert_eq!(s.due(8), (true, 0));
        assert_eq!(s.due(9), (false, 0));
    }

    #[test]
    fn a_sampler_restarts_with_the_source() {
        let mut s = Sampler::new(30.0, 1.0);
        assert!(s.due(500).0);
        assert!(!s.due(501).0);
        s.restart();
        assert!(s.due(3).0);
    }

    #[test]
    fn a_phase_delays_the_first_sample_and_keeps_the_rate() {
        let mut s = Sampler::new(10.0, 2.5).with_phase(2.5);
        let due: Vec<u64> = (0..20).filter(|&q| s.due(q).0).collect();
        assert_eq!(due, vec![3, 7, 11, 15, 19]);
    }

    #[test]
    fn a_zero_rate_never_samples() {
        let mut s = Sampler::new(10.0, 0.0);
        assert_eq!(s.due(0), (false, 0));
        assert!(!s.would_be_due(5));
    }
}
