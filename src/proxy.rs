//! Forwarding to the application: a pool of keep-alive HTTP/1.1 connections ([`pool`]), or
//! (with `upstream.protocol: h2c`) a pool of multiplexed HTTP/2 connections ([`multiplex`]); bodies
//! and trailers streamed both ways, protocol upgrades from an allow-list spliced, and upstream
//! failures classified (connect → 502, timeout → 504, a client body that breaks its framing →
//! 400, a stream the app reset → a reset).
//!
//! Upgrades are where a proxy loses sight of the traffic: after a `101` the two sockets are
//! joined and nothing more is checked. So an upgrade is forwarded only when the request is a
//! `GET` over HTTP/1.1 asking for one listed protocol (`upstream.upgrades`, never `h2c`), and
//! the sockets are joined only when the app's `101` names that same protocol. A tunnel keeps
//! its client connection's slot (`limits.max_connections`) and ends when the drain does.
//! A WebSocket over HTTP/2 (RFC 8441 extended CONNECT) is the same upgrade: the stack turns it
//! into a `GET` with `Upgrade: websocket` before any check, and the app's `101` is answered to
//! the client as the `200` that RFC 8441 expects. Under `h2c` no upgrade is forwarded.
//!
//! The request handed to [`Upstream::forward`] has already been cleaned by the stack; this
//! module only changes what the upstream's protocol requires (version, URI form, `Host` or
//! `:authority`, `te: trailers`).

mod connector;
mod health;
mod multiplex;
mod pool;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Either;
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, oneshot, watch};

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::config::{self, UpstreamProtocol};
use crate::error::ProxyError;
use crate::headers;
pub use connector::{UpstreamConnector, UpstreamStream};
use multiplex::{H2Pool, StreamGuard};
use pool::{H1Pool, Lease};

/// The pooled client for the one upstream application.
#[derive(Debug, Clone)]
pub struct Upstream {
    transport: Transport,
    authority: Authority,
    timeout: Duration,
    /// `http://host:port` or `unix:/path`, for people (dev pages, logs).
    address: String,
    /// Lower-cased protocols from `upstream.upgrades`.
    upgrades: Arc<[String]>,
    /// Turns true when the drain is over: open tunnels close then.
    closing: watch::Receiver<bool>,
}

#[derive(Debug, Clone)]
enum Transport {
    Http1(Arc<H1Pool>),
    H2c(Arc<H2Pool>),
}

/// What the stack decided about how a request goes upstream, besides its path.
#[derive(Debug)]
pub struct Outbound {
    /// The authority the client addressed.
    pub host: Option<HeaderValue>,
    pub upgrade: Option<Upgrade>,
    /// A gRPC client's deadline (`grpc-timeout`): the answer is awaited no longer than this.
    pub deadline: Option<Duration>,
    /// The client sent `te: trailers` (gRPC does), which HTTP/2 to the app carries on.
    pub te_trailers: bool,
}

/// A client connection's place under `limits.max_connections`, shared by its requests: a
/// tunnel that outlives the HTTP connection keeps the place taken until it closes.
pub type Slot = Arc<OwnedSemaphorePermit>;

/// An upgrade that may be forwarded: the protocol asked for, and the connection's slot.
#[derive(Debug)]
pub struct Upgrade {
    protocol: HeaderValue,
    slot: Slot,
    /// Asked for by an HTTP/2 extended CONNECT (RFC 8441): the client expects `200`, not `101`.
    extended_connect: bool,
}

impl Upstream {
    /// `connections`: how many connections to the app may be open at once (the descriptor
    /// budget's share); `closing` turns true when open tunnels must end (the end of the
    /// drain).
    pub fn new(
        settings: &config::Upstream,
        connections: usize,
        closing: watch::Receiver<bool>,
    ) -> Self {
        let connector = UpstreamConnector::new(
            settings.target.clone(),
            settings.connect_timeout,
            connections,
        );
        let transport = match settings.protocol {
            UpstreamProtocol::Http1 => Transport::Http1(Arc::new(H1Pool::new(
                connector,
                settings.pool_max_idle,
                settings.pool_idle_timeout,
                settings.connect_timeout,
            ))),
            UpstreamProtocol::H2c => Transport::H2c(Arc::new(H2Pool::new(
                connector,
                settings.max_streams_per_connection,
                settings.pool_idle_timeout,
            ))),
        };
        let authority = match &settings.target {
            config::UpstreamTarget::Tcp(addr) => Authority::try_from(addr.as_str()),
            config::UpstreamTarget::Unix(_) => Authority::try_from("localhost"),
        }
        .unwrap_or(Authority::from_static("localhost"));
        let address = match &settings.target {
            config::UpstreamTarget::Tcp(addr) => format!("http://{addr}"),
            config::UpstreamTarget::Unix(path) => format!("unix:{}", path.display()),
        };
        // Upgrades are spliced HTTP/1.1 connections; an HTTP/2 app gets none.
        let upgrades = match settings.protocol {
            UpstreamProtocol::Http1 => settings.upgrades.iter().cloned().collect(),
            UpstreamProtocol::H2c => Arc::from([]),
        };
        Self {
            transport,
            authority,
            timeout: settings.timeout,
            address,
            upgrades,
            closing,
        }
    }

    /// Is this the HTTP/2 upstream (`h2c`)?
    pub fn is_h2c(&self) -> bool {
        matches!(self.transport, Transport::H2c(_))
    }

    /// Decides about the upgrade a request asked for (`requested`, from
    /// [`headers::remove_hop_by_hop`], or the protocol of an extended CONNECT that the stack
    /// turned into a `GET`). It may go to the app only for `GET` over HTTP/1.1 (or extended
    /// CONNECT over HTTP/2) and one protocol on the allow-list; otherwise its
    /// `Connection`/`Upgrade` headers are removed and the request goes on as an ordinary one.
    pub fn admit_upgrade<B>(
        &self,
        request: &mut Request<B>,
        requested: Option<HeaderValue>,
        extended_connect: bool,
        slot: &Slot,
    ) -> Option<Upgrade> {
        let protocol = requested?;
        let (method, version) = (request.method(), request.version());
        let version_ok = version == Version::HTTP_11 || extended_connect;
        let listed = protocol.to_str().is_ok_and(|p| {
            let p = p.trim();
            self.upgrades
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(p))
        });
        if listed && method == Method::GET && version_ok {
            return Some(Upgrade {
                protocol,
                slot: slot.clone(),
                extended_connect,
            });
        }
        tracing::debug!(?protocol, %method, "upgrade not forwarded");
        let headers = request.headers_mut();
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
        None
    }

    /// Where the app is, as a person would write it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends the request upstream and returns the response head with its body still
    /// streaming. With an `upgrade`, a `101` naming its protocol splices the two connections
    /// in a background task.
    pub async fn forward(
        &self,
        mut request: Request<Incoming>,
        path: PathAndQuery,
        outbound: Outbound,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let Outbound {
            host,
            upgrade,
            deadline,
            te_trailers,
        } = outbound;
        if self.is_h2c() {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(Scheme::HTTP);
            parts.path_and_query = Some(path);
            // HTTP/2 names the host in `:authority`, taken from the URI; `Host` must not
            // repeat it.
            parts.authority = Some(
                host.as_ref()
                    .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                    .unwrap_or_else(|| self.authority.clone()),
            );
            *request.version_mut() = Version::HTTP_2;
            request.headers_mut().remove(header::HOST);
            if te_trailers {
                request
                    .headers_mut()
                    .insert(header::TE, HeaderValue::from_static("trailers"));
            }
            *request.uri_mut() = Uri::from_parts(parts).map_err(|_| ProxyError::Internal)?;
        } else {
            // The origin form (`/path?query`): the request line names no host, `Host` does,
            // with the name the client used.
            *request.uri_mut() = Uri::from(path);
            *request.version_mut() = Version::HTTP_11;
            match host {
                Some(host) => request.headers_mut().insert(header::HOST, host),
                None => request.headers_mut().remove(header::HOST),
            };
        }
        if let Some(upgrade) = &upgrade
            && upgrade.extended_connect
        {
            // RFC 8441 §5: the app gets the HTTP/1.1 upgrade it knows, with a key of ours
            // (the client's tunnel has none: HTTP/2 does not need one).
            let headers = request.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, upgrade.protocol.clone());
            if !headers.contains_key(header::SEC_WEBSOCKET_KEY) {
                headers.insert(header::SEC_WEBSOCKET_KEY, websocket_key());
            }
        }
        let client_side = upgrade.map(|u| (hyper::upgrade::on(&mut request), u));

        let exchange = self.exchange(request);
        let mut response = match deadline {
            Some(deadline) if deadline < self.timeout => tokio::time::timeout(deadline, exchange)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout)??,
            _ => exchange.await?,
        };

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // A switch nobody asked for, or to another protocol than the one allowed, would
            // leave the client talking to a connection nothing checks.
            let Some((client_side, upgrade)) = client_side else {
                return Err(ProxyError::UpstreamProtocol);
            };
            let same = headers::single_value(response.headers(), &header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .zip(upgrade.protocol.to_str().ok())
                .is_some_and(|(answered, asked)| {
                    answered.trim().eq_ignore_ascii_case(asked.trim())
                });
            if !same {
                tracing::warn!(asked = ?upgrade.protocol, "the app switched to another protocol than asked; refused");
                return Err(ProxyError::UpstreamProtocol);
            }
            let upstream_side = hyper::upgrade::on(&mut response);
            if upgrade.extended_connect {
                // The HTTP/2 client's tunnel opens with a 200 and no upgrade headers.
                *response.status_mut() = StatusCode::OK;
                let headers = response.headers_mut();
                for name in [
                    header::CONNECTION,
                    header::UPGRADE,
                    header::SEC_WEBSOCKET_ACCEPT,
                    header::CONTENT_LENGTH,
                ] {
                    headers.remove(name);
                }
            }
            tokio::spawn(splice(
                client_side,
                upstream_side,
                upgrade.slot,
                self.closing.clone(),
            ));
        }
        Ok(response)
    }

    /// Sends the request and waits for the response head. The timeout is for the upstream's
    /// answer, so it starts once the request body has been sent: a slow upload is the
    /// client's pace, not the upstream's fault.
    async fn exchange(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let (sent, mut body_done) = oneshot::channel();
        let request = request.map(|body| SignalEnd {
            inner: body,
            sent: Some(sent),
        });
        let exchange = async {
            match &self.transport {
                Transport::Http1(pool) => pool.send(request).await.map(|(r, lease)| {
                    r.map(|body| UpstreamBody::new(body, lease.map(Held::Connection)))
                }),
                Transport::H2c(pool) => {
                    pool.send(request.map(Either::Left))
                        .await
                        .map(|(r, guard)| {
                            r.map(|body| UpstreamBody::new(body, Some(Held::Stream(guard))))
                        })
                }
            }
        };
        tokio::pin!(exchange);
        let mut body_end = None;
        let answered = tokio::select! {
            result = &mut exchange => Some(result),
            end = &mut body_done => {
                body_end = end.ok();
                None
            }
        };
        let result = match answered {
            Some(result) => result,
            None => tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout)?,
        };
        result.map_err(|error| {
            // A client body that broke its framing (a bad chunk, a short HTTP/2 stream) is
            // the client's fault, whatever the upstream made of the torn request.
            let end = body_end.or_else(|| body_done.try_recv().ok());
            match end {
                Some(BodyEnd::Failed) => ProxyError::BadBody,
                Some(BodyEnd::Complete) | None => error,
            }
        })
    }

    /// The app's `grpc.health.v1.Health/Check` for the whole server (service `""`): true
    /// when it answers `SERVING`. Only under `h2c`.
    pub async fn grpc_serving(&self) -> bool {
        let Transport::H2c(pool) = &self.transport else {
            return false;
        };
        health::check(pool, &self.authority, self.timeout).await
    }
}

/// A random `Sec-WebSocket-Key` (RFC 6455 §4.1: 16 random bytes, base64).
fn websocket_key() -> HeaderValue {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
    HeaderValue::from_str(&key).unwrap_or(HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="))
}

pin_project! {
    /// The body of an upstream response, holding what it occupies upstream until it ends.
    pub struct UpstreamBody {
        #[pin]
        inner: Incoming,
        held: Option<Held>,
    }
}

/// What a response body occupies upstream while it streams.
#[derive(Debug)]
enum Held {
    /// Its HTTP/1.1 connection: back to the pool when the body has been read to its end,
    /// closed when it is dropped before.
    Connection(Lease),
    /// Its place among its HTTP/2 connection's streams.
    Stream(StreamGuard),
}

impl UpstreamBody {
    fn new(inner: Incoming, held: Option<Held>) -> Self {
        Self { inner, held }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            // hyper's server stops polling a body that says it has ended.
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Ready(Some(Err(_))) => {
                // A failed body's connection is not used again.
                drop(this.held.take());
                false
            }
            Poll::Pending => false,
        };
        if ended {
            match this.held.take() {
                Some(Held::Connection(lease)) => lease.release(),
                Some(Held::Stream(guard)) => drop(guard),
                None => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How a request body ended, as reported by [`SignalEnd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEnd {
    Complete,
    Failed,
}

pin_project! {
    /// A request body that reports when it has been sent completely or failed (a dropped
    /// sender: dropped unsent).
    pub struct SignalEnd<B> {
        #[pin]
        inner: B,
        sent: Option<oneshot::Sender<BodyEnd>>,
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for SignalEnd<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        let end = match &polled {
            Poll::Ready(None) => Some(BodyEnd::Complete),
            Poll::Ready(Some(Err(_))) => Some(BodyEnd::Failed),
            _ => None,
        };
        if let Some(end) = end
            && let Some(sent) = this.sent.take()
        {
            let _ = sent.send(end);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Copies bytes both ways between an upgraded client connection and the upstream's, holding
/// the client connection's slot, until either side closes or the drain is over.
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    _slot: Slot,
    mut closing: watch::Receiver<bool>,
) {
    let tunnel = async {
        let (client, upstream) = tokio::try_join!(client, upstream)?;
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    tokio::select! {
        ended = tunnel => {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        }
        _ = closing.wait_for(|closing| *closing) => {
            tracing::debug!("drain over: closing an upgraded connection");
        }
    }
}
