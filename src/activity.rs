//! Per-connection activity, for closing connections that sit idle.
//!
//! A connection is idle when no request is in flight on it; a request stays in flight until
//! its response body has been sent (the guard lives in the response body). Its own module so
//! that `body` holds the guard without importing `server`.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    active: usize,
    last_change: Instant,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                active: 0,
                last_change: Instant::now(),
            }),
        })
    }

    /// Marks a request as in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> ActiveRequest {
        self.update(|s| s.active += 1);
        ActiveRequest(self.clone())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.state.lock() {
            f(&mut state);
            state.last_change = Instant::now();
        }
    }

    /// Resolves once the connection has had no request in flight for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = match self.state.lock() {
                Ok(state) if state.active == 0 => state.last_change + idle,
                // Busy: look again later; a request finishing resets the clock anyway.
                Ok(_) => Instant::now() + idle,
                Err(_) => return,
            };
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Held by a response body while its request is in flight.
#[derive(Debug)]
pub struct ActiveRequest(Arc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.update(|s| s.active = s.active.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_counts_time_without_requests() {
        let activity = Activity::new();
        let guard = activity.begin();
        let idle = tokio::time::timeout(
            Duration::from_secs(30),
            activity.idle_for(Duration::from_secs(5)),
        );
        assert!(idle.await.is_err(), "a request in flight is not idle");
        drop(guard);
        let started = Instant::now();
        activity.idle_for(Duration::from_secs(5)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
