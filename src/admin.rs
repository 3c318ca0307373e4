//! The admin listener: `/healthz` (the process answers), `/readyz` (ready for traffic),
//! `/metrics` (Prometheus text). It binds separately from the public listeners, loopback by
//! default, so health and metrics are never reachable through the public port.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::telemetry;

/// What `/readyz` reports: ready once every named condition has been met, and not ready again
/// once draining starts.
#[derive(Debug)]
pub struct Readiness {
    draining: AtomicBool,
    waiting: Mutex<BTreeSet<String>>,
}

impl Readiness {
    pub fn new<'a>(conditions: impl IntoIterator<Item = &'a str>) -> Arc<Self> {
        Arc::new(Self {
            draining: AtomicBool::new(false),
            waiting: Mutex::new(conditions.into_iter().map(str::to_owned).collect()),
        })
    }

    /// Marks one condition as met.
    pub fn met(&self, condition: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(condition);
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
pub async fn serve(listener: TcpListener, readiness: Arc<Readiness>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = answer(&request, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(request: &Request<Incoming>, readiness: &Readiness) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match readiness.check() {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => {
            let mut response = text(StatusCode::OK, telemetry::render_metrics());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(body::full(body));
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
        readiness.start_draining();
        assert_eq!(readiness.check(), Err("draining".into()));
    }
}
