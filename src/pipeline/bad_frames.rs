//! Reporting frames that could not be decoded: one log line per interval with a count.
//!
//! A damaged stream can refuse every frame; a line per frame would flood the
//! journal and cost more than the frames. The service's camera threads,
//! `replay` and `calibrate` report refusals through one [`BadFrames`], so they
//! log them the same way: the first at once, then at most one line per
//! [`LOG_EVERY`] naming how many were held back, the running total and the
//! latest reason. Counting and holding back allocate nothing.

use crate::frame::{RateLimit, Reject};
use std::fmt::Display;
use std::time::{Duration, Instant};

/// At most one bad-frame line per source in this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts one source's refused frames and logs them rate-limited.
#[derive(Debug)]
pub(crate) struct BadFrames {
    limit: RateLimit,
    start: Instant,
    total: u64,
}

impl Default for BadFrames {
    fn default() -> Self {
        BadFrames::new()
    }
}

impl BadFrames {
    /// A reporter that has seen nothing.
    pub fn new() -> BadFrames {
        BadFrames {
            limit: RateLimit::new(LOG_EVERY),
            start: Instant::now(),
            total: 0,
        }
    }

    /// Counts frame `seq` of `source` (e.g. `camera gate`, a clip's path),
    /// refused because of `why`, and logs a line if one is due. Returns the
    /// total so far.
    pub fn note(&mut self, source: impl Display, seq: u64, why: &Reject) -> u64 {
        self.total += 1;
        if let Some(k) = self.limit.note(self.start.elapsed()) {
            log::warn!(
                "{source}: {k} frame(s) not decodable since the last report, {} in all; \
                 latest: frame {seq}: {why}",
                self.total
            );
        }
        self.total
    }

    /// Frames refused so far.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_bad_frames_is_counted_in_full_whatever_is_logged() {
        let mut b = BadFrames::new();
        let why = Reject::Short { len: 1, need: 2 };
        for seq in 0..1000 {
            assert_eq!(b.note("clip", seq, &why), seq + 1);
        }
        assert_eq!(b.total(), 1000);
    }
}
