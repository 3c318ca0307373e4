//! Forwarding to the application: one pooled keep-alive HTTP/1.1 client, bodies streamed both
//! ways, protocol upgrades spliced, and upstream failures classified (connect → 502,
//! timeout → 504).
//!
//! The request handed to [`Upstream::forward`] has already been cleaned by the stack; this
//! module only changes what HTTP/1.1 to the upstream requires (version, URI form, `Host`).

mod connector;

use std::error::Error as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::oneshot;

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::config;
use crate::error::ProxyError;
pub use connector::{UpstreamConnector, UpstreamStream};

/// The pooled client for the one upstream application.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<UpstreamConnector, SignalEnd<Incoming>>,
    authority: Authority,
    timeout: Duration,
    /// `http://host:port` or `unix:/path`, for people (dev pages, logs).
    address: String,
}

impl Upstream {
    pub fn new(settings: &config::Upstream) -> Self {
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
        }
    }

    /// Where the app is, as a person would write it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends the request upstream as HTTP/1.1 and returns the response head with its body
    /// still streaming. `host` is the authority the client addressed. When `upgrade` is set,
    /// a `101` answer splices the two connections in a background task.
    pub async fn forward(
        &self,
        mut request: Request<Incoming>,
        path: PathAndQuery,
        host: Option<HeaderValue>,
        upgrade: bool,
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
        let client_side = upgrade.then(|| hyper::upgrade::on(&mut request));

        // The timeout is for the upstream's answer, so it starts once the request body has
        // been sent: a slow upload is the client's pace, not the upstream's fault.
        let (sent, body_done) = oneshot::channel();
        let request = request.map(|body| SignalEnd {
            inner: body,
            sent: Some(sent),
        });
        let exchange = self.client.request(request);
        tokio::pin!(exchange);
        let answered = tokio::select! {
            result = &mut exchange => Some(result),
            _ = body_done => None,
        };
        let result = match answered {
            Some(result) => result,
            None => tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout)?,
        };
        let mut response = result.map_err(|e| classify(&e))?;

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // An upstream that switches protocols unasked would leave the client talking to
            // a connection we cannot interpret.
            let Some(client_side) = client_side else {
                return Err(ProxyError::UpstreamProtocol);
            };
            let upstream_side = hyper::upgrade::on(&mut response);
            tokio::spawn(splice(client_side, upstream_side));
        }
        Ok(response)
    }
}

pin_project! {
    /// A request body that reports (by dropping `sent`) when it has been sent completely,
    /// failed, or been dropped unsent.
    pub struct SignalEnd<B> {
        #[pin]
        inner: B,
        sent: Option<oneshot::Sender<()>>,
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
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.sent.take();
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

/// Copies bytes both ways between an upgraded client connection and the upstream's.
async fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        }
        Err(e) => tracing::debug!(error = %e, "upgrade did not complete"),
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
