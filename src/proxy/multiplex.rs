//! The HTTP/2 (`h2c`, prior knowledge) client for `upstream.protocol: h2c`: a pool of
//! multiplexed connections to the one app.
//!
//! Each connection carries at most `max_streams_per_connection` requests at once; a request
//! that finds every connection full opens another one. A stream counts from the moment it is
//! sent until its response body ends or is dropped ([`StreamGuard`]). Connections ping the app
//! while open (so a dead peer is noticed), idle ones are dropped after the pool idle timeout,
//! and closed ones are forgotten. When connecting fails, the next attempts wait out an
//! exponential backoff, and requests in the meantime fail at once (502, gRPC UNAVAILABLE)
//! instead of piling up on an app that is down.
//!
//! Connecting happens under the pool's lock, so requests that arrive while a connection is
//! being made wait for that one instead of opening their own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use super::{SignalEnd, UpstreamConnector};
use crate::error::ProxyError;

/// A forwarded request's body, or one of Gatehouse's own (the health check).
pub type RequestBody = Either<SignalEnd<Incoming>, Full<Bytes>>;

type Sender = http2::SendRequest<RequestBody>;

/// How often an open connection pings the app, and how long a ping may go unanswered.
const PING_INTERVAL: Duration = Duration::from_secs(20);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct H2Pool {
    connector: UpstreamConnector,
    max_streams: usize,
    idle_timeout: Duration,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    connections: Vec<Conn>,
    backoff: Backoff,
}

#[derive(Debug)]
struct Conn {
    sender: Sender,
    load: Arc<Load>,
}

/// The streams open on one connection, and when it last had none.
#[derive(Debug)]
struct Load {
    streams: AtomicUsize,
    idle_since: Mutex<Instant>,
}

/// One stream's place on its connection, given back when dropped.
#[derive(Debug)]
pub struct StreamGuard(Arc<Load>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.streams.fetch_sub(1, Ordering::AcqRel) == 1
            && let Ok(mut idle_since) = self.0.idle_since.lock()
        {
            *idle_since = Instant::now();
        }
    }
}

impl H2Pool {
    pub fn new(connector: UpstreamConnector, max_streams: u32, idle_timeout: Duration) -> Self {
        Self {
            connector,
            max_streams: usize::try_from(max_streams).unwrap_or(usize::MAX).max(1),
            idle_timeout,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// Sends `request` on a connection with room for it and returns the response head with
    /// the stream's guard. A request that a connection turned away unsent (it had just
    /// closed) is tried once more on a fresh connection.
    pub async fn send(
        &self,
        request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, StreamGuard), ProxyError> {
        let (mut sender, guard) = self.checkout().await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok((response, guard)),
            Err(mut error) => {
                let Some(request) = error.take_message() else {
                    return Err(classify(error.error()));
                };
                drop(guard);
                tracing::debug!(error = %error.error(), "upstream connection closed; retrying the request on a new one");
                let (mut sender, guard) = self.checkout().await?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| classify(&e))?;
                Ok((response, guard))
            }
        }
    }

    /// The least loaded open connection with a free stream, or a new one.
    async fn checkout(&self) -> Result<(Sender, StreamGuard), ProxyError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let idle_timeout = self.idle_timeout;
        state.connections.retain(|c| {
            let idle = c.load.streams.load(Ordering::Acquire) == 0
                && c.load
                    .idle_since
                    .lock()
                    .is_ok_and(|since| now.duration_since(*since) >= idle_timeout);
            !c.sender.is_closed() && !idle
        });
        let free = state
            .connections
            .iter()
            .map(|c| (c, c.load.streams.load(Ordering::Acquire)))
            .filter(|(_, streams)| *streams < self.max_streams)
            .min_by_key(|(_, streams)| *streams)
            .map(|(c, _)| c);
        if let Some(conn) = free {
            return Ok(conn.take());
        }
        if !state.backoff.may_try(now) {
            return Err(ProxyError::UpstreamConnect);
        }
        match self.connect().await {
            Ok(sender) => {
                state.backoff.succeeded();
                let conn = Conn {
                    sender,
                    load: Arc::new(Load {
                        streams: AtomicUsize::new(0),
                        idle_since: Mutex::new(now),
                    }),
                };
                let taken = conn.take();
                state.connections.push(conn);
                Ok(taken)
            }
            Err(error) => {
                state.backoff.failed(Instant::now());
                Err(error)
            }
        }
    }

    async fn connect(&self) -> Result<Sender, ProxyError> {
        let io = self.connector.open().await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(PING_INTERVAL)
            .keep_alive_timeout(PING_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(io)
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "HTTP/2 handshake with the app failed");
                ProxyError::UpstreamConnect
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        Ok(sender)
    }
}

impl Conn {
    fn take(&self) -> (Sender, StreamGuard) {
        self.load.streams.fetch_add(1, Ordering::AcqRel);
        (self.sender.clone(), StreamGuard(self.load.clone()))
    }
}

/// What an HTTP/2 client error means for the answer: a stream the app reset is passed on as
/// a reset; anything else on an established connection is a protocol failure.
pub fn classify(error: &hyper::Error) -> ProxyError {
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(h2) = inner.downcast_ref::<h2::Error>()
            && h2.is_reset()
            && h2.is_remote()
            && let Some(reason) = h2.reason()
        {
            return ProxyError::UpstreamReset(u32::from(reason));
        }
        source = inner.source();
    }
    if error.is_timeout() {
        ProxyError::UpstreamTimeout
    } else {
        ProxyError::UpstreamProtocol
    }
}

/// Time between failed connection attempts: 100ms, doubling up to 5s; reset by a success.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next_try: Option<Instant>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn may_try(&self, now: Instant) -> bool {
        self.next_try.is_none_or(|at| now >= at)
    }

    fn failed(&mut self, now: Instant) {
        let delay = Self::FIRST
            .saturating_mul(2u32.saturating_pow(self.failures))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        self.next_try = Some(now + delay);
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let start = Instant::now();
        let mut backoff = Backoff::default();
        assert!(backoff.may_try(start));
        let mut waits = Vec::new();
        for _ in 0..8 {
            backoff.failed(start);
            let at = backoff.next_try.unwrap();
            waits.push(at - start);
            assert!(!backoff.may_try(start));
            assert!(backoff.may_try(at));
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.succeeded();
        assert!(backoff.may_try(start));
    }
}
