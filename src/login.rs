//! Browser login: the OIDC authorization-code flow with PKCE, `state` and `nonce`; sessions in
//! a sealed cookie; refresh once per session; and the endpoints under the prefix (`/oauth2`):
//! `start`, `callback`, `sign_out` here, `userinfo` and `auth` answered from what the stack
//! authenticated.
//!
//! Depends on `auth` (the one token verifier, for ID tokens too) and `config`; never on the
//! server or the proxy.

mod answers;
pub mod cookie;
mod dev;
mod oidc;
mod pages;
mod redirect;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use oauth2::url::form_urlencoded;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::auth::jwks::Jwks;
use crate::auth::jwt::{Expectations, TokenError, system_clock, verify_signed};
use crate::auth::{AuthMethod, Principal};
use crate::body::{self, Body};
use crate::config::{JwksSettings, JwksSource, LoginSettings, SessionSettings};
use crate::identity::{IdentityError, IdentityRules};
use crate::secret::Secret;
pub use answers::{auth_answer, userinfo};
pub use cookie::{SealError, Sealer};
pub use dev::DevUser;
pub use oidc::{FlowSecrets, Provider, ProviderError};
pub use pages::LoginFailure;
pub use redirect::RedirectPolicy;

/// More concurrent logins than this per browser, and the oldest is dropped.
const MAX_FLOWS: usize = 4;
/// How long a refresh result is shared with requests that still carry the old cookie.
const REFRESH_MEMORY: Duration = Duration::from_secs(120);

/// What is kept in the session cookie; short keys keep it small.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionData {
    /// Random id of this session (new at every login).
    #[serde(rename = "i")]
    pub id: String,
    #[serde(rename = "s")]
    pub subject: String,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(rename = "r", default)]
    pub roles: Vec<String>,
    /// When the tokens behind the session expire (Unix seconds): refresh after this.
    #[serde(rename = "x")]
    pub expires: u64,
    /// When the session ends whatever happens (Unix seconds).
    #[serde(rename = "l")]
    pub ends: u64,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The ID token, as `id_token_hint` for logout at the provider.
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// A login in progress, in its own short-lived cookie.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    #[serde(rename = "s")]
    state: String,
    #[serde(rename = "n")]
    nonce: String,
    #[serde(rename = "v")]
    verifier: String,
    #[serde(rename = "r")]
    rd: String,
    #[serde(rename = "t")]
    created: u64,
    /// When it started, in nanoseconds: orders flows started within the same second.
    #[serde(rename = "o", default)]
    order: u64,
}

/// The session a request carries.
#[derive(Debug)]
pub enum SessionState {
    None,
    /// Valid; `set_cookies` is non-empty when it was just refreshed.
    Valid {
        principal: Arc<Principal>,
        set_cookies: Vec<HeaderValue>,
    },
    /// It was there but is over (expired, refresh failed, or unreadable): clear it.
    Ended {
        clear_cookies: Vec<HeaderValue>,
    },
}

type RefreshCell = Arc<OnceCell<Option<SessionData>>>;

/// Who signs people in.
enum Backend {
    /// A real OpenID provider, and the key cache for its ID tokens.
    Oidc(Arc<Provider>, Arc<Jwks>),
    /// Dev mode only: a local page where the developer picks a user and roles.
    Dev(Vec<dev::DevUser>),
}

pub struct Login {
    settings: LoginSettings,
    session: SessionSettings,
    sealer: Sealer,
    backend: Backend,
    redirects: RedirectPolicy,
    /// What a session's identity must satisfy, at login and at every restore.
    rules: IdentityRules,
    refreshes: Mutex<HashMap<String, (tokio::time::Instant, RefreshCell)>>,
    clock: fn() -> u64,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// Sets up login; sessions must pass `rules`. `jwks` is the issuer's key cache when it is
    /// also a bearer issuer (one cache per issuer); otherwise a new one is made (run it with
    /// [`Login::jwks`]).
    pub fn new(
        settings: LoginSettings,
        session: SessionSettings,
        rules: IdentityRules,
        jwks: Option<Arc<Jwks>>,
        http: reqwest::Client,
    ) -> Result<Self, String> {
        let secrets: Vec<Secret<String>> = session
            .secrets
            .iter()
            .map(|s| s.read())
            .collect::<Result<_, _>>()?;
        let sealer = Sealer::new(&secrets).map_err(|e| e.to_string())?;
        let client_secret = settings
            .client_secret
            .as_ref()
            .map(|s| s.read())
            .transpose()?;
        let jwks = jwks.unwrap_or_else(|| {
            Jwks::with_source(
                &settings.issuer,
                JwksSource::Discovery,
                JwksSettings::default(),
                http.clone(),
            )
        });
        let provider = Provider::new(settings.clone(), client_secret, http);
        Ok(Self {
            redirects: RedirectPolicy::new(&settings.allowed_redirect_hosts),
            settings,
            session,
            sealer,
            backend: Backend::Oidc(provider, jwks),
            rules,
            refreshes: Mutex::new(HashMap::new()),
            clock: system_clock,
        })
    }

    /// The OpenID provider; `None` in dev mode.
    pub fn provider(&self) -> Option<&Arc<Provider>> {
        match &self.backend {
            Backend::Oidc(provider, _) => Some(provider),
            Backend::Dev(_) => None,
        }
    }

    /// The key cache for ID tokens; `None` in dev mode.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        match &self.backend {
            Backend::Oidc(_, jwks) => Some(jwks),
            Backend::Dev(_) => None,
        }
    }

    /// The endpoint name when `path` (canonical) is one of ours: `start`, `callback`, ...
    pub fn endpoint_name<'a>(&self, path: &'a str) -> Option<&'a str> {
        path.strip_prefix(self.settings.prefix.as_str())?
            .strip_prefix('/')
    }

    pub fn sign_out_path(&self) -> String {
        format!("{}/sign_out", self.settings.prefix)
    }

    fn start_path(&self, rd: &str) -> String {
        let rd: String = form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        format!("{}/start?rd={rd}", self.settings.prefix)
    }

    /// 302 to the login, coming back to `original` (a path with its query) afterwards.
    pub fn redirect_to_login(&self, original: &str) -> Response<Body> {
        redirect(&self.start_path(original), Vec::new())
    }

    /// Removes our cookies (session, chunks, flows) from a request going upstream.
    pub fn strip_cookies(&self, headers: &mut HeaderMap) {
        if !headers.contains_key(header::COOKIE) {
            return;
        }
        let kept: Vec<String> = cookie::all(headers)
            .filter(|(name, _)| !name.starts_with(self.session.cookie_name.as_str()))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        headers.remove(header::COOKIE);
        if !kept.is_empty()
            && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
        {
            headers.insert(header::COOKIE, value);
        }
    }

    /// The session of a request, refreshed when its tokens have expired.
    pub async fn session(&self, headers: &HeaderMap) -> SessionState {
        let name = &self.session.cookie_name;
        let Some(sealed) = cookie::get_chunked(headers, name) else {
            return SessionState::None;
        };
        let clear_cookies = self.clear_session(headers);
        let Some(data) = self.sealer.open::<SessionData>(name, &sealed) else {
            return SessionState::Ended { clear_cookies };
        };
        let now = (self.clock)();
        if now >= data.ends {
            return SessionState::Ended { clear_cookies };
        }
        if now < data.expires {
            return match self.restored(&data) {
                Some(principal) => SessionState::Valid {
                    principal,
                    set_cookies: Vec::new(),
                },
                None => SessionState::Ended { clear_cookies },
            };
        }
        if !self.session.refresh || data.refresh_token.is_none() {
            return SessionState::Ended { clear_cookies };
        }
        let Some(next) = self.refresh_once(&data).await else {
            return SessionState::Ended { clear_cookies };
        };
        match (self.restored(&next), self.session_cookies(&next, headers)) {
            (Some(principal), Ok(set_cookies)) => SessionState::Valid {
                principal,
                set_cookies,
            },
            _ => SessionState::Ended { clear_cookies },
        }
    }

    /// Refreshes a session's tokens once, however many requests ask at the same time: they
    /// all wait for the one refresh and share its result (a rotating refresh token can only
    /// be used once).
    async fn refresh_once(&self, data: &SessionData) -> Option<SessionData> {
        let key = format!("{}:{}", data.id, data.expires);
        let cell = {
            let Ok(mut map) = self.refreshes.lock() else {
                return None;
            };
            map.retain(|_, (at, _)| at.elapsed() < REFRESH_MEMORY);
            map.entry(key)
                .or_insert_with(|| (tokio::time::Instant::now(), Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        cell.get_or_init(|| self.refresh(data)).await.clone()
    }

    async fn refresh(&self, data: &SessionData) -> Option<SessionData> {
        let refresh_token = data.refresh_token.as_deref()?;
        let provider = self.provider()?;
        let tokens = match provider.refresh(refresh_token).await {
            Ok(tokens) => tokens,
            Err(error) => {
                tracing::info!(%error, "session refresh failed; the session ends");
                return None;
            }
        };
        let now = (self.clock)();
        let mut next = data.clone();
        let mut expires = tokens.expires_in.map(|d| now + d.as_secs());
        if let Some(id_token) = &tokens.id_token {
            let claims = match self.verify_id_token(id_token, None).await {
                Ok(claims) => claims,
                Err(error) => {
                    tracing::warn!(%error, "refreshed ID token rejected; the session ends");
                    return None;
                }
            };
            let principal = self.principal_from_claims(claims.0).ok()?;
            if principal.subject != data.subject {
                tracing::warn!("refreshed ID token names another subject; the session ends");
                return None;
            }
            next.roles = principal.roles;
            next.email = principal.email;
            next.id_token = Some(id_token.clone());
            expires = Some(expires.map_or(claims.1, |e| e.min(claims.1)));
        }
        next.refresh_token = tokens.refresh_token.or(next.refresh_token);
        next.expires = expires?.min(data.ends);
        Some(next)
    }

    /// The principal of a session, checked again: the cookie may have been sealed under other
    /// identity rules (`identity.list_format` changed since). `None` ends the session.
    fn restored(&self, data: &SessionData) -> Option<Arc<Principal>> {
        match self.principal(data) {
            Ok(principal) => Some(Arc::new(principal)),
            Err(error) => {
                tracing::warn!(subject = ?data.subject, %error, "session refused: its identity cannot be sent to the app unambiguously; it ends");
                None
            }
        }
    }

    fn principal(&self, data: &SessionData) -> Result<Principal, IdentityError> {
        let principal = Principal {
            subject: data.subject.clone(),
            issuer: self.settings.issuer.clone(),
            email: data.email.clone(),
            roles: data.roles.clone(),
            scopes: Vec::new(),
            claims: Arc::new(
                json!({"sub": data.subject, "email": data.email, "roles": data.roles, "iss": self.settings.issuer}),
            ),
            method: AuthMethod::Session,
        };
        self.rules.check(&principal)?;
        Ok(principal)
    }

    /// The principal of a verified ID token, under the same identity rules as bearer tokens.
    fn principal_from_claims(&self, claims: Map<String, Value>) -> Result<Principal, TokenError> {
        let principal = self
            .settings
            .claims
            .principal(
                Value::Object(claims),
                &self.settings.issuer,
                AuthMethod::Session,
            )
            .map_err(|error| {
                tracing::warn!(%error, "ID token refused");
                TokenError::Claims
            })?;
        if let Err(error) = self.rules.check(&principal) {
            tracing::warn!(subject = ?principal.subject, %error, "ID token refused: its identity cannot be sent to the app unambiguously");
            return Err(TokenError::Claims);
        }
        Ok(principal)
    }

    /// Verifies an ID token: the shared checks (signature, `iss`, `exp`, ...) with `aud` = our
    /// client id, then `azp` and, during login, `nonce`. Returns the claims and `exp`.
    async fn verify_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<(Map<String, Value>, u64), TokenError> {
        let audiences = [self.settings.client_id.clone()];
        let expect = Expectations {
            issuer: &self.settings.issuer,
            audiences: &audiences,
            algorithms: &self.settings.algorithms,
            leeway: self.settings.leeway,
        };
        let jwks = self.jwks().ok_or(TokenError::KeysUnavailable)?;
        let (claims, exp) = verify_signed(token, jwks, expect, (self.clock)()).await?;
        let several_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != self.settings.client_id => return Err(TokenError::Audience),
            None if several_audiences => return Err(TokenError::Audience),
            _ => {}
        }
        if let Some(expected) = nonce {
            let got = claims
                .get("nonce")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if aws_lc_rs::constant_time::verify_slices_are_equal(
                got.as_bytes(),
                expected.as_bytes(),
            )
            .is_err()
            {
                return Err(TokenError::Claims);
            }
        }
        Ok((claims, exp))
    }

    /// `Set-Cookie` values that store `data`, replacing whatever session cookies the request
    /// carried (so no chunk of an older session survives).
    fn session_cookies(
        &self,
        data: &SessionData,
        request: &HeaderMap,
    ) -> Result<Vec<HeaderValue>, SealError> {
        let name = &self.session.cookie_name;
        let sealed = self.sealer.seal(name, data)?;
        let parts = cookie::chunk(name, &sealed)?;
        let max_age = data.ends.saturating_sub((self.clock)());
        let mut cookies: Vec<HeaderValue> = parts
            .iter()
            .filter_map(|(n, v)| set_cookie(n, v, max_age))
            .collect();
        for (old, _) in cookie::all(request) {
            if cookie::is_family(old, name) && !parts.iter().any(|(n, _)| n == old) {
                cookies.extend(set_cookie(old, "", 0));
            }
        }
        Ok(cookies)
    }

    fn clear_session(&self, request: &HeaderMap) -> Vec<HeaderValue> {
        cookie::all(request)
            .filter(|(n, _)| cookie::is_family(n, &self.session.cookie_name))
            .filter_map(|(n, _)| set_cookie(n, "", 0))
            .collect()
    }

    fn flow_prefix(&self) -> String {
        format!("{}_flow_", self.session.cookie_name)
    }

    /// Answers `start`, `callback` and `sign_out`; `None` for other names.
    pub async fn flow_endpoint(
        &self,
        name: &str,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        host: Option<&str>,
    ) -> Option<Response<Body>> {
        if method != Method::GET && method != Method::HEAD {
            return match name {
                "start" | "callback" | "sign_out" => Some(status(StatusCode::METHOD_NOT_ALLOWED)),
                _ => None,
            };
        }
        let params: HashMap<String, String> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        match name {
            "start" => Some(self.start(params.get("rd").map(String::as_str), headers, host)),
            "callback" => Some(self.callback(&params, headers).await),
            "dev_login" => match &self.backend {
                Backend::Dev(_) => Some(dev::finish(self, &params, headers)),
                Backend::Oidc(..) => None,
            },
            "sign_out" => Some(
                self.sign_out(params.get("rd").map(String::as_str), headers, host)
                    .await,
            ),
            _ => None,
        }
    }

    fn start(&self, rd: Option<&str>, headers: &HeaderMap, host: Option<&str>) -> Response<Body> {
        // Only a navigation starts a login: an image, script or fetch must not create flows.
        let mode = headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok());
        if mode.is_some_and(|m| m != "navigate") {
            return status(StatusCode::FORBIDDEN);
        }
        let rd = rd
            .and_then(|rd| self.redirects.check(rd, host))
            .unwrap_or_else(|| "/".to_owned());
        let secrets = FlowSecrets::new();
        let (Some(id), Some(nonce)) = (random_hex(8), random_hex(16)) else {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let state = format!("{id}.{nonce}");
        let url = match &self.backend {
            Backend::Oidc(provider, _) => match provider.authorize_url(&state, &secrets) {
                Ok(url) => Some(url),
                Err(error) => {
                    tracing::warn!(%error, "cannot start a login");
                    return pages::login_error(LoginFailure::Unavailable, &self.start_path(&rd));
                }
            },
            Backend::Dev(_) => None,
        };
        let flow = Flow {
            state: state.clone(),
            nonce: secrets.nonce,
            verifier: secrets.verifier,
            rd,
            created: (self.clock)(),
            order: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        };
        let name = format!("{}{id}", self.flow_prefix());
        let Ok(sealed) = self.sealer.seal(&name, &flow) else {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let mut cookies: Vec<HeaderValue> =
            set_cookie(&name, &sealed, self.session.flow_timeout.as_secs())
                .into_iter()
                .collect();
        cookies.extend(self.excess_flows(headers));
        match (&self.backend, url) {
            (Backend::Dev(users), _) => with_cookies(dev::page(self, users, &flow.state), &cookies),
            (Backend::Oidc(..), Some(url)) => redirect(&url, cookies),
            (Backend::Oidc(..), None) => status(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// Expiring cookies for the oldest flows when a browser has too many logins in progress.
    fn excess_flows(&self, headers: &HeaderMap) -> Vec<HeaderValue> {
        let prefix = self.flow_prefix();
        let mut flows: Vec<((u64, u64), &str)> = cookie::all(headers)
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(n, v)| {
                let age = self
                    .sealer
                    .open::<Flow>(n, v)
                    .map_or((0, 0), |f| (f.created, f.order));
                (age, n)
            })
            .collect();
        flows.sort_unstable();
        let excess = (flows.len() + 1).saturating_sub(MAX_FLOWS);
        flows
            .iter()
            .take(excess)
            .filter_map(|(_, n)| set_cookie(n, "", 0))
            .collect()
    }

    /// The flow a login answer belongs to, by its `state`: the flow cookie must exist, open,
    /// hold exactly this state (compared in constant time) and be recent. Also returns the
    /// cookie that removes it, which every outcome sends.
    #[allow(clippy::type_complexity)]
    fn take_flow(
        &self,
        state: &str,
        headers: &HeaderMap,
    ) -> Result<(Flow, Vec<HeaderValue>), (LoginFailure, Vec<HeaderValue>)> {
        let Some((id, _)) = state
            .split_once('.')
            .filter(|(id, _)| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return Err((LoginFailure::StateMismatch, Vec::new()));
        };
        let name = format!("{}{id}", self.flow_prefix());
        let clear_flow: Vec<HeaderValue> = set_cookie(&name, "", 0).into_iter().collect();
        let Some(flow) =
            cookie::get(headers, &name).and_then(|v| self.sealer.open::<Flow>(&name, v))
        else {
            return Err((LoginFailure::Expired, clear_flow));
        };
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            flow.state.as_bytes(),
            state.as_bytes(),
        )
        .is_err()
        {
            return Err((LoginFailure::StateMismatch, clear_flow));
        }
        if (self.clock)() > flow.created + self.session.flow_timeout.as_secs() {
            return Err((LoginFailure::Expired, clear_flow));
        }
        Ok((flow, clear_flow))
    }

    async fn callback(
        &self,
        params: &HashMap<String, String>,
        headers: &HeaderMap,
    ) -> Response<Body> {
        let retry = self.start_path("/");
        let state = params.get("state").map(String::as_str).unwrap_or_default();
        let (flow, clear_flow) = match self.take_flow(state, headers) {
            Ok(taken) => taken,
            Err((failure, clear_flow)) => {
                return with_cookies(pages::login_error(failure, &retry), &clear_flow);
            }
        };
        let fail = |failure| with_cookies(pages::login_error(failure, &retry), &clear_flow);
        let Backend::Oidc(provider, _) = &self.backend else {
            return fail(LoginFailure::StateMismatch);
        };
        if let Some(error) = params.get("error") {
            tracing::info!(error = %error, "the provider answered the login with an error");
            return fail(LoginFailure::Provider);
        }
        let Some(code) = params.get("code") else {
            return fail(LoginFailure::StateMismatch);
        };
        let tokens = match provider.exchange(code, &flow.verifier).await {
            Ok(tokens) => tokens,
            Err(error) => {
                tracing::warn!(%error, "code exchange failed");
                return fail(match error {
                    ProviderError::NotReady | ProviderError::Unreachable(_) => {
                        LoginFailure::Unavailable
                    }
                    ProviderError::Refused(_) | ProviderError::Invalid(_) => LoginFailure::Rejected,
                });
            }
        };
        let Some(id_token) = tokens.id_token else {
            tracing::warn!("the token response has no ID token");
            return fail(LoginFailure::Rejected);
        };
        let (claims, id_exp) = match self.verify_id_token(&id_token, Some(&flow.nonce)).await {
            Ok(verified) => verified,
            Err(error) => {
                tracing::warn!(%error, "ID token rejected");
                return fail(LoginFailure::Rejected);
            }
        };
        let Ok(principal) = self.principal_from_claims(claims) else {
            return fail(LoginFailure::Rejected);
        };
        let now = (self.clock)();
        let ends = now + self.session.lifetime.as_secs();
        // Refresh when the access token expires; without one, when the ID token does.
        let expires = tokens.expires_in.map_or(id_exp, |d| now + d.as_secs());
        // A new id at every login: whatever session the browser had before is replaced.
        let Some(id) = random_hex(16) else {
            return fail(LoginFailure::Rejected);
        };
        let data = SessionData {
            id,
            subject: principal.subject,
            email: principal.email,
            roles: principal.roles,
            expires: expires.min(ends),
            ends,
            refresh_token: if self.session.refresh {
                tokens.refresh_token
            } else {
                None
            },
            id_token: Some(id_token),
        };
        let mut cookies = match self.session_cookies(&data, headers) {
            Ok(cookies) => cookies,
            Err(error) => {
                tracing::warn!(%error, "cannot store the session");
                return fail(LoginFailure::Rejected);
            }
        };
        cookies.extend(clear_flow.iter().cloned());
        tracing::info!(subject = %data.subject, "signed in");
        redirect(&flow.rd, cookies)
    }

    async fn sign_out(
        &self,
        rd: Option<&str>,
        headers: &HeaderMap,
        host: Option<&str>,
    ) -> Response<Body> {
        let id_token = cookie::get_chunked(headers, &self.session.cookie_name)
            .and_then(|sealed| {
                self.sealer
                    .open::<SessionData>(&self.session.cookie_name, &sealed)
            })
            .and_then(|data| data.id_token);
        let clear = self.clear_session(headers);
        let end_session = self
            .provider()
            .and_then(|p| p.end_session_url(id_token.as_deref()));
        let target = match end_session {
            Some(url) => url,
            None => rd
                .and_then(|rd| self.redirects.check(rd, host))
                .unwrap_or_else(|| "/".to_owned()),
        };
        redirect(&target, clear)
    }

    /// 403 for a signed-in browser: who they are and what the route needs.
    pub fn forbidden_page(&self, principal: &Principal, needed: &str) -> Response<Body> {
        pages::forbidden(
            &principal.subject,
            &principal.roles,
            needed,
            &self.sign_out_path(),
        )
    }
}

/// Is this request a person's browser navigating (so a login redirect makes sense), rather
/// than a script, an image or an API client?
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    (method == Method::GET || method == Method::HEAD)
        && get("sec-fetch-mode").is_none_or(|m| m == "navigate")
        && get("x-requested-with").is_none()
        && get("accept").is_some_and(|a| a.contains("text/html"))
}

fn set_cookie(name: &str, value: &str, max_age: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    ))
    .ok()
}

fn status(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    response
}

fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response<Body> {
    let mut response = status(StatusCode::FOUND);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_cookies(response, &cookies)
}

pub fn with_cookies(mut response: Response<Body>, cookies: &[HeaderValue]) -> Response<Body> {
    for cookie in cookies {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// Random bytes as hex; `None` if the system's generator fails (then no login can be safe).
fn random_hex(bytes: usize) -> Option<String> {
    use aws_lc_rs::rand::SecureRandom;
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buffer)
        .ok()?;
    Some(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests;
