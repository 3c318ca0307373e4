//! Browser login end to end: Gatehouse in-process, a real upstream, a real OpenID provider
//! (`common::oidc_idp`) and a test browser with a cookie jar (`common::browser`), all on
//! `127.0.0.1:0`. The browser reaches Gatehouse as `https://localhost`, which is also the
//! host of `login.redirect_url`.
//!
//! - `flow`: the login round trip, navigations against scripts, callback failures, tabs,
//!   readiness.
//! - `session`: tampering, expiry, secret rotation, chunked cookies, refresh, fixation.
//! - `identity`: ID tokens and sessions whose identity the app could read two ways.
//! - `endpoints`: open redirects, sign-out, `userinfo` and `auth`, the HTML 403.
//! - `compat`: `compat.oauth2_proxy`'s `/ping`, `/ready` and header names.
//! - `forward_auth`: `/oauth2/auth` behind real nginx and Caddy.
//! - `providers`: several login providers: the chooser, a route's `providers`, mix-ups.
//! - `redis_store`: sessions in a real Redis shared by two replicas.
//! - `polish`: `rd=` origins and ports, the signed-out page, sign-out before discovery, form
//!   POSTs without a session, session-only 401s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "login/compat.rs"]
mod compat;
#[path = "login/endpoints.rs"]
mod endpoints;
#[path = "login/flow.rs"]
mod flow;
#[path = "login/forward_auth.rs"]
mod forward_auth;
#[path = "login/identity.rs"]
mod identity;
#[path = "login/polish.rs"]
mod polish;
#[path = "login/providers.rs"]
mod providers;
#[path = "login/redis_store.rs"]
mod redis_store;
#[path = "login/session.rs"]
mod session;

use std::time::Duration;

use bytes::Bytes;
use gatehouse::login::{Sealer, SessionData};
use gatehouse::secret::Secret;
use gatehouse::server::Running;
use http::Response;
use oauth2::url::form_urlencoded;
use serde_json::Value;

use common::browser::{Browser, FETCH, NAVIGATION, Visit};
use common::oidc_idp::{CLIENT_ID, OidcIdp, User};
use common::*;

/// Bound for every wait on background work and on the clock.
const WAIT: Duration = Duration::from_secs(30);
/// The session cookie (the default name).
const SESSION: &str = "__Host-gatehouse";
/// Login flow cookies start with this.
const FLOW: &str = "__Host-gatehouse_flow_";
const CLIENT_SECRET: &str = "a client secret, as registered at the provider";
/// Where the provider sends the browser back to.
const REDIRECT_URL: &str = "https://localhost/oauth2/callback";

const POLICY: &str = "version: 1
routes:
  - name: home
    paths: [/, /signed-out]
    auth: none
  - name: public
    path: /public/**
    auth: none
  - name: app
    path: /app/**
    auth: session
  - name: admin
    path: /admin/**
    auth: session
    require:
      roles: { any_of: [admin] }
  - name: api
    path: /api/**
    auth: any
  - name: claims
    path: /claims/**
    auth: session
    require:
      claims:
        org: { one_of: [acme] }
  - name: forced
    path: /forced/**
    auth: session
    on_unauthenticated: redirect
  - name: denied
    path: /denied/**
    auth: session
    on_unauthenticated: deny
";

/// How a fixture is configured.
struct Options {
    /// Extra keys of `login:` and `session:` (`key: value` each).
    login: Vec<String>,
    session: Vec<String>,
    /// Session secrets by file name (`a`, `b`, `c`); the first seals.
    secrets: Vec<&'static str>,
    /// No client secret: a public client.
    public_client: bool,
    /// Discovery names an `end_session_endpoint`.
    end_session: bool,
    /// Discovery answers 503 when Gatehouse starts.
    discovery_down: bool,
    /// Also accept the provider's bearer tokens for this audience (`issuers:`).
    bearer_audience: Option<&'static str>,
    /// More top-level YAML, e.g. an `identity:` block.
    extra: &'static str,
    /// Also a plaintext listener (`listen.http`), for a proxy in front.
    plain_http: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            login: Vec::new(),
            session: Vec::new(),
            secrets: vec!["a"],
            public_client: false,
            end_session: true,
            discovery_down: false,
            bearer_audience: None,
            extra: "",
            plain_http: false,
        }
    }
}

/// Gatehouse with [`POLICY`] and login at an [`OidcIdp`] that signs in `alice` (role `dev`).
struct Fixture {
    pki: Pki,
    app: Upstream,
    idp: OidcIdp,
    gh: Running,
    options: Options,
}

impl Fixture {
    async fn start() -> Self {
        Self::with(Options::default()).await
    }

    /// Starts everything and waits until Gatehouse is ready.
    async fn with(options: Options) -> Self {
        let fixture = Self::launch(options).await;
        fixture.wait_ready().await;
        fixture
    }

    /// Starts everything without waiting for readiness.
    async fn launch(options: Options) -> Self {
        let pki = pki();
        std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
        for name in ["a", "b", "c"] {
            let secret = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
            std::fs::write(pki.dir.path().join(format!("secret-{name}")), secret).unwrap();
        }
        std::fs::write(pki.dir.path().join("client-secret"), CLIENT_SECRET).unwrap();
        let app = ok_upstream().await;
        let client_secret = (!options.public_client).then_some(CLIENT_SECRET);
        let idp = OidcIdp::start(User::new("alice", &["dev"]), client_secret).await;
        if !options.end_session {
            idp.without_end_session();
        }
        idp.discovery_down(options.discovery_down);
        let text = config(&pki, &app, &idp, &options, &options.secrets);
        let gh = start(&text).await;
        Self {
            pki,
            app,
            idp,
            gh,
            options,
        }
    }

    async fn wait_ready(&self) {
        wait_ready(&self.gh, WAIT).await;
    }

    /// Starts a new Gatehouse with `secrets` (same everything else), waits until it is ready,
    /// then stops the old one. Browsers need [`Fixture::client`] again.
    async fn restart(&mut self, secrets: &[&'static str]) {
        let text = config(&self.pki, &self.app, &self.idp, &self.options, secrets);
        let old = std::mem::replace(&mut self.gh, start(&text).await);
        self.wait_ready().await;
        old.shutdown();
        assert!(tokio::time::timeout(WAIT, old.stopped()).await.unwrap());
    }

    fn client(&self) -> Client {
        Client::new(self.gh.https_addr.unwrap(), &self.pki.paths.ca_cert)
    }

    /// A browser with an empty jar.
    fn browser(&self) -> Browser {
        Browser::new(self.client(), self.idp.addr)
    }

    /// A sealer with the secrets named.
    fn sealer(&self, secrets: &[&str]) -> Sealer {
        let secrets: Vec<Secret<String>> = secrets
            .iter()
            .map(|name| {
                let path = self.pki.dir.path().join(format!("secret-{name}"));
                Secret::new(std::fs::read_to_string(path).unwrap())
            })
            .collect();
        Sealer::new(&secrets).unwrap()
    }

    /// The browser's session, opened with `secrets`.
    fn session_with(&self, browser: &Browser, secrets: &[&str]) -> Option<SessionData> {
        self.sealer(secrets).open(SESSION, &session_value(browser)?)
    }

    /// The browser's session, opened with every secret.
    fn session(&self, browser: &Browser) -> SessionData {
        self.session_with(browser, &["a", "b", "c"])
            .expect("the browser has a session")
    }

    /// Logs `browser` in by navigating to `path`; checks it lands there with a 200.
    async fn login(&self, browser: &mut Browser, path: &str) -> Visit {
        let visit = browser.visit(path).await;
        assert_eq!(visit.landed(), path, "{:?}", visit.urls);
        assert_eq!(visit.status(), 200, "{}", visit.body());
        assert!(
            visit.went_to(&self.idp.addr.to_string()),
            "{:?}",
            visit.urls
        );
        visit
    }

    /// The last request the upstream saw.
    fn last_seen(&self) -> Seen {
        self.app
            .seen()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }
}

/// The Gatehouse config for a fixture.
fn config(pki: &Pki, app: &Upstream, idp: &OidcIdp, options: &Options, secrets: &[&str]) -> String {
    let dir = pki.dir.path();
    let mut text = format!(
        "login:\n  issuer: {}\n  client_id: {CLIENT_ID}\n  redirect_url: {REDIRECT_URL}\n",
        idp.issuer()
    );
    // `.example.com` unless the options name the hosts themselves.
    if !options
        .login
        .iter()
        .any(|l| l.starts_with("allowed_redirect_hosts:"))
    {
        text += "  allowed_redirect_hosts: [.example.com]\n";
    }
    if !options.public_client {
        text += &format!(
            "  client_secret: {{ file: {} }}\n",
            dir.join("client-secret").display()
        );
    }
    for line in &options.login {
        text += &format!("  {line}\n");
    }
    text += "session:\n  secrets:\n";
    for name in secrets {
        text += &format!(
            "    - {{ file: {} }}\n",
            dir.join(format!("secret-{name}")).display()
        );
    }
    for line in &options.session {
        text += &format!("  {line}\n");
    }
    if let Some(audience) = options.bearer_audience {
        text += &format!(
            "issuers:\n  - issuer: {}\n    audiences: [{audience}]\n",
            idp.issuer()
        );
    }
    text += options.extra;
    let text = config_text(pki, &app.url(), &text);
    match options.plain_http {
        true => text.replacen(
            "  https: 127.0.0.1:0\n",
            "  https: 127.0.0.1:0\n  http: 127.0.0.1:0\n",
            1,
        ),
        false => text,
    }
}

/// The session cookie's sealed value: the cookie itself or its chunks joined.
fn session_value(browser: &Browser) -> Option<String> {
    if let Some(stored) = browser.cookie(SESSION) {
        return Some(stored.value.clone());
    }
    let chunks: Vec<String> = (0..)
        .map_while(|i| browser.cookie(&format!("{SESSION}_{i}")))
        .map(|s| s.value.clone())
        .collect();
    (!chunks.is_empty()).then(|| chunks.concat())
}

/// Names of the session cookie and its chunks in the jar.
fn session_cookies(browser: &Browser) -> Vec<String> {
    browser
        .cookie_names()
        .into_iter()
        .filter(|n| n == SESSION || (n.starts_with(&format!("{SESSION}_")) && !n.starts_with(FLOW)))
        .collect()
}

fn flow_cookies(browser: &Browser) -> usize {
    browser.cookies_starting_with(FLOW).len()
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Where Gatehouse sends a browser to log in before showing `original`.
fn start_url(original: &str) -> String {
    format!("/oauth2/start?rd={}", encode(original))
}

fn location(response: &Response<Bytes>) -> Option<&str> {
    response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap())
}

fn body_text(response: &Response<Bytes>) -> String {
    String::from_utf8_lossy(response.body()).into_owned()
}

fn json_body(response: &Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

fn content_type(response: &Response<Bytes>) -> &str {
    response
        .headers()
        .get("content-type")
        .map_or("", |v| v.to_str().unwrap())
}

/// The `Set-Cookie` lines of a response.
fn set_cookies(response: &Response<Bytes>) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Checks a 401 JSON answer: no redirect, no HTML.
fn assert_401_json(response: &Response<Bytes>, what: &str) {
    assert_eq!(response.status(), 401, "{what}: {}", body_text(response));
    assert!(location(response).is_none(), "{what}: redirected");
    assert!(
        content_type(response).starts_with("application/json"),
        "{what}"
    );
    assert_eq!(json_body(response)["error"], "unauthenticated", "{what}");
}

/// Checks a redirect to the login that comes back to `original`.
fn assert_login_redirect(response: &Response<Bytes>, original: &str, what: &str) {
    assert_eq!(response.status(), 302, "{what}: {}", body_text(response));
    assert_eq!(
        location(response),
        Some(start_url(original).as_str()),
        "{what}"
    );
}

/// Asks `/oauth2/auth` about `original`, as a proxy in front would (the test's connections
/// come from 127.0.0.1: the fixture must trust it, `trusted_proxies: [127.0.0.1/32]`).
async fn ask_forward_auth(browser: &mut Browser, original: &str) -> Response<Bytes> {
    let mut headers = FETCH.to_vec();
    headers.push(("x-forwarded-uri", original));
    browser
        .send(browser.request("/oauth2/auth", &headers))
        .await
}

fn now() -> u64 {
    gatehouse::auth::jwt::system_clock()
}

/// Waits (bounded) until the wall clock reaches `unix_seconds`.
async fn wait_until(unix_seconds: u64) {
    eventually("the clock moves on", WAIT, || async move {
        now() >= unix_seconds
    })
    .await;
}
