//! Bearer JWT authentication end to end: Gatehouse in-process, a real upstream and a real
//! OpenID provider (`common::idp`) on `127.0.0.1:0`, tokens minted with `Signer` and forged by
//! hand. Every refused request is also checked not to have reached the upstream.
//!
//! - `forgery`: `alg: none`, HMAC keyed with the RSA public key, key-carrying headers, zero
//!   signatures.
//! - `claims`: valid tokens and identity headers, time and audience checks, claim types, the
//!   `Authorization` header, 403s, the verified-token cache.
//! - `identity`: list items holding the separator, control characters, roles as one string,
//!   member names given twice.
//! - `keys`: rotation, unknown-`kid` floods, the IdP failing after and before start.
//! - `requests`: identity-header spoofing, path tricks, policy hot reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "jwt/claims.rs"]
mod claims;
#[path = "jwt/forgery.rs"]
mod forgery;
#[path = "jwt/identity.rs"]
mod identity;
#[path = "jwt/keys.rs"]
mod keys;
#[path = "jwt/requests.rs"]
mod requests;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use gatehouse::auth::signing::Signer;
use gatehouse::server::Running;
use http::{Request, Response, StatusCode};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use common::idp::Idp;
use common::*;

/// The audience Gatehouse is configured to accept.
const AUDIENCE: &str = "gatehouse-tests";

/// Bound for every wait on background work (key fetches, reloads).
const WAIT: Duration = Duration::from_secs(30);

/// The policy of most tests.
const POLICY: &str = "version: 1
routes:
  - name: public
    path: /public/**
    auth: none
  - name: admin
    path: /admin/**
    auth: bearer
    require:
      roles: { any_of: [admin] }
  - name: orders-write
    path: /orders/**
    methods: [POST]
    auth: bearer
    require:
      scopes: { all_of: [\"orders:write\"] }
  - name: api
    path: /**
    auth: bearer
";

/// Gatehouse with [`POLICY`], one upstream, and one IdP publishing an RS256, an ES256 and an
/// EdDSA key.
struct Fixture {
    pki: Pki,
    app: Upstream,
    idp: Idp,
    gh: Running,
    client: Client,
    rsa: Signer,
    es: Signer,
    ed: Signer,
}

impl Fixture {
    /// Starts everything and waits until Gatehouse is ready (the IdP's keys are loaded).
    /// `issuer` are extra keys of the issuer entry, `extra` extra top-level YAML.
    async fn start(issuer: &[&str], extra: &str) -> Self {
        let fixture = Self::launch(issuer, extra, None).await;
        wait_ready(&fixture.gh, WAIT).await;
        fixture
    }

    /// Starts everything without waiting; with `idp_failing` the IdP answers every request
    /// with that status from the beginning.
    async fn launch(issuer: &[&str], extra: &str, idp_failing: Option<StatusCode>) -> Self {
        let pki = pki();
        std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
        let app = ok_upstream().await;
        let rsa = Signer::generate(Algorithm::RS256, "rsa-1").unwrap();
        let es = Signer::generate(Algorithm::ES256, "ec-1").unwrap();
        let ed = Signer::generate(Algorithm::EdDSA, "ed-1").unwrap();
        let idp = Idp::start(&[&rsa, &es, &ed]).await;
        if let Some(status) = idp_failing {
            idp.fail_with(status);
        }
        let text = config_text(
            &pki,
            &app.url(),
            &format!("{}{extra}", idp.issuer_yaml(AUDIENCE, issuer)),
        );
        let gh = start(&text).await;
        let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
        Self {
            pki,
            app,
            idp,
            gh,
            client,
            rsa,
            es,
            ed,
        }
    }

    /// Claims of a valid token for `sub` with `roles`, valid for five minutes, with a fresh
    /// `jti` (so no two tokens are alike and the verified-token cache never hides a check).
    fn claims(&self, sub: &str, roles: &[&str]) -> Value {
        let now = now();
        json!({
            "iss": self.idp.issuer(),
            "aud": AUDIENCE,
            "sub": sub,
            "roles": roles,
            "iat": now,
            "exp": now + 300,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// A valid RS256 token for `sub` with `roles`.
    fn token(&self, sub: &str, roles: &[&str]) -> String {
        self.rsa.sign(&self.claims(sub, roles)).unwrap()
    }

    async fn send(&self, request: Request<BoxBody>) -> Response<Bytes> {
        self.client.h1(request).await
    }

    /// Sends `request`, expects `status`, and checks that the upstream did not get it.
    async fn refused(&self, request: Request<BoxBody>, status: u16) -> Response<Bytes> {
        let what = format!("{} {}", request.method(), request.uri());
        let before = self.app.seen().len();
        let response = self.send(request).await;
        assert_eq!(
            response.status(),
            status,
            "{what}: {}",
            body_text(&response)
        );
        assert_eq!(self.app.seen().len(), before, "{what} reached the upstream");
        response
    }

    /// Sends `request`, expects a 401 whose challenge names `reason`.
    async fn unauthorized(&self, request: Request<BoxBody>, reason: &str) {
        let what = format!("{} {}", request.method(), request.uri());
        let response = self.refused(request, 401).await;
        let challenge = challenge(&response);
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains(&format!("error_description=\"{reason}\"")),
            "{what}: expected `{reason}` in `{challenge}`"
        );
    }

    /// Sends `request`, expects a 200 from the upstream, and returns what the upstream saw.
    async fn passes(&self, request: Request<BoxBody>) -> Seen {
        let what = format!("{} {}", request.method(), request.uri());
        let before = self.app.seen().len();
        let response = self.send(request).await;
        assert_eq!(response.status(), 200, "{what}: {}", body_text(&response));
        let seen = self.app.seen();
        assert_eq!(seen.len(), before + 1, "{what}");
        seen[before].clone()
    }
}

fn now() -> u64 {
    gatehouse::auth::jwt::system_clock()
}

/// `METHOD path` with `Host: localhost`, to finish with `.body(empty())`.
fn request(method: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
}

/// `METHOD path` with `Authorization: Bearer token`.
fn with_token(method: &str, path: &str, token: &str) -> Request<BoxBody> {
    request(method, path)
        .header("authorization", format!("Bearer {token}"))
        .body(empty())
        .unwrap()
}

fn challenge(response: &Response<Bytes>) -> String {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn body_text(response: &Response<Bytes>) -> String {
    String::from_utf8_lossy(response.body()).into_owned()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The three parts of a compact JWS.
fn parts(token: &str) -> (String, String, String) {
    let mut parts = token.split('.').map(str::to_owned);
    let header = parts.next().unwrap();
    let payload = parts.next().unwrap();
    let signature = parts.next().unwrap();
    assert!(parts.next().is_none());
    (header, payload, signature)
}

/// The claims of a compact JWS.
fn payload_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts(token).1).unwrap()).unwrap()
}

/// A Prometheus series of the JWKS fetch counter for the fixture's issuer.
fn fetch_series(idp: &Idp, result: &str) -> String {
    format!(
        "gatehouse_jwks_fetches_total{{issuer=\"{}\",result=\"{result}\"}}",
        idp.issuer()
    )
}
