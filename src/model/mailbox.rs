//! A one-message mailbox between two threads, for the tree's head workers:
//! a mutex and a condition variable (futexes on Linux), so a message costs
//! no allocation. `std::sync::mpsc` may allocate when a receiver blocks (a
//! waiter's context), which the allocation test caught about once in ten
//! runs.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Holds at most one message; `send` waits while it is full, `recv` while
/// it is empty; once closed, `send` fails and `recv` drains then ends.
pub(crate) struct Mailbox<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

struct State<T> {
    message: Option<T>,
    closed: bool,
}

impl<T> Mailbox<T> {
    /// An empty, open mailbox.
    pub(crate) fn new() -> Mailbox<T> {
        Mailbox {
            state: Mutex::new(State {
                message: None,
                closed: false,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves the state consistent (it is
        // one Option and one flag): keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `message` in, waiting for the previous one to be taken; gives
    /// it back if the mailbox is closed.
    pub(crate) fn send(&self, message: T) -> Result<(), T> {
        let mut s = self.lock();
        while s.message.is_some() && !s.closed {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.closed {
            return Err(message);
        }
        s.message = Some(message);
        self.changed.notify_all();
        Ok(())
    }

    /// Takes the message, waiting for one; `None` once the mailbox is
    /// closed and empty.
    pub(crate) fn recv(&self) -> Option<T> {
        let mut s = self.lock();
        loop {
            if let Some(m) = s.message.take() {
                self.changed.notify_all();
                return Some(m);
            }
            if s.closed {
                return None;
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Closes the mailbox: waiting senders fail, receivers end once it is
    /// empty.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn messages_arrive_in_order_one_at_a_time_and_close_ends_the_receiver() {
        let mb = Arc::new(Mailbox::new());
        let rx = Arc::clone(&mb);
        let t = std::thread::spawn(move || {
            let mut got = vec![];
            while let Some(v) = rx.recv() {
                got.push(v);
            }
            got
        });
        for i in 0..1000 {
            mb.send(i).expect("open");
        }
        mb.close();
        assert_eq!(t.join().unwrap(), (0..1000).collect::<Vec<_>>());
        assert_eq!(mb.send(5), Err(5), "closed");
    }
}
