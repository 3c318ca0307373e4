//! The admin listener: `/healthz` (the process answers), `/readyz` (ready for traffic),
//! `/metrics` (Prometheus text), and the identity assertion's keys at
//! `/.well-known/gatehouse/jwks.json` when the assertion is enabled. It binds separately from
//! the public listeners, loopback by default, so health and metrics are never reachable
//! through the public port. The endpoints are an axum [`Router`]; the connections are served
//! by hyper as the public ones are, with a header-read timeout.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State as AxumState;
use axum::routing::{MethodRouter, get};
use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::assertion::{Assertions, JWKS_PATH};
use crate::body::{self, Body};
use crate::telemetry;

/// What `/readyz` reports: ready once every named condition has been met, and not ready again
/// once draining starts.
pub struct Readiness {
    draining: AtomicBool,
    waiting: Mutex<BTreeSet<String>>,
    /// Dependencies checked at every `/readyz`: ready only while each answers true.
    probes: Mutex<Vec<(String, Probe)>>,
}

type Probe = Box<dyn Fn() -> bool + Send + Sync>;

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("draining", &self.draining)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    pub fn new<'a>(conditions: impl IntoIterator<Item = &'a str>) -> Arc<Self> {
        Arc::new(Self {
            draining: AtomicBool::new(false),
            waiting: Mutex::new(conditions.into_iter().map(str::to_owned).collect()),
            probes: Mutex::new(Vec::new()),
        })
    }

    /// Adds a dependency that can go away and come back (the Redis session store): while
    /// `healthy` answers false, `/readyz` says `name` is unavailable.
    pub fn probe(&self, name: &str, healthy: impl Fn() -> bool + Send + Sync + 'static) {
        if let Ok(mut probes) = self.probes.lock() {
            probes.push((name.to_owned(), Box::new(healthy)));
        }
    }

    /// Marks one condition as met.
    pub fn met(&self, condition: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(condition);
        }
    }

    /// Marks a condition as no longer met (the app stopped serving).
    pub fn unmet(&self, condition: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(condition.to_owned());
        }
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready, otherwise what is missing.
    pub fn check(&self) -> Result<(), String> {
        if self.draining.load(Ordering::SeqCst) {
            return Err("draining".into());
        }
        let down: Vec<String> = match self.probes.lock() {
            Ok(probes) => probes
                .iter()
                .filter(|(_, healthy)| !healthy())
                .map(|(name, _)| name.clone())
                .collect(),
            Err(_) => return Err("internal error".into()),
        };
        if !down.is_empty() {
            return Err(format!("{} unavailable", down.join(", ")));
        }
        match self.waiting.lock() {
            Ok(waiting) if waiting.is_empty() => Ok(()),
            Ok(waiting) => Err(format!(
                "waiting for {}",
                waiting.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            Err(_) => Err("internal error".into()),
        }
    }
}

/// Serves the admin endpoints until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    readiness: Arc<Readiness>,
    assertions: Option<Arc<Assertions>>,
) {
    let service = TowerToHyperService::new(router(readiness, assertions));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The admin endpoints as a router; other issues add theirs here. `GET` routes answer
/// `HEAD` too; any other method is 405 and any other path 404, as plain text.
pub fn router(readiness: Arc<Readiness>, assertions: Option<Arc<Assertions>>) -> Router {
    let only_get = |route: MethodRouter<State>| route.fallback(not_get);
    let mut router = Router::new()
        .route("/healthz", only_get(get(healthz)))
        .route("/readyz", only_get(get(readyz)))
        .route("/metrics", only_get(get(metrics)));
    if assertions.is_some() {
        router = router.route(JWKS_PATH, only_get(get(jwks)));
    }
    router.fallback(nowhere).with_state(State {
        readiness,
        assertions,
    })
}

#[derive(Clone)]
struct State {
    readiness: Arc<Readiness>,
    assertions: Option<Arc<Assertions>>,
}

async fn healthz() -> AdminResponse {
    text(StatusCode::OK, "ok\n".into())
}

async fn readyz(AxumState(state): AxumState<State>) -> AdminResponse {
    match state.readiness.check() {
        Ok(()) => text(StatusCode::OK, "ready\n".into()),
        Err(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics() -> AdminResponse {
    let mut response = text(StatusCode::OK, telemetry::render_metrics());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn jwks(AxumState(state): AxumState<State>) -> AdminResponse {
    match &state.assertions {
        Some(assertions) => jwks_answer(assertions).map(axum::body::Body::new),
        None => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

async fn not_get() -> AdminResponse {
    text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into())
}

/// No such endpoint; a method other than `GET` or `HEAD` is refused first, as it always was.
async fn nowhere(method: Method) -> AdminResponse {
    match method {
        Method::GET | Method::HEAD => text(StatusCode::NOT_FOUND, "not found\n".into()),
        _ => not_get().await,
    }
}

type AdminResponse = Response<axum::body::Body>;

/// The assertion keys as a JWKS, cacheable for half a ttl (see `assertion`).
pub fn jwks_answer(assertions: &Assertions) -> Response<Body> {
    let mut response = Response::new(body::full(assertions.jwks().to_string()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    if let Ok(value) = HeaderValue::try_from(format!("max-age={}", assertions.jwks_max_age())) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

fn text(status: StatusCode, body: String) -> AdminResponse {
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_all_conditions_met_and_not_draining() {
        let readiness = Readiness::new(["listeners", "certificates"]);
        assert_eq!(
            readiness.check(),
            Err("waiting for certificates, listeners".into())
        );
        readiness.met("listeners");
        readiness.met("certificates");
        assert_eq!(readiness.check(), Ok(()));
        readiness.unmet("listeners");
        assert_eq!(readiness.check(), Err("waiting for listeners".into()));
        readiness.met("listeners");
        readiness.start_draining();
        assert_eq!(readiness.check(), Err("draining".into()));
    }
}
