//! Logs and metrics: the log subscriber, the Prometheus recorder, the metric names, and the
//! access-log line.
//!
//! Nothing here sees a header value other than the request id: tokens, cookies and
//! `Authorization` cannot reach a log because they are never handed to this module.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use arc_swap::ArcSwap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::Targets;

use crate::body::AccessRecord;

mod process;

pub const REQUESTS: &str = "gatehouse_requests_total";
pub const REQUEST_DURATION: &str = "gatehouse_request_duration_seconds";
pub const IN_FLIGHT: &str = "gatehouse_requests_in_flight";
pub const UPSTREAM_ERRORS: &str = "gatehouse_upstream_errors_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "gatehouse_tls_handshake_failures_total";
pub const CERT_EXPIRY: &str = "gatehouse_certificate_expiry_seconds";
pub const RELOADS: &str = "gatehouse_reloads_total";
pub const CONNECTIONS: &str = "gatehouse_connections_open";
pub const ACCEPT_ERRORS: &str = "gatehouse_accept_errors_total";
pub const DECISIONS: &str = "gatehouse_decisions_total";
pub const JWKS_FETCHES: &str = "gatehouse_jwks_fetches_total";
pub const JWKS_UNKNOWN_KID: &str = "gatehouse_jwks_unknown_kid_total";
pub const TOKEN_CACHE: &str = "gatehouse_token_cache_total";
pub const REDIS_CALLS: &str = "gatehouse_redis_calls_total";
pub const REDIS_DURATION: &str = "gatehouse_redis_call_duration_seconds";
pub const SESSION_REFRESHES: &str = "gatehouse_session_refreshes_total";
pub const BACKCHANNEL_LOGOUTS: &str = "gatehouse_backchannel_logouts_total";
pub const INTROSPECTIONS: &str = "gatehouse_introspections_total";
pub const INTROSPECTION_CACHE: &str = "gatehouse_introspection_cache_total";
pub const ASSERTIONS: &str = "gatehouse_assertions_total";
pub const OTLP_SPANS: &str = "gatehouse_otlp_spans_total";
pub const BUILD_INFO: &str = "gatehouse_build_info";
pub const UPSTREAM_DURATION: &str = "gatehouse_upstream_duration_seconds";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// `log.audit`: which decisions get an audit line (see `audit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditMode {
    All,
    #[default]
    Denied,
    Off,
}

/// Installs the global log subscriber. `RUST_LOG`, when set, wins over `level`; both take a
/// level or directives like `info,gatehouse=debug`. A second call (tests start many servers in
/// one process) keeps the first subscriber.
pub fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| parse_filter(&v).ok())
        .or_else(|| parse_filter(level).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

/// Parses a log filter: a level (`info`) or directives (`warn,gatehouse=debug`).
pub fn parse_filter(text: &str) -> Result<Targets, String> {
    text.trim().parse::<Targets>().map_err(|e| e.to_string())
}

/// The process-wide Prometheus handle; the recorder is installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        const BUCKETS: [f64; 14] = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(REDIS_DURATION.into()), &BUCKETS))
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(UPSTREAM_DURATION.into()), &BUCKETS)
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then ours stays unused, which
        // shows up as an empty /metrics rather than a crash.
        let _ = metrics::set_global_recorder(recorder);
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Folds recorded histogram samples into their buckets every second. Without it samples
/// pile up between scrapes, without bound when nobody scrapes; between two runs they are held
/// as they came (a heap profile under load, bench/README.md: ~28 bytes a request, so at
/// 40,000 req/s a 5 s period held 5.6 MB; a second holds about 1.1 MB). The fold's work is
/// per sample, so running it more often costs little more.
pub fn spawn_upkeep() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            ticks.tick().await;
            metrics().run_upkeep();
        }
    })
}

/// Renders `/metrics`, refreshing the gauges that depend on the current time.
pub fn render_metrics() -> String {
    let now = unix_now();
    if let Ok(expiries) = CERT_EXPIRIES.lock() {
        for (name, not_after) in expiries.iter() {
            metrics::gauge!(CERT_EXPIRY, "name" => name.clone()).set((not_after - now) as f64);
        }
    }
    let handle = metrics();
    handle.run_upkeep();
    let mut text = handle.render();
    text.push_str(&process::render());
    text
}

/// One Redis call of the session store: `command` (GET, SET, ...), `result` ok, error or
/// timeout.
pub fn redis_call(command: &'static str, result: &'static str, took: Duration) {
    metrics::counter!(REDIS_CALLS, "command" => command, "result" => result).increment(1);
    metrics::histogram!(REDIS_DURATION, "command" => command).record(took.as_secs_f64());
}

/// One session refresh at the provider: `result` ok, ended (the provider refused the refresh
/// token) or later (the provider could not be reached; the session is kept).
pub fn session_refresh(result: &'static str) {
    metrics::counter!(SESSION_REFRESHES, "result" => result).increment(1);
}

/// One back-channel logout request: `result` ok or refused.
pub fn backchannel_logout(result: &'static str) {
    metrics::counter!(BACKCHANNEL_LOGOUTS, "result" => result).increment(1);
}

static CERT_EXPIRIES: Mutex<Vec<(String, i64)>> = Mutex::new(Vec::new());

/// Records the `notAfter` (Unix seconds) of every certificate being served, by its name.
pub fn set_certificate_expiries(expiries: Vec<(String, i64)>) {
    if let Ok(mut slot) = CERT_EXPIRIES.lock() {
        *slot = expiries;
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Handles of the metrics every request touches, resolved once: a registry lookup per request
/// (hashing the name and labels) costs more than the atomic add itself.
struct Handles {
    in_flight: metrics::Gauge,
    duration: metrics::Histogram,
    /// By status class, in the order of [`status_class`].
    requests: [metrics::Counter; 6],
    token_cache: [metrics::Counter; 2],
    /// By the upstream's status class, in the order of [`status_class`].
    upstream: [metrics::Histogram; 6],
    /// Upstream calls that got no answer (class `error`).
    upstream_failed: metrics::Histogram,
}

fn handles() -> &'static Handles {
    static HANDLES: OnceLock<Handles> = OnceLock::new();
    HANDLES.get_or_init(|| {
        // The recorder must exist before handles are taken, or they would be no-ops forever.
        metrics();
        let class = |c: &'static str| metrics::counter!(REQUESTS, "class" => c);
        Handles {
            in_flight: metrics::gauge!(IN_FLIGHT),
            duration: metrics::histogram!(REQUEST_DURATION),
            requests: CLASSES.map(class),
            token_cache: [
                metrics::counter!(TOKEN_CACHE, "result" => "hit"),
                metrics::counter!(TOKEN_CACHE, "result" => "miss"),
            ],
            upstream: CLASSES.map(|c| metrics::histogram!(UPSTREAM_DURATION, "class" => c)),
            upstream_failed: metrics::histogram!(UPSTREAM_DURATION, "class" => "error"),
        }
    })
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

pub fn request_started() {
    handles().in_flight.increment(1.0);
}

/// Writes the access-log line and the request metrics. Called once per request, when its
/// response body ends.
pub fn request_finished(record: &AccessRecord) {
    let elapsed = record.started.elapsed();
    let handles = handles();
    handles.in_flight.decrement(1.0);
    handles.requests[status_class(record.status)].increment(1);
    handles.duration.record(elapsed.as_secs_f64());
    tracing::info!(
        target: "gatehouse::access",
        method = %record.method,
        path = %record.path,
        status = record.status,
        bytes = record.bytes,
        duration_ms = millis(elapsed),
        upstream_ms = record.upstream_time.map(millis),
        request_id = record.request_id.to_str().unwrap_or("-"),
        user = record.decision.as_ref().and_then(|d| d.subject()),
        route = record.decision.as_ref().map(|d| d.route.as_str()),
        trace_id = record.trace_id.as_deref(),
    );
    if let Some(cx) = &record.trace {
        crate::otel::finish_request(
            cx,
            &record.method,
            record.status,
            record.decision.as_ref().map(|d| d.route.as_str()),
        );
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Index into [`CLASSES`].
fn status_class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// The time the upstream took to answer (to its response head), by its status class;
/// `None` when it gave no answer (class `error`; the kind is in
/// `gatehouse_upstream_errors_total`).
pub fn upstream_answered(status: Option<u16>, took: Duration) {
    let handles = handles();
    match status {
        Some(status) => handles.upstream[status_class(status)].record(took.as_secs_f64()),
        None => handles.upstream_failed.record(took.as_secs_f64()),
    }
}

pub fn upstream_error(kind: &'static str) {
    metrics::counter!(UPSTREAM_ERRORS, "kind" => kind).increment(1);
}

pub fn tls_handshake_failed(reason: &'static str) {
    metrics::counter!(TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(1);
}

pub fn reloaded(kind: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!(RELOADS, "kind" => kind, "result" => result).increment(1);
}

/// `kind`: emfile, enfile, enobufs, enomem or other.
pub fn accept_failed(kind: &'static str) {
    metrics::counter!(ACCEPT_ERRORS, "kind" => kind).increment(1);
}

pub fn connection_opened() {
    metrics::gauge!(CONNECTIONS).increment(1.0);
}

pub fn connection_closed() {
    metrics::gauge!(CONNECTIONS).decrement(1.0);
}

/// The outcome of a route decision, for `gatehouse_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow = 0,
    Unauthenticated = 1,
    Forbidden = 2,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
        }
    }
}

/// Counts a decision. Rule names are few and long-lived: their counters are resolved once and
/// kept, so the hot path neither allocates the name nor searches the registry.
pub fn decision(rule: &str, outcome: Outcome) {
    static BY_RULE: OnceLock<ArcSwap<HashMap<String, [metrics::Counter; 3]>>> = OnceLock::new();
    let cache = BY_RULE.get_or_init(|| ArcSwap::from_pointee(HashMap::new()));
    if let Some(counters) = cache.load().get(rule) {
        counters[outcome as usize].increment(1);
        return;
    }
    metrics();
    let counter =
        |o: &'static str| metrics::counter!(DECISIONS, "rule" => rule.to_owned(), "outcome" => o);
    let counters = [
        counter("allow"),
        counter("unauthenticated"),
        counter("forbidden"),
    ];
    counters[outcome as usize].increment(1);
    cache.rcu(|map| {
        let mut map = HashMap::clone(map);
        map.entry(rule.to_owned())
            .or_insert_with(|| counters.clone());
        map
    });
}

pub fn jwks_fetched(issuer: &str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!(JWKS_FETCHES, "issuer" => issuer.to_owned(), "result" => result).increment(1);
}

pub fn jwks_unknown_kid(issuer: &str) {
    metrics::counter!(JWKS_UNKNOWN_KID, "issuer" => issuer.to_owned()).increment(1);
}

/// One identity assertion sent: reused from the cache, or newly signed.
pub fn assertion_signed(cached: bool) {
    let result = if cached { "cached" } else { "signed" };
    metrics::counter!(ASSERTIONS, "result" => result).increment(1);
}

/// The counter of spans by what became of them: `exported`, `failed` (the collector did not
/// take them) or `dropped` (the queue was full).
pub fn otlp_spans(result: &'static str) -> metrics::Counter {
    metrics();
    metrics::counter!(OTLP_SPANS, "result" => result)
}

pub fn token_cache(hit: bool) {
    handles().token_cache[usize::from(!hit)].increment(1);
}

/// Counts one call to an issuer's introspection endpoint by its result: `active`,
/// `inactive`, `refused` (active but not for us), `error` (no answer) or `malformed`.
pub fn introspection(issuer: &str, result: &'static str) {
    metrics::counter!(INTROSPECTIONS, "issuer" => issuer.to_owned(), "result" => result)
        .increment(1);
}

/// The hit and miss counters of an issuer's introspection cache, resolved once.
pub fn introspection_cache_counters(issuer: &str) -> [metrics::Counter; 2] {
    // The recorder must exist before handles are taken, or they would be no-ops forever.
    metrics();
    let counter = |result: &'static str| metrics::counter!(INTROSPECTION_CACHE, "issuer" => issuer.to_owned(), "result" => result);
    [counter("hit"), counter("miss")]
}
