//! An OpenID provider for browser-login tests: a real HTTP/1.1 server on `127.0.0.1:0` with
//! discovery, `/jwks` (one ES256 key), `/authorize` (signs the configured user in at once and
//! sends the browser back with a code), `/token` (authorization code with PKCE S256, rotating
//! refresh tokens) and `/logout` (the end-session endpoint).
//!
//! It checks what a strict provider checks (single-use codes, PKCE, the client's credentials,
//! the `redirect_uri`), records what it was sent, counts requests, and has switches to
//! misbehave: a failing token endpoint, a wrong `nonce` or `aud` in the ID token, an error
//! instead of a code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse::auth::signing::Signer;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use jsonwebtoken::Algorithm;
use oauth2::url::{Url, form_urlencoded};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{BoxBody, TestServer, full};

/// The client Gatehouse is registered as.
pub const CLIENT_ID: &str = "gatehouse";

/// Lifetime of the ID tokens, in seconds.
pub const ID_TOKEN_TTL: u64 = 300;

/// Who `/authorize` signs in.
#[derive(Debug, Clone)]
pub struct User {
    pub sub: String,
    pub roles: Vec<String>,
    pub email: Option<String>,
    /// The provider's session id, sent as `sid` in ID tokens.
    pub sid: Option<String>,
    /// More claims of the ID token.
    pub extra: serde_json::Map<String, Value>,
}

impl User {
    pub fn new(sub: &str, roles: &[&str]) -> Self {
        Self {
            sub: sub.to_owned(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            email: Some(format!("{sub}@example.com")),
            sid: Some(format!("sid-of-{sub}")),
            extra: serde_json::Map::new(),
        }
    }
}

/// One `/authorize` request, as received.
#[derive(Debug, Clone, Default)]
pub struct Authorization {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    pub nonce: String,
    pub code_challenge: String,
    pub code_challenge_method: String,
    pub scope: String,
}

/// What a code stands for until it is exchanged (once).
struct Grant {
    user: User,
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

/// The switches that make the provider misbehave.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// The token endpoint answers every request with this status.
    token_status: Option<StatusCode>,
    /// `/authorize` sends `error=<this>` back instead of a code.
    authorize_error: Option<String>,
    wrong_nonce: bool,
    wrong_aud: bool,
}

struct State {
    issuer: String,
    signer: Signer,
    client_secret: Mutex<Option<String>>,
    user: Mutex<User>,
    /// `expires_in` of token responses (none when `None`).
    expires_in: Mutex<Option<u64>>,
    end_session: Mutex<bool>,
    /// Discovery answers 503 while set.
    discovery_down: Mutex<bool>,
    /// While true, refresh requests wait before they are answered.
    refreshes_held: watch::Sender<bool>,
    faults: Mutex<Faults>,
    grants: Mutex<HashMap<String, Grant>>,
    /// Refresh tokens that are still valid, each with its user.
    refresh_tokens: Mutex<HashMap<String, User>>,
    /// Every access token issued, in order.
    access_tokens: Mutex<Vec<String>>,
    authorizations: Mutex<Vec<Authorization>>,
    logouts: Mutex<Vec<HashMap<String, String>>>,
    code_exchanges: AtomicUsize,
    refreshes: AtomicUsize,
}

pub struct OidcIdp {
    pub addr: SocketAddr,
    state: Arc<State>,
    server: TestServer,
}

impl OidcIdp {
    /// Starts a provider that signs in `user`. With `client_secret`, the token endpoint
    /// requires it (HTTP Basic or in the body); without, it expects a public client.
    pub async fn start(user: User, client_secret: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            issuer: format!("http://{addr}"),
            signer: Signer::generate(Algorithm::ES256, "oidc-1").unwrap(),
            client_secret: Mutex::new(client_secret.map(str::to_owned)),
            user: Mutex::new(user),
            expires_in: Mutex::new(Some(300)),
            end_session: Mutex::new(true),
            discovery_down: Mutex::new(false),
            refreshes_held: watch::channel(false).0,
            faults: Mutex::new(Faults::default()),
            grants: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(Vec::new()),
            authorizations: Mutex::new(Vec::new()),
            logouts: Mutex::new(Vec::new()),
            code_exchanges: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
        });
        let handler_state = state.clone();
        let server = TestServer::start(listener, move |request: Request<Incoming>| {
            let state = handler_state.clone();
            async move { answer(&state, request).await }
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, the issuer and the base of every endpoint.
    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    /// Signs `claims` with the provider's key (for bearer tokens of the same issuer).
    pub fn sign(&self, claims: &Value) -> String {
        self.state.signer.sign(claims).unwrap()
    }

    /// From now on `/authorize` signs in `user`.
    pub fn set_user(&self, user: User) {
        *self.state.user.lock().unwrap() = user;
    }

    /// `expires_in` of the token responses from now on (`None`: left out).
    pub fn set_expires_in(&self, seconds: Option<u64>) {
        *self.state.expires_in.lock().unwrap() = seconds;
    }

    /// Leaves `end_session_endpoint` out of discovery (read by Gatehouse at start).
    pub fn without_end_session(&self) {
        *self.state.end_session.lock().unwrap() = false;
    }

    /// Discovery answers 503 while `down`.
    pub fn discovery_down(&self, down: bool) {
        *self.state.discovery_down.lock().unwrap() = down;
    }

    /// The token endpoint answers every request with `status` (`None`: normally again).
    pub fn fail_token_endpoint(&self, status: Option<StatusCode>) {
        self.state.faults.lock().unwrap().token_status = status;
    }

    /// `/authorize` answers with `error=<error>` instead of a code (`None`: normally again).
    pub fn deny_authorization(&self, error: Option<&str>) {
        self.state.faults.lock().unwrap().authorize_error = error.map(str::to_owned);
    }

    /// ID tokens carry a nonce other than the one of the authorization request.
    pub fn wrong_nonce(&self, on: bool) {
        self.state.faults.lock().unwrap().wrong_nonce = on;
    }

    /// ID tokens are issued for another client.
    pub fn wrong_audience(&self, on: bool) {
        self.state.faults.lock().unwrap().wrong_aud = on;
    }

    /// Refresh requests wait (counted, unanswered) until [`OidcIdp::release_refreshes`].
    pub fn hold_refreshes(&self) {
        self.state.refreshes_held.send_replace(true);
    }

    pub fn release_refreshes(&self) {
        self.state.refreshes_held.send_replace(false);
    }

    /// Invalidates every refresh token issued so far (as when the user is signed out at the
    /// provider).
    pub fn revoke_refresh_tokens(&self) {
        self.state.refresh_tokens.lock().unwrap().clear();
    }

    /// Every `/authorize` request so far.
    pub fn authorizations(&self) -> Vec<Authorization> {
        self.state.authorizations.lock().unwrap().clone()
    }

    /// Query parameters of every `/logout` request so far.
    pub fn logouts(&self) -> Vec<HashMap<String, String>> {
        self.state.logouts.lock().unwrap().clone()
    }

    /// Token requests with `grant_type=authorization_code` so far.
    pub fn code_exchanges(&self) -> usize {
        self.state.code_exchanges.load(Ordering::SeqCst)
    }

    /// Token requests with `grant_type=refresh_token` so far (successful or not).
    pub fn refreshes(&self) -> usize {
        self.state.refreshes.load(Ordering::SeqCst)
    }

    /// The token endpoint expects this client secret from now on (a rotation at the provider).
    pub fn set_client_secret(&self, secret: &str) {
        *self.state.client_secret.lock().unwrap() = Some(secret.to_owned());
    }

    /// Every access token issued so far, in order.
    pub fn access_tokens(&self) -> Vec<String> {
        self.state.access_tokens.lock().unwrap().clone()
    }

    pub fn stop(&self) {
        self.server.stop();
    }
}

impl Drop for OidcIdp {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(state: &State, request: Request<Incoming>) -> Response<BoxBody> {
    let path = request.uri().path().to_owned();
    let query = query_map(request.uri().query().unwrap_or_default());
    match path.as_str() {
        "/.well-known/openid-configuration" if *state.discovery_down.lock().unwrap() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "down")
        }
        "/.well-known/openid-configuration" => json_response(StatusCode::OK, &discovery(state)),
        "/jwks" => json_response(StatusCode::OK, &state.signer.jwks()),
        "/authorize" => authorize(state, &query),
        "/token" => {
            let authorization = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let form = query_map_bytes(&body);
            if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
                state.refreshes.fetch_add(1, Ordering::SeqCst);
                let mut held = state.refreshes_held.subscribe();
                let _ = held.wait_for(|held| !*held).await;
            }
            token(state, authorization.as_deref(), &form)
        }
        "/logout" => {
            state.logouts.lock().unwrap().push(query.clone());
            match query.get("post_logout_redirect_uri") {
                Some(to) => redirect(to),
                None => text(StatusCode::OK, "signed out"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

fn discovery(state: &State) -> Value {
    let issuer = &state.issuer;
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    if *state.end_session.lock().unwrap() {
        document["end_session_endpoint"] = json!(format!("{issuer}/logout"));
    }
    document
}

fn authorize(state: &State, query: &HashMap<String, String>) -> Response<BoxBody> {
    let get = |name: &str| query.get(name).cloned().unwrap_or_default();
    let request = Authorization {
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        state: get("state"),
        nonce: get("nonce"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        scope: get("scope"),
    };
    state.authorizations.lock().unwrap().push(request.clone());
    let valid = get("response_type") == "code"
        && request.client_id == CLIENT_ID
        && request.code_challenge_method == "S256"
        && !request.code_challenge.is_empty()
        && !request.state.is_empty()
        && request.scope.split(' ').any(|s| s == "openid");
    let Ok(mut back) = Url::parse(&request.redirect_uri) else {
        return text(StatusCode::BAD_REQUEST, "bad redirect_uri");
    };
    if !valid {
        return text(StatusCode::BAD_REQUEST, "invalid authorization request");
    }
    let error = state.faults.lock().unwrap().authorize_error.clone();
    match error {
        Some(error) => {
            back.query_pairs_mut()
                .append_pair("error", &error)
                .append_pair("state", &request.state);
        }
        None => {
            let code = random();
            state.grants.lock().unwrap().insert(
                code.clone(),
                Grant {
                    user: state.user.lock().unwrap().clone(),
                    nonce: request.nonce.clone(),
                    challenge: request.code_challenge.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                },
            );
            back.query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("state", &request.state);
        }
    }
    redirect(back.as_str())
}

fn token(
    state: &State,
    authorization: Option<&str>,
    form: &HashMap<String, String>,
) -> Response<BoxBody> {
    let grant_type = form.get("grant_type").map(String::as_str);
    if grant_type == Some("authorization_code") {
        state.code_exchanges.fetch_add(1, Ordering::SeqCst);
    }
    if let Some(status) = state.faults.lock().unwrap().token_status {
        return text(status, "internal error");
    }
    if !client_authenticated(state, authorization, form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let get = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    match grant_type {
        Some("authorization_code") => {
            // Single use: whatever happens next, the code is gone.
            let Some(grant) = state.grants.lock().unwrap().remove(get("code")) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let digest = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                get("code_verifier").as_bytes(),
            );
            if URL_SAFE_NO_PAD.encode(digest.as_ref()) != grant.challenge
                || get("redirect_uri") != grant.redirect_uri
            {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            tokens(state, &grant.user, Some(&grant.nonce))
        }
        Some("refresh_token") => {
            // Rotating: the token presented is spent, a new one comes back.
            let Some(user) = state
                .refresh_tokens
                .lock()
                .unwrap()
                .remove(get("refresh_token"))
            else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            tokens(state, &user, None)
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

fn client_authenticated(
    state: &State,
    authorization: Option<&str>,
    form: &HashMap<String, String>,
) -> bool {
    let secret = state.client_secret.lock().unwrap().clone();
    let Some(secret) = &secret else {
        return form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && authorization.is_none();
    };
    if let Some(basic) = authorization.and_then(|a| a.strip_prefix("Basic ")) {
        let expected = format!(
            "{}:{}",
            encode(CLIENT_ID),
            form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        return STANDARD.decode(basic).ok() == Some(expected.into_bytes());
    }
    form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret") == Some(secret)
}

/// A token response for `user`; the ID token carries `nonce` when given.
fn tokens(state: &State, user: &User, nonce: Option<&str>) -> Response<BoxBody> {
    let faults = state.faults.lock().unwrap().clone();
    let now = gatehouse::auth::jwt::system_clock();
    let mut claims = json!({
        "iss": state.issuer,
        "aud": if faults.wrong_aud { "someone-else" } else { CLIENT_ID },
        "sub": user.sub,
        "iat": now,
        "exp": now + ID_TOKEN_TTL,
        "roles": user.roles,
    });
    if let Some(email) = &user.email {
        claims["email"] = json!(email);
    }
    if let Some(sid) = &user.sid {
        claims["sid"] = json!(sid);
    }
    for (name, value) in &user.extra {
        claims[name] = value.clone();
    }
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(if faults.wrong_nonce {
            "another-nonce".to_owned()
        } else {
            nonce.to_owned()
        });
    }
    let refresh_token = random();
    state
        .refresh_tokens
        .lock()
        .unwrap()
        .insert(refresh_token.clone(), user.clone());
    let access_token = random();
    state
        .access_tokens
        .lock()
        .unwrap()
        .push(access_token.clone());
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "refresh_token": refresh_token,
        "id_token": state.signer.sign(&claims).unwrap(),
        "scope": "openid profile email",
    });
    if let Some(seconds) = *state.expires_in.lock().unwrap() {
        body["expires_in"] = json!(seconds);
    }
    let mut response = json_response(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
    response
}

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn query_map(query: &str) -> HashMap<String, String> {
    query_map_bytes(query.as_bytes())
}

fn query_map_bytes(bytes: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

fn json_response(status: StatusCode, body: &Value) -> Response<BoxBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

fn oauth_error(status: StatusCode, error: &str) -> Response<BoxBody> {
    json_response(status, &json!({ "error": error }))
}

fn text(status: StatusCode, text: &str) -> Response<BoxBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(full(text.to_owned()))
        .unwrap()
}

fn redirect(location: &str) -> Response<BoxBody> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .body(full(""))
        .unwrap()
}
