//! Traces: W3C trace context in and out, and the spans of a request, exported over OTLP
//! (`telemetry.otlp`). Absent that section nothing here runs: no header is read or written
//! and no span is made.
//!
//! A request has a server span; authentication, the policy decision and the upstream call
//! (a client span) are its children, and work deep in `auth` (key fetches, introspection,
//! session refresh) opens [`Child`] spans under whatever span is current. The app receives a
//! `traceparent` naming the upstream span. A client's own `traceparent` is adopted only from
//! a trusted peer (or with `trust_client_trace`).
//!
//! Attributes use the semantic-convention names, and never carry a token, a cookie or a
//! query string: only the method, the path, the route name, the status and addresses.

mod export;

use std::sync::Arc;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{
    SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::TelemetrySettings;

pub use export::Exporting;

/// The tracer of a server with `telemetry.otlp`.
#[derive(Debug)]
pub struct Tracing {
    tracer: SdkTracer,
    trust_client: bool,
}

/// The tracer, carried in a [`Context`] so that code far from the stack can open child spans
/// without a global.
#[derive(Debug, Clone)]
struct CarriedTracer(SdkTracer);

/// Starts tracing as `telemetry` asks: `None` when `otlp` is absent. Call within the runtime.
pub fn start(settings: &TelemetrySettings) -> Result<Option<(Arc<Tracing>, Exporting)>, String> {
    let Some(otlp) = &settings.otlp else {
        return Ok(None);
    };
    let (processor, exporting) = export::start(otlp)?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            otlp.sample_ratio,
        ))))
        .with_resource(resource())
        .build();
    let tracer = provider.tracer("gatehouse");
    let tracing = Tracing {
        tracer,
        trust_client: settings.trust_client_trace,
    };
    Ok(Some((Arc::new(tracing), exporting.with_provider(provider))))
}

/// Who is sending the spans.
fn resource() -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder()
        .with_service_name("gatehouse")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The facts of a request its server span starts with.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub headers: &'a HeaderMap,
    pub method: &'a http::Method,
    /// The path without the query.
    pub path: &'a str,
    pub scheme: &'static str,
    pub version: http::Version,
    pub peer: std::net::IpAddr,
    /// The peer is in `trusted_proxies`.
    pub trusted_peer: bool,
}

impl Tracing {
    /// Opens the server span of a request, as a child of the client's trace when that is
    /// believed. The returned context carries the span.
    pub fn request(&self, incoming: &Incoming<'_>) -> Context {
        let parent = if self.trust_client || incoming.trusted_peer {
            TraceContextPropagator::new().extract(&Headers(incoming.headers))
        } else {
            Context::new()
        };
        let attributes = vec![
            KeyValue::new("http.request.method", incoming.method.as_str().to_owned()),
            KeyValue::new("url.path", incoming.path.to_owned()),
            KeyValue::new("url.scheme", incoming.scheme),
            KeyValue::new("network.protocol.version", protocol(incoming.version)),
            KeyValue::new("client.address", incoming.peer.to_string()),
        ];
        let span = self
            .tracer
            .span_builder(incoming.method.as_str().to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        parent
            .with_span(span)
            .with_value(CarriedTracer(self.tracer.clone()))
    }
}

/// Ends the server span of `cx`: its name becomes `METHOD route` when a route decided.
pub fn finish_request(cx: &Context, method: &http::Method, status: u16, route: Option<&str>) {
    let span = cx.span();
    if let Some(route) = route {
        span.update_name(format!("{method} {route}"));
        span.set_attribute(KeyValue::new("gatehouse.route", route.to_owned()));
    }
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    if status >= 500 {
        span.set_status(Status::error(""));
    }
    span.end();
}

/// The trace id of `cx`, as the 32 hex digits logs show.
pub fn trace_id(cx: &Context) -> String {
    cx.span().span_context().trace_id().to_string()
}

/// A span under the span of a context; ended when dropped.
#[derive(Debug)]
pub struct Child(Context);

impl Child {
    /// A child of the span in `parent`, when `parent` carries a tracer.
    pub fn of(parent: &Context, name: &'static str, kind: SpanKind) -> Option<Self> {
        let tracer = parent.get::<CarriedTracer>()?;
        let span = tracer
            .0
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(&tracer.0, parent);
        Some(Self(parent.with_span(span)))
    }

    /// A child of the current span (see [`opentelemetry::context::FutureExt`]), when there
    /// is one: for code that is not handed a context.
    pub fn current(name: &'static str) -> Option<Self> {
        Self::of(&Context::current(), name, SpanKind::Internal)
    }

    pub fn context(&self) -> &Context {
        &self.0
    }

    pub fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.0.span().set_attribute(KeyValue::new(key, value));
    }

    pub fn fail(&self, why: &'static str) {
        self.0.span().set_status(Status::error(why));
    }

    /// Writes `traceparent` (and `tracestate`) naming this span, replacing any copies.
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.remove(TRACEPARENT);
        headers.remove(TRACESTATE);
        TraceContextPropagator::new().inject_context(&self.0, &mut HeadersMut(headers));
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.0.span().end();
    }
}

/// Runs `future` with `cx` current, so that [`Child::current`] finds it.
pub async fn within<F: Future>(cx: Option<&Context>, future: F) -> F::Output {
    use opentelemetry::context::FutureExt as _;
    match cx {
        Some(cx) => future.with_context(cx.clone()).await,
        None => future.await,
    }
}

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // Two copies of `traceparent` are no trace context at all.
        let mut values = self.0.get_all(key).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        value.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(key),
            http::HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }
}
