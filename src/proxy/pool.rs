//! The HTTP/1.1 client for the app (the default `upstream.protocol`): keep-alive connections,
//! one exchange at a time each, kept for the next request once a response has been read to
//! its end.
//!
//! A connection is leased to one request from its send until its response body ends
//! ([`Lease`], carried by the body); then it goes back to the idle list, most recent last, and
//! the next request takes the most recent one. A response that is not read to its end (the
//! client went away, the body failed, a `101`) never gives its connection back: hyper closes
//! it. At most `pool_max_idle` connections wait idle (0: none, every request connects), and
//! one idle for `pool_idle_timeout` is closed by a sweep that runs only while some are idle.
//!
//! At the limit of connections to the app (the descriptor budget's share, see `connector`), a
//! request that must connect waits for a slot, and takes a connection another request gives
//! back meanwhile if that comes first.
//!
//! Each connection is driven by a task of its own, which notices when the app closes it; a
//! request that a reused connection turned away unsent (it had just closed) is sent once more
//! on a new connection. One that was sent is never sent again: the app may have acted on it.
//!
//! This replaces hyper-util's pooled client, whose per-request costs were the pool's keyed
//! map (hashing the key twice a request) and a task spawned per response to wait for the
//! connection to be ready again (`bench/profile`, issue 15).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{SignalEnd, UpstreamConnector};
use crate::error::ProxyError;

type Sender = http1::SendRequest<SignalEnd<Incoming>>;

#[derive(Debug)]
pub struct H1Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    connector: UpstreamConnector,
    max_idle: usize,
    idle_timeout: Duration,
    /// How long a request waits for an idle connection that is still finishing its last
    /// exchange before it is given up on.
    ready_timeout: Duration,
    idle: Mutex<Idle>,
    /// Told when a connection goes back to the idle list, for a request waiting to connect.
    released: Notify,
}

#[derive(Debug, Default)]
struct Idle {
    /// Oldest first.
    connections: Vec<(Sender, Instant)>,
    /// A sweep task is running (it ends when the list is empty).
    sweeping: bool,
}

/// A connection's tenure with one request: given back to the pool with [`Lease::release`]
/// when the response has been read to its end; dropped otherwise, which closes it.
#[derive(Debug)]
pub struct Lease {
    sender: Sender,
    pool: Weak<Shared>,
}

impl H1Pool {
    pub fn new(
        connector: UpstreamConnector,
        max_idle: usize,
        idle_timeout: Duration,
        ready_timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                connector,
                max_idle,
                idle_timeout,
                ready_timeout,
                idle: Mutex::new(Idle::default()),
                released: Notify::new(),
            }),
        }
    }

    /// Sends `request` on an idle connection or a new one and returns the response head with
    /// the connection's lease, or `None` when the response has no body to wait for (the
    /// connection is back in the pool already) or it switched protocols.
    pub async fn send(
        &self,
        request: Request<SignalEnd<Incoming>>,
    ) -> Result<(Response<Incoming>, Option<Lease>), ProxyError> {
        let (mut sender, reused) = self.checkout().await?;
        if !reused {
            return self.first(sender, request).await;
        }
        match sender.try_send_request(request).await {
            Ok(response) => Ok(self.leased(response, sender)),
            Err(mut error) => match error.take_message() {
                Some(unsent) => {
                    tracing::debug!(error = %error.error(), "idle upstream connection closed; sending on a new one");
                    let sender = self.connect().await?;
                    self.first(sender, unsent).await
                }
                None => Err(classify(error.error())),
            },
        }
    }

    /// The first request on a new connection.
    async fn first(
        &self,
        mut sender: Sender,
        request: Request<SignalEnd<Incoming>>,
    ) -> Result<(Response<Incoming>, Option<Lease>), ProxyError> {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| classify(&e))?;
        Ok(self.leased(response, sender))
    }

    /// An idle connection (true), or a new one (false). When new connections must wait for
    /// a slot (the descriptor budget's share for the app is taken), a connection that
    /// another request gives back in the meantime is taken instead.
    async fn checkout(&self) -> Result<(Sender, bool), ProxyError> {
        if let Some(sender) = self.reuse().await {
            return Ok((sender, true));
        }
        let connect = self.connect();
        tokio::pin!(connect);
        loop {
            let released = self.shared.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(sender) = self.reuse().await {
                return Ok((sender, true));
            }
            tokio::select! {
                connected = &mut connect => return connected.map(|sender| (sender, false)),
                () = released => {}
            }
        }
    }

    fn leased(
        &self,
        response: Response<Incoming>,
        sender: Sender,
    ) -> (Response<Incoming>, Option<Lease>) {
        let lease = Lease {
            sender,
            pool: Arc::downgrade(&self.shared),
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The connection becomes the tunnel's.
            return (response, None);
        }
        if response.body().is_end_stream() {
            lease.release();
            return (response, None);
        }
        (response, Some(lease))
    }

    /// The most recently used idle connection that is open and ready for a request.
    async fn reuse(&self) -> Option<Sender> {
        loop {
            let mut sender = {
                let mut idle = self.shared.idle.lock().ok()?;
                let (sender, since) = idle.connections.pop()?;
                if since.elapsed() >= self.shared.idle_timeout {
                    // It and everything older has been idle too long.
                    idle.connections.clear();
                    return None;
                }
                sender
            };
            if sender.is_closed() {
                continue;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            // Given back as its response ended, before its task had finished the exchange.
            match tokio::time::timeout(self.shared.ready_timeout, sender.ready()).await {
                Ok(Ok(())) => return Some(sender),
                Ok(Err(_)) | Err(_) => continue,
            }
        }
    }

    async fn connect(&self) -> Result<Sender, ProxyError> {
        let io = self.shared.connector.open().await?;
        let (sender, connection) = http1::handshake(io).await.map_err(|e| {
            tracing::debug!(error = %e, "HTTP/1.1 handshake with the app failed");
            ProxyError::UpstreamConnect
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream HTTP/1.1 connection ended");
            }
        });
        Ok(sender)
    }
}

impl Lease {
    /// The response has been read to its end: the connection may serve the next request.
    pub fn release(self) {
        let Some(shared) = self.pool.upgrade() else {
            return;
        };
        if self.sender.is_closed() || shared.max_idle == 0 {
            return;
        }
        let Ok(mut idle) = shared.idle.lock() else {
            return;
        };
        if idle.connections.len() >= shared.max_idle {
            // The oldest goes: the pool keeps the ones in use most recently.
            idle.connections.remove(0);
        }
        idle.connections.push((self.sender, Instant::now()));
        if !idle.sweeping {
            idle.sweeping = true;
            tokio::spawn(sweep(Arc::downgrade(&shared), shared.idle_timeout));
        }
        drop(idle);
        shared.released.notify_one();
    }
}

/// Closes connections idle for `idle_timeout` (within a quarter of it), until none is idle
/// or the pool is gone.
async fn sweep(pool: Weak<Shared>, idle_timeout: Duration) {
    let period = (idle_timeout / 4).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        let Some(shared) = pool.upgrade() else {
            return;
        };
        let Ok(mut idle) = shared.idle.lock() else {
            return;
        };
        idle.connections
            .retain(|(sender, since)| !sender.is_closed() && since.elapsed() < idle_timeout);
        if idle.connections.is_empty() {
            idle.sweeping = false;
            return;
        }
    }
}

/// What an HTTP/1.1 client error on an open connection means for the answer.
fn classify(error: &hyper::Error) -> ProxyError {
    if error.is_timeout() {
        ProxyError::UpstreamTimeout
    } else {
        ProxyError::UpstreamProtocol
    }
}
