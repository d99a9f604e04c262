//! Time for the capture path, behind a trait so that tests never sleep for real.
//!
//! Replay pacing and the reconnect backoff both ask a [`Clock`] for the time and
//! to sleep. Production code uses [`SystemClock`]; tests use [`SimClock`], whose
//! `sleep` advances a virtual time instantly and can run a hook (for example to
//! make a vanished camera reappear after the third reconnect attempt).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A monotonic clock that can sleep. For test injection: see [`SimClock`].
pub trait Clock: Send + Sync {
    /// Time since an arbitrary, fixed origin.
    fn now(&self) -> Duration;
    /// Blocks the calling thread for `d` (a simulated clock advances instead).
    fn sleep(&self, d: Duration);
}

/// The real monotonic clock (`CLOCK_MONOTONIC` through [`Instant`]).
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }

    /// A shareable handle, the form [`crate::camera::Camera`] and the replay sources take.
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(SystemClock::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

type SleepHook = Box<dyn FnMut(usize, Duration) + Send>;

struct SimState {
    now: Duration,
    sleeps: Vec<Duration>,
    hook: Option<SleepHook>,
}

/// A simulated clock for tests: `sleep` records the duration, advances the
/// virtual time and returns at once. Cloning gives another handle on the same time.
#[derive(Clone)]
pub struct SimClock {
    state: Arc<Mutex<SimState>>,
}

impl SimClock {
    /// A simulated clock at time zero.
    pub fn new() -> Self {
        SimClock {
            state: Arc::new(Mutex::new(SimState {
                now: Duration::ZERO,
                sleeps: Vec::new(),
                hook: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock can only come from a test hook; the
        // state itself stays consistent, so keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `hook(n, d)` at the start of the n-th sleep (0-based), before time
    /// advances. The hook must not call back into this clock.
    pub fn on_sleep(&self, hook: impl FnMut(usize, Duration) + Send + 'static) {
        self.lock().hook = Some(Box::new(hook));
    }

    /// Every sleep requested so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    /// Moves the virtual time forward without a sleep being recorded.
    pub fn advance(&self, d: Duration) {
        self.lock().now += d;
    }
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::new()
    }
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        self.lock().now
    }

    fn sleep(&self, d: Duration) {
        let mut st = self.lock();
        let n = st.sleeps.len();
        if let Some(hook) = st.hook.as_mut() {
            hook(n, d);
        }
        st.sleeps.push(d);
        st.now += d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_clock_advances_by_each_sleep_and_runs_the_hook_first() {
        let clock = SimClock::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        clock.on_sleep(move |n, d| seen2.lock().unwrap().push((n, d)));
        clock.sleep(Duration::from_millis(5));
        clock.sleep(Duration::from_millis(7));
        assert_eq!(clock.now(), Duration::from_millis(12));
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(0, Duration::from_millis(5)), (1, Duration::from_millis(7))]
        );
    }
}
