//! X-voting: turning one app's per-sample decisions into opened and closed events.
//!
//! An app reports an event once `voting` consecutive samples (frames it
//! analysed) are positive; the event starts at the first of them. It stays
//! open while samples keep coming back positive and closes after `voting`
//! consecutive negative samples, ending at the last positive one. Using the
//! same count to close as to open keeps one missed sample inside a long event
//! from splitting it in two, which the planner's model (MAINSTREAM.md,
//! X-voting) does not count as two detections either.

/// The moment an event is confirmed (before its end is known).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Opened {
    /// Frame of the first positive sample.
    pub start_frame: u64,
    /// Its wall-clock time, ms since the epoch.
    pub start_unix_ms: u64,
    /// Best score so far.
    pub peak_score: f32,
}

/// What one sample changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// Nothing to report.
    None,
    /// `voting` positive samples in a row: an event has begun.
    Opened(Opened),
    /// The open event ended.
    Closed(Closed),
}

/// A closed event without its names (the caller adds app and camera).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Closed {
    /// Frame of the first positive sample.
    pub start_frame: u64,
    /// Frame of the last positive sample.
    pub end_frame: u64,
    /// Their wall-clock times.
    pub start_unix_ms: u64,
    /// Wall-clock time of the last positive sample.
    pub end_unix_ms: u64,
    /// Highest score.
    pub peak_score: f32,
    /// Positive samples.
    pub samples: u32,
}

/// X-voting state of one app. Plain data: sampling it allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Detector {
    voting: u32,
    positives: u32,
    negatives: u32,
    /// First positive sample of the current run: (frame, ms, best score).
    run_start: (u64, u64, f32),
    open: Option<Closed>,
}

impl Detector {
    /// A detector needing `voting` (at least 1) consecutive positive samples.
    pub(crate) fn new(voting: u32) -> Detector {
        Detector {
            voting: voting.max(1),
            positives: 0,
            negatives: 0,
            run_start: (0, 0, 0.0),
            open: None,
        }
    }

    /// The voting count.
    #[cfg(test)]
    pub(crate) fn voting(&self) -> u32 {
        self.voting
    }

    /// Whether an event is open.
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Feeds one analysed sample.
    pub(crate) fn sample(
        &mut self,
        frame: u64,
        unix_ms: u64,
        positive: bool,
        score: f32,
    ) -> Change {
        if positive {
            self.negatives = 0;
            if let Some(ev) = &mut self.open {
                ev.end_frame = frame;
                ev.end_unix_ms = unix_ms;
                ev.peak_score = ev.peak_score.max(score);
                ev.samples += 1;
                return Change::None;
            }
            if self.positives == 0 {
                self.run_start = (frame, unix_ms, score);
            } else {
                self.run_start.2 = self.run_start.2.max(score);
            }
            self.positives += 1;
            if self.positives >= self.voting {
                let (start_frame, start_unix_ms, peak_score) = self.run_start;
                self.open = Some(Closed {
                    start_frame,
                    end_frame: frame,
                    start_unix_ms,
                    end_unix_ms: unix_ms,
                    peak_score,
                    samples: self.positives,
                });
                return Change::Opened(Opened {
                    start_frame,
                    start_unix_ms,
                    peak_score,
                });
            }
            Change::None
        } else {
            self.positives = 0;
            if self.open.is_some() {
                self.negatives += 1;
                if self.negatives >= self.voting {
                    self.negatives = 0;
                    if let Some(ev) = self.open.take() {
                        return Change::Closed(ev);
                    }
                }
            }
            Change::None
        }
    }

    /// Closes an open event now (the app was removed, the stream ended, the
    /// service stops), ending it at its last positive sample.
    pub(crate) fn finish(&mut self) -> Option<Closed> {
        self.positives = 0;
        self.negatives = 0;
        self.open.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut Detector, samples: &[(u64, bool)]) -> Vec<Change> {
        samples
            .iter()
            .map(|&(f, p)| d.sample(f, f * 100, p, if p { 0.9 } else { 0.1 }))
            .filter(|c| *c != Change::None)
            .collect()
    }

    #[test]
    fn an_event_needs_voting_consecutive_positives_and_starts_at_the_first() {
        let mut d = Detector::new(2);
        let changes = feed(
            &mut d,
            &[(0, true), (2, false), (4, true), (6, true), (8, true)],
        );
        assert_eq!(
            changes,
            vec![Change::Opened(Opened {
                start_frame: 4,
                start_unix_ms: 400,
                peak_score: 0.9
            })]
        );
        assert!(d.is_open());
    }

    #[test]
    fn one_missed_sample_does_not_split_an_event_but_voting_misses_close_it() {
        let mut d = Detector::new(2);
        let s = [
            (0, true),
            (1, true),
            (2, false),
            (3, true),
            (4, false),
            (5, false),
            (6, false),
        ];
        let changes = feed(&mut d, &s);
        assert_eq!(changes.len(), 2);
        match changes[1] {
            Change::Closed(c) => {
                assert_eq!((c.start_frame, c.end_frame, c.samples), (0, 3, 3));
            }
            other => panic!("expected a close, got {other:?}"),
        }
        assert!(!d.is_open());
    }

    #[test]
    fn voting_one_reports_on_the_first_positive_and_closes_on_the_first_negative() {
        let mut d = Detector::new(0); // clamped to 1
        assert_eq!(d.voting(), 1);
        let changes = feed(&mut d, &[(7, true), (8, false)]);
        assert!(matches!(changes[0], Change::Opened(o) if o.start_frame == 7));
        assert!(matches!(changes[1], Change::Closed(c) if c.end_frame == 7));
    }

    #[test]
    fn finish_closes_an_open_event_at_its_last_positive_sample() {
        let mut d = Detector::new(1);
        feed(&mut d, &[(1, true), (2, true)]);
        let c = d.finish().expect("open event");
        assert_eq!((c.start_frame, c.end_frame), (1, 2));
        assert_eq!(d.finish(), None);
    }
}
