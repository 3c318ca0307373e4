//! Gatehouse: an auth- and TLS-terminating reverse-proxy sidecar.
//!
//! The crate is a library with a thin `main.rs`. Each module owns one concern; the request
//! pipeline is assembled in [`stack`], in lifecycle order (see `design.md` beside the repo).
//!
//! | module      | owns                                                         |
//! |-------------|--------------------------------------------------------------|
//! | `config`    | the YAML file, its validation and the validated types        |
//! | `tls`       | certificates, SNI selection, hot reload, rustls config       |
//! | `server`    | listeners, connection limits, HTTP/1+2 serving, shutdown     |
//! | `activity`  | per-connection requests in flight, for the idle timeout      |
//! | `stack`     | the per-request pipeline, in lifecycle order                 |
//! | `headers`   | hop-by-hop removal, `X-Forwarded-*`, request ids             |
//! | `framing`   | HTTP/1.1 and HTTP/2 framing rules hyper leaves to us         |
//! | `grpc`      | gRPC requests, `grpc-timeout`, trailers-only answers          |
//! | `path`      | the canonical request path                                   |
//! | `html`      | escaping and the frame of the pages shown to people          |
//! | `identity`  | stripping spoofed identity headers, injecting ours           |
//! | `assertion` | the signed identity assertion and its JWKS                   |
//! | `policy`    | route rules from `policies/`, matching and decisions         |
//! | `cors`      | CORS preflights, allowed origins, CORS headers on denials    |
//! | `auth`      | identity: the `Principal` and claim mapping                  |
//! | `proxy`     | the pooled upstream client, upgrades, upstream errors        |
//! | `compat`    | `compat.oauth2_proxy`: public `/ping` and `/ready`           |
//! | `error`     | the one mapping from errors to HTTP answers                  |
//! | `endpoints` | the axum router of the endpoints under the login prefix       |
//! | `forward_auth` | `/oauth2/auth`: the policy for the request a proxy describes |
//! | `admin`     | `/healthz`, `/readyz`, `/metrics` on the admin listener      |
//! | `telemetry` | logs, access log, metric names                               |
//! | `otel`      | trace context, request spans and their OTLP export           |
//! | `audit`     | the decision event, the audit line and its rate limit        |
//! | `devcerts`  | the local development CA and leaf certificates               |
//! | `devissuer` | the development token issuer (demo and dev tokens only)      |
//! | `devmode`   | `gatehouse dev`: trusted local HTTPS with a dev login page     |
//! | `demo`      | the embedded demo: config and echo upstream                  |
//! | `inspector` | `/.gatehouse/` in demo and dev: recent decisions, live (SSE) |
//! | `migrate`   | `gatehouse migrate oauth2-proxy`: its options to our config   |
//! | `login`     | browser login: OIDC flow, session cookies, `/oauth2/*` pages   |
//! | `redirect`  | where a login may send the browser (`rd=`, allowed hosts)     |
//! | `secret`    | secrets from files or env, redacted in `Debug`               |
//! | `trust`     | the dev CA in and out of system and browser trust stores      |
//! | `reload`    | watching files for changes                                   |

pub mod activity;
pub mod admin;
pub mod assertion;
pub mod audit;
pub mod auth;
pub mod body;
pub mod cli;
pub mod compat;
pub mod config;
pub mod cors;
pub mod demo;
pub mod devcerts;
pub mod devissuer;
pub mod devmode;
pub mod endpoints;
pub mod error;
pub mod forward_auth;
pub mod framing;
pub mod grpc;
pub mod headers;
pub mod html;
pub mod identity;
pub mod inspector;
pub mod login;
pub mod migrate;
pub mod otel;
pub mod path;
pub mod policy;
pub mod proxy;
pub mod redirect;
pub mod reload;
pub mod secret;
pub mod server;
pub mod stack;
pub mod telemetry;
pub mod tls;
pub mod trust;

/// Installs the process-wide crypto providers (aws-lc-rs, for rustls and jsonwebtoken). Call once at the top of `main`;
/// calling it again is harmless.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
