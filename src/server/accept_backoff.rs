//! What the accept loop does when `accept` fails: usually EMFILE or ENFILE (out of file
//! descriptors) or ENOBUFS/ENOMEM. The connection stays in the kernel's queue, so the listener
//! is readable again at once: retrying straight away spins a core and logging each failure
//! floods the log while nothing can change until a descriptor is freed. So: wait, doubling
//! from 5 ms up to 200 ms while the failures go on (so service resumes within 200 ms of a
//! descriptor coming back), count every failure in `gatehouse_accept_errors_total{kind}`, and
//! log the first failure, then at most one summary line per 10 s.

use std::io;
use std::time::{Duration, Instant};

const FIRST: Duration = Duration::from_millis(5);
const MOST: Duration = Duration::from_millis(200);
const LOG_EVERY: Duration = Duration::from_secs(10);

// Linux errno values (no libc dependency for four numbers).
const ENOMEM: i32 = 12;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
const ENOBUFS: i32 = 105;

/// The metric label for an accept error.
pub(super) fn kind(error: &io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(EMFILE) => "emfile",
        Some(ENFILE) => "enfile",
        Some(ENOBUFS) => "enobufs",
        Some(ENOMEM) => "enomem",
        _ => "other",
    }
}

#[derive(Debug, Default)]
pub(super) struct AcceptBackoff {
    delay: Duration,
    last_log: Option<Instant>,
    unlogged: u64,
}

/// What to do about one failure: how long to wait, and the log line to write, if any.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Failure {
    pub wait: Duration,
    /// `Some(n)`: log now, `n` failures since the last line (this one included).
    pub log: Option<u64>,
}

impl AcceptBackoff {
    pub(super) fn failed(&mut self, now: Instant) -> Failure {
        self.delay = if self.delay.is_zero() {
            FIRST
        } else {
            (self.delay * 2).min(MOST)
        };
        self.unlogged += 1;
        let due = self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        let log = due.then(|| {
            self.last_log = Some(now);
            std::mem::take(&mut self.unlogged)
        });
        Failure {
            wait: self.delay,
            log,
        }
    }

    /// A connection was accepted: the next failure waits the shortest time again. The log
    /// limit is kept, so failures alternating with successes still log once per 10 s.
    pub(super) fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_on_success() {
        let mut b = AcceptBackoff::default();
        let now = Instant::now();
        let waits: Vec<u64> = (0..8)
            .map(|_| b.failed(now).wait.as_millis() as u64)
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 200, 200]);
        b.succeeded();
        assert_eq!(b.failed(now).wait, FIRST);
    }

    #[test]
    fn logs_the_first_failure_then_one_summary_per_interval() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.failed(t0).log, Some(1));
        for i in 1..100 {
            assert_eq!(b.failed(t0 + Duration::from_millis(i)).log, None);
        }
        assert_eq!(b.failed(t0 + LOG_EVERY).log, Some(100));
        assert_eq!(b.failed(t0 + LOG_EVERY).log, None);
    }

    #[test]
    fn kinds() {
        assert_eq!(kind(&io::Error::from_raw_os_error(24)), "emfile");
        assert_eq!(kind(&io::Error::from_raw_os_error(23)), "enfile");
        assert_eq!(kind(&io::Error::other("x")), "other");
    }
}
