//! Forwarding to the application: one pooled keep-alive HTTP/1.1 client, bodies streamed both
//! ways, protocol upgrades from an allow-list spliced, and upstream failures classified
//! (connect → 502, timeout → 504, a client body that breaks its framing → 400).
//!
//! Upgrades are where a proxy loses sight of the traffic: after a `101` the two sockets are
//! joined and nothing more is checked. So an upgrade is forwarded only when the request is a
//! `GET` over HTTP/1.1 asking for one listed protocol (`upstream.upgrades`, never `h2c`), and
//! the sockets are joined only when the app's `101` names that same protocol. A tunnel keeps
//! its client connection's slot (`limits.max_connections`) and ends when the drain does.
//!
//! The request handed to [`Upstream::forward`] has already been cleaned by the stack; this
//! module only changes what HTTP/1.1 to the upstream requires (version, URI form, `Host`).

mod connector;

use std::error::Error as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, oneshot, watch};

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::config;
use crate::error::ProxyError;
use crate::headers;
pub use connector::{UpstreamConnector, UpstreamStream};

/// The pooled client for the one upstream application.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<UpstreamConnector, SignalEnd<Incoming>>,
    authority: Authority,
    timeout: Duration,
    /// `http://host:port` or `unix:/path`, for people (dev pages, logs).
    address: String,
    /// Lower-cased protocols from `upstream.upgrades`.
    upgrades: Arc<[String]>,
    /// Turns true when the drain is over: open tunnels close then.
    closing: watch::Receiver<bool>,
}

/// A client connection's place under `limits.max_connections`, shared by its requests: a
/// tunnel that outlives the HTTP connection keeps the place taken until it closes.
pub type Slot = Arc<OwnedSemaphorePermit>;

/// An upgrade that may be forwarded: the protocol asked for, and the connection's slot.
#[derive(Debug)]
pub struct Upgrade {
    protocol: HeaderValue,
    slot: Slot,
}

impl Upstream {
    /// `closing` turns true when open tunnels must end (the end of the drain).
    pub fn new(settings: &config::Upstream, closing: watch::Receiver<bool>) -> Self {
        let connector = UpstreamConnector::new(settings.target.clone(), settings.connect_timeout);
        let client = Client::builder(TokioExecutor::new())
            // Without a pool timer the idle timeout is never enforced (hyper-util #3 trap).
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle)
            // We set `Host` ourselves: the upstream sees the name the client used.
            .set_host(false)
            .build(connector);
        let authority = match &settings.target {
            config::UpstreamTarget::Tcp(addr) => Authority::try_from(addr.as_str()),
            config::UpstreamTarget::Unix(_) => Authority::try_from("localhost"),
        }
        .unwrap_or(Authority::from_static("localhost"));
        let address = match &settings.target {
            config::UpstreamTarget::Tcp(addr) => format!("http://{addr}"),
            config::UpstreamTarget::Unix(path) => format!("unix:{}", path.display()),
        };
        Self {
            client,
            authority,
            timeout: settings.timeout,
            address,
            upgrades: settings.upgrades.iter().cloned().collect(),
            closing,
        }
    }

    /// Decides about the upgrade a request asked for (`requested`, from
    /// [`headers::remove_hop_by_hop`]). It may go to the app only for `GET` over HTTP/1.1 and
    /// one protocol on the allow-list; otherwise its `Connection`/`Upgrade` headers are
    /// removed and the request goes on as an ordinary one.
    pub fn admit_upgrade<B>(
        &self,
        request: &mut Request<B>,
        requested: Option<HeaderValue>,
        slot: &Slot,
    ) -> Option<Upgrade> {
        let protocol = requested?;
        let (method, version) = (request.method(), request.version());
        let listed = protocol.to_str().is_ok_and(|p| {
            let p = p.trim();
            self.upgrades
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(p))
        });
        if listed && method == Method::GET && version == Version::HTTP_11 {
            return Some(Upgrade {
                protocol,
                slot: slot.clone(),
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

    /// Sends the request upstream as HTTP/1.1 and returns the response head with its body
    /// still streaming. `host` is the authority the client addressed. With an `upgrade`, a
    /// `101` naming its protocol splices the two connections in a background task.
    pub async fn forward(
        &self,
        mut request: Request<Incoming>,
        path: PathAndQuery,
        host: Option<HeaderValue>,
        upgrade: Option<Upgrade>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        *request.uri_mut() = Uri::from_parts(parts).map_err(|_| ProxyError::Internal)?;
        *request.version_mut() = Version::HTTP_11;
        match host {
            Some(host) => request.headers_mut().insert(header::HOST, host),
            None => request.headers_mut().remove(header::HOST),
        };
        let client_side = upgrade.map(|u| (hyper::upgrade::on(&mut request), u));

        // The timeout is for the upstream's answer, so it starts once the request body has
        // been sent: a slow upload is the client's pace, not the upstream's fault.
        let (sent, mut body_done) = oneshot::channel();
        let request = request.map(|body| SignalEnd {
            inner: body,
            sent: Some(sent),
        });
        let exchange = self.client.request(request);
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
        let mut response = result.map_err(|e| {
            // A client body that broke its framing (a bad chunk, a short HTTP/2 stream) is
            // the client's fault, whatever the upstream made of the torn request.
            let end = body_end.or_else(|| body_done.try_recv().ok());
            match end {
                Some(BodyEnd::Failed) => ProxyError::BadBody,
                Some(BodyEnd::Complete) | None => classify(&e),
            }
        })?;

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
            tokio::spawn(splice(
                client_side,
                upstream_side,
                upgrade.slot,
                self.closing.clone(),
            ));
        }
        Ok(response)
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

fn classify(error: &hyper_util::client::legacy::Error) -> ProxyError {
    let mut source = error.source();
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::TimedOut
        {
            return ProxyError::UpstreamTimeout;
        }
        source = inner.source();
    }
    if error.is_connect() {
        ProxyError::UpstreamConnect
    } else {
        ProxyError::UpstreamProtocol
    }
}
