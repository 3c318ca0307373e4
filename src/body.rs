//! The response body type, and the wrapper that records each request when its body ends.
//!
//! Bodies stream: nothing here buffers. `Metered` counts bytes as they pass and writes the
//! access-log line and the request metrics once, when the body is finished or dropped, so the
//! duration covers the whole exchange and an aborted download is still logged.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

use crate::activity::ActiveRequest;
use crate::audit::DecisionEvent;
use crate::proxy::UpstreamBody;
use crate::telemetry;

/// What every handler answers with: a streamed upstream body, or one of our own.
pub type Body = Either<UpstreamBody, Own>;

/// A body Gatehouse makes: small and whole, or (the dev inspector's event stream) endless.
pub type Own = Either<Full<Bytes>, BoxBody<Bytes, Infallible>>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Right(Either::Left(Full::new(bytes.into())))
}

/// A body of our own that streams.
pub fn stream(body: BoxBody<Bytes, Infallible>) -> Body {
    Either::Right(Either::Right(body))
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// The facts of one request that the access log and metrics need.
#[derive(Debug)]
pub struct AccessRecord {
    pub method: Method,
    /// The path only: query strings can carry secrets and never reach the log.
    pub path: String,
    pub status: u16,
    pub request_id: HeaderValue,
    pub started: Instant,
    pub upstream_time: Option<Duration>,
    pub bytes: u64,
    /// What the policy decided (the route and the caller), when it was asked.
    pub decision: Option<DecisionEvent>,
    /// The request's server span, ended with the record (`telemetry.otlp` only).
    pub trace: Option<opentelemetry::Context>,
    /// Its trace id, for the log lines.
    pub trace_id: Option<String>,
    /// Keeps the connection counted as busy until the response has been sent.
    pub active: Option<ActiveRequest>,
}

impl AccessRecord {
    pub fn start(method: Method, path: &str, request_id: HeaderValue) -> Self {
        telemetry::request_started();
        Self {
            method,
            path: path.to_owned(),
            status: 0,
            request_id,
            started: Instant::now(),
            upstream_time: None,
            bytes: 0,
            decision: None,
            trace: None,
            trace_id: None,
            active: None,
        }
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        telemetry::request_finished(self);
    }
}

pin_project! {
    /// A body that records its request when it ends.
    pub struct Metered<B> {
        #[pin]
        inner: B,
        record: Option<AccessRecord>,
    }
}

impl<B> Metered<B> {
    pub fn new(inner: B, record: AccessRecord) -> Self {
        Self {
            inner,
            record: Some(record),
        }
    }
}

impl<B> Metered<B> {
    /// Holds the connection's in-flight marker until this body ends.
    pub fn hold(&mut self, active: ActiveRequest) {
        if let Some(record) = self.record.as_mut() {
            record.active = Some(active);
        }
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for Metered<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(record)) = (frame.data_ref(), this.record.as_mut()) {
                    record.bytes += data.len() as u64;
                }
            }
            // The end of the body (or its failure) ends the request: record it now rather than
            // whenever the connection gets around to dropping the body.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => drop(this.record.take()),
            Poll::Pending => {}
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
