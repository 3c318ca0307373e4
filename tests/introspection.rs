//! Opaque access tokens (RFC 7662 introspection) end to end: Gatehouse in-process with a real
//! upstream on `127.0.0.1:0`, and either
//!
//! - `provider`: panva's oidc-provider (node, `common::opaque_idp`) issuing opaque tokens by
//!   the client credentials grant, with introspection and revocation; Gatehouse finds the
//!   endpoint by discovery. Valid tokens, revocation seen after the cache TTL, the provider
//!   stopped, and 1,000 requests with one new token making one introspection.
//! - `rules`: a scripted endpoint (`fake`) whose answer depends on the token, for what a real
//!   provider will not do on request: malformed answers, errors, timeouts, a slow token beside
//!   a fast one, client authentication methods, JWTs that must not be introspected, and logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "introspection/fake.rs"]
mod fake;
#[path = "introspection/provider.rs"]
mod provider;
#[path = "introspection/rules.rs"]
mod rules;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};

use common::*;

/// Bound for every wait on background work.
const WAIT: Duration = Duration::from_secs(30);

/// Routes of every test: `/orders/**` needs scope `orders:read`, the rest any bearer token.
const POLICY: &str = "version: 1
routes:
  - name: orders
    path: /orders/**
    auth: bearer
    require:
      scopes: { all_of: [\"orders:read\"] }
  - name: api
    path: /**
    auth: bearer
";

/// Writes [`POLICY`] over the open policy of `pki`.
fn write_policy(pki: &Pki) {
    std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
}

/// `GET path` with `Authorization: Bearer token`.
fn bearer(path: &str, token: &str) -> Request<BoxBody> {
    Request::get(path)
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .body(empty())
        .unwrap()
}

fn body_text(response: &Response<Bytes>) -> String {
    String::from_utf8_lossy(response.body()).into_owned()
}
