//! `compat.oauth2_proxy: true`: what a deployment built around oauth2-proxy expects besides
//! the `/oauth2/*` endpoints, so that neither the app nor the ingress changes on day one.
//!
//! Here: `/ping` and `/ready` on the public listener (plain-text 200, like oauth2-proxy's),
//! answered for exactly those canonical paths, with no identity and no credential looked at;
//! a path that only resembles them (`/ping/x`, `/pingx`) goes through the policy like any
//! other. The header names (`X-Forwarded-User`/`-Email`/`-Groups`/`-Preferred-Username` to
//! the app) are `identity`'s, switched on by the same key.
//!
//! Depends on `admin` (the one readiness state), nothing else.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::admin::Readiness;
use crate::body::{self, Body};

/// The public probes of `compat.oauth2_proxy`.
#[derive(Debug, Clone)]
pub struct Probes {
    readiness: Arc<Readiness>,
}

impl Probes {
    pub fn new(readiness: Arc<Readiness>) -> Self {
        Self { readiness }
    }

    /// The answer when `canonical` is `/ping` or `/ready`; `None` for every other path.
    /// `/ping` says the process serves; `/ready` is `/readyz`'s decision (503 while waiting
    /// for keys, the Redis store, draining), without its details.
    pub fn answer(&self, method: &Method, canonical: &str) -> Option<Response<Body>> {
        let ready = match canonical {
            "/ping" => true,
            "/ready" => self.readiness.check().is_ok(),
            _ => return None,
        };
        let (status, text) = match (method, ready) {
            (&Method::GET | &Method::HEAD, true) => (StatusCode::OK, "OK"),
            (&Method::GET | &Method::HEAD, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready"),
            _ => (StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        };
        let mut response = Response::new(body::full(text));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_paths_are_answered() {
        let readiness = Readiness::new(["keys"]);
        let probes = Probes::new(readiness.clone());
        assert_eq!(probes.answer(&Method::GET, "/ping").unwrap().status(), 200);
        assert_eq!(probes.answer(&Method::GET, "/ready").unwrap().status(), 503);
        readiness.met("keys");
        assert_eq!(
            probes.answer(&Method::HEAD, "/ready").unwrap().status(),
            200
        );
        assert_eq!(probes.answer(&Method::POST, "/ping").unwrap().status(), 405);
        for other in ["/ping/x", "/pingx", "/ready/", "/", "/PING"] {
            assert!(probes.answer(&Method::GET, other).is_none(), "{other}");
        }
    }
}
