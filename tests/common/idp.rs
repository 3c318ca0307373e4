//! A small OpenID provider for the tests: a real HTTP/1.1 server on `127.0.0.1:0` serving
//! `/.well-known/openid-configuration` (issuer `http://127.0.0.1:PORT`) and `/jwks` from a
//! mutable set of public keys. It counts the requests it gets, can answer every request with an
//! error status, can stop listening altogether, and can send `Cache-Control: max-age`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gatehouse::auth::signing::Signer;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{BoxBody, TestServer, full};

#[derive(Default)]
struct State {
    /// Public JWKs currently published.
    keys: Mutex<Vec<Value>>,
    /// When set, every request is answered with this status.
    failing: Mutex<Option<StatusCode>>,
    max_age: Mutex<Option<u64>>,
    discovery_requests: AtomicUsize,
    jwks_requests: AtomicUsize,
}

pub struct Idp {
    pub addr: SocketAddr,
    state: Arc<State>,
    server: TestServer,
}

impl Idp {
    /// Starts an IdP publishing the public keys of `signers`.
    pub async fn start(signers: &[&Signer]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        *state.keys.lock().unwrap() = signers.iter().map(|s| s.jwk()).collect();
        let issuer = format!("http://{addr}");
        let handler_state = state.clone();
        let server = TestServer::start(listener, move |request: Request<Incoming>| {
            let response = answer(&handler_state, &issuer, &request);
            async move { response }
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`: the `iss` of its tokens.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An `issuers:` config block for this IdP (OIDC discovery) accepting `audience`; each of
    /// `extra` is one more key of the issuer entry, e.g. `leeway: 5s`.
    pub fn issuer_yaml(&self, audience: &str, extra: &[&str]) -> String {
        let mut yaml = format!(
            "issuers:\n  - issuer: {}\n    audiences: [{audience}]\n",
            self.issuer()
        );
        for line in extra {
            yaml.push_str(&format!("    {line}\n"));
        }
        yaml
    }

    /// Publishes one more key.
    pub fn add_key(&self, signer: &Signer) {
        self.state.keys.lock().unwrap().push(signer.jwk());
    }

    /// Stops publishing the key with `kid` (the issuer withdrew it).
    pub fn remove_key(&self, kid: &str) {
        self.state
            .keys
            .lock()
            .unwrap()
            .retain(|jwk| jwk["kid"] != kid);
    }

    /// Requests for `/jwks` so far.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    /// Requests for the discovery document so far.
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_requests.load(Ordering::SeqCst)
    }

    /// Answers every request with `status` (e.g. 500 or 503) until [`Idp::recover`].
    pub fn fail_with(&self, status: StatusCode) {
        *self.state.failing.lock().unwrap() = Some(status);
    }

    /// Answers normally again.
    pub fn recover(&self) {
        *self.state.failing.lock().unwrap() = None;
    }

    /// Sends `Cache-Control: max-age=SECONDS` with the key set (none by default).
    pub fn set_max_age(&self, seconds: Option<u64>) {
        *self.state.max_age.lock().unwrap() = seconds;
    }

    /// Stops listening and closes every open connection: from now on connections are refused.
    pub fn stop(&self) {
        self.server.stop();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answer(state: &State, issuer: &str, request: &Request<Incoming>) -> Response<BoxBody> {
    let path = request.uri().path();
    match path {
        "/.well-known/openid-configuration" => {
            state.discovery_requests.fetch_add(1, Ordering::SeqCst);
        }
        "/jwks" => {
            state.jwks_requests.fetch_add(1, Ordering::SeqCst);
        }
        _ => {}
    }
    if let Some(status) = *state.failing.lock().unwrap() {
        return Response::builder()
            .status(status)
            .body(full("unavailable"))
            .unwrap();
    }
    let (body, max_age) = match path {
        "/.well-known/openid-configuration" => (
            json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/jwks"),
                "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            }),
            None,
        ),
        "/jwks" => (
            json!({ "keys": *state.keys.lock().unwrap() }),
            *state.max_age.lock().unwrap(),
        ),
        _ => {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(full("not found"))
                .unwrap();
        }
    };
    let mut response = Response::builder().header(header::CONTENT_TYPE, "application/json");
    if let Some(seconds) = max_age {
        response = response.header(header::CACHE_CONTROL, format!("public, max-age={seconds}"));
    }
    response.body(full(body.to_string())).unwrap()
}
