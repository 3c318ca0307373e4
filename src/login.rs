//! Browser login: the OIDC authorization-code flow with PKCE, `state` and `nonce`; sessions in
//! a sealed cookie; refresh once per session; and the endpoints under the prefix (`/oauth2`):
//! `start`, `callback`, `sign_out` here, `userinfo` and `auth` answered from what the stack
//! authenticated. `endpoints` routes the requests to them and reads their parameters.
//!
//! Depends on `auth` (the one token verifier, for ID tokens too) and `config`; never on the
//! server or the proxy.

mod answers;
mod backchannel;
pub mod cookie;
mod dev;
mod oidc;
mod pages;
mod session;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use oauth2::url::form_urlencoded;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::jwks::Jwks;
use crate::auth::jwt::{Expectations, TokenError, system_clock, verify_signed};
use crate::auth::{AuthMethod, Principal};
use crate::body::{self, Body};
pub use crate::config::DevUser;
use crate::config::{
    JwksSettings, JwksSource, LoginSettings, SessionSettings, SessionStore as SessionStoreSettings,
};
use crate::identity::IdentityRules;
pub use crate::redirect::{Origin, RedirectPolicy};
use crate::secret::Secret;
pub use answers::{auth_answer, userinfo};
pub use cookie::{SealError, Sealer};
pub use dev::DevChoice;
pub use oidc::{FlowSecrets, Provider, ProviderError};
pub use pages::LoginFailure;
use session::{CreateError, OpenedCache, RefreshCell, Store, kept_claims};
pub use session::{SessionData, SessionMemo, SessionState};
use store::RedisStore;

/// More concurrent logins than this per browser, and the oldest is dropped.
const MAX_FLOWS: usize = 4;

/// The query of `<prefix>/callback`: the provider's `code` or `error`, and our `state`.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    /// The provider's issuer (RFC 9207), which some providers add to their answer: it must
    /// be the issuer the login was started at.
    pub iss: Option<String>,
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
    /// The provider the login was started at (by name); the code is redeemed there only.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
}

/// One OpenID provider people may sign in with, and the key cache for its ID tokens.
pub struct Idp {
    provider: Arc<Provider>,
    jwks: Arc<Jwks>,
}

impl Idp {
    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    pub fn jwks(&self) -> &Arc<Jwks> {
        &self.jwks
    }

    pub fn settings(&self) -> &LoginSettings {
        self.provider.settings()
    }

    pub fn name(&self) -> &str {
        &self.settings().name
    }
}

/// Who signs people in.
enum Backend {
    /// Real OpenID providers, in the order configured (never empty).
    Oidc(Vec<Idp>),
    /// Dev mode only: a local page where the developer picks a user and roles.
    Dev(Vec<DevUser>),
}

pub struct Login {
    /// The first provider's settings: the shared ones (`prefix`, redirects, tokens for the
    /// app) are the same in every provider.
    settings: LoginSettings,
    session: SessionSettings,
    /// Seals cookies and tags Redis indexes; replaced when the secret files change.
    keys: ArcSwap<Sealer>,
    store: Store,
    backend: Backend,
    redirects: RedirectPolicy,
    /// What a session's identity must satisfy, at login and at every restore.
    rules: IdentityRules,
    refreshes: Mutex<HashMap<String, (tokio::time::Instant, RefreshCell)>>,
    /// Cookie sessions opened before (see [`session::Opened`]); emptied when the session
    /// secrets change, so a cookie sealed under a removed secret stops opening at once.
    opened: OpenedCache,
    clock: fn() -> u64,
    /// The large-cookie warning is logged once.
    warned_large: AtomicBool,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// Sets up login with one or more providers; sessions must pass `rules`. Each comes with
    /// its issuer's key cache when that is also a bearer issuer (one cache per issuer);
    /// otherwise a new one is made (run it: [`Login::idps`]).
    pub fn new(
        providers: Vec<(LoginSettings, Option<Arc<Jwks>>)>,
        session: SessionSettings,
        rules: IdentityRules,
        http: reqwest::Client,
    ) -> Result<Self, String> {
        let mut idps = Vec::new();
        for (settings, jwks) in providers {
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
            let provider = Provider::new(settings, client_secret, http.clone());
            idps.push(Idp { provider, jwks });
        }
        let first = idps
            .first()
            .map(|idp| idp.settings().clone())
            .ok_or("login names no provider")?;
        Self::assemble(first, session, Backend::Oidc(idps), rules)
    }

    fn assemble(
        settings: LoginSettings,
        session: SessionSettings,
        backend: Backend,
        rules: IdentityRules,
    ) -> Result<Self, String> {
        let sealer = read_sealer(&session)?;
        let store = match &session.store {
            SessionStoreSettings::Cookie => Store::Cookie,
            SessionStoreSettings::Redis(redis) => Store::Redis(RedisStore::new(redis.clone())?),
        };
        Ok(Self {
            redirects: RedirectPolicy::new(&settings.allowed_redirect_hosts),
            settings,
            session,
            keys: ArcSwap::from_pointee(sealer),
            store,
            backend,
            rules,
            refreshes: Mutex::new(HashMap::new()),
            opened: OpenedCache::new(),
            clock: system_clock,
            warned_large: AtomicBool::new(false),
        })
    }

    fn sealer(&self) -> arc_swap::Guard<Arc<Sealer>> {
        self.keys.load()
    }

    /// The Redis store, when sessions live there.
    pub fn redis(&self) -> Option<&Arc<RedisStore>> {
        match &self.store {
            Store::Redis(store) => Some(store),
            Store::Cookie => None,
        }
    }

    /// Files whose change means new secrets: session secrets, the client secret, Redis
    /// credentials.
    pub fn secret_files(&self) -> Vec<std::path::PathBuf> {
        let mut files: Vec<std::path::PathBuf> = self
            .session
            .secrets
            .iter()
            .filter_map(|s| s.file().map(std::path::Path::to_path_buf))
            .collect();
        for idp in self.idps() {
            if let Some(file) = idp.settings().client_secret.as_ref().and_then(|s| s.file()) {
                files.push(file.to_path_buf());
            }
        }
        if let Some(store) = self.redis() {
            files.extend(store.credential_files());
        }
        files
    }

    /// Reads the secrets again (their files changed): the first session secret seals from
    /// now on, all open; the provider gets the new client secret; Redis connections are made
    /// anew with the new password. A secret that cannot be read keeps the old one.
    pub fn reload_secrets(&self) {
        let mut ok = true;
        match read_sealer(&self.session) {
            Ok(sealer) => {
                self.keys.store(Arc::new(sealer));
                self.opened.clear();
            }
            Err(error) => {
                ok = false;
                tracing::warn!(%error, "session secrets not reloaded; the previous ones stay")
            }
        }
        for idp in self.idps() {
            let Some(source) = &idp.settings().client_secret else {
                continue;
            };
            match source.read() {
                Ok(secret) => idp.provider.set_client_secret(secret),
                Err(error) => {
                    ok = false;
                    tracing::warn!(provider = idp.name(), %error, "client secret not reloaded; the previous one stays")
                }
            }
        }
        if let Some(store) = self.redis()
            && let Err(error) = store.reconnect()
        {
            ok = false;
            tracing::warn!(%error, "Redis credentials not reloaded; the previous ones stay");
        }
        // A secret that could not be read counts as a failed reload (`result="error"`).
        crate::telemetry::reloaded("secrets", ok);
        if ok {
            tracing::info!("secrets reloaded");
        }
    }

    /// The OpenID providers, in the order configured; none in dev mode.
    pub fn idps(&self) -> &[Idp] {
        match &self.backend {
            Backend::Oidc(idps) => idps,
            Backend::Dev(_) => &[],
        }
    }

    /// The provider called `name`; `None` (no name: a session sealed before providers had
    /// names) is the first.
    fn idp(&self, name: Option<&str>) -> Option<&Idp> {
        let idps = self.idps();
        match name {
            None => idps.first(),
            Some(name) => idps.iter().find(|idp| idp.name() == name),
        }
    }

    /// The name a Redis index of `base` (`sub`, `sid`) has for a provider's sessions: the
    /// first provider keeps the plain name (as with a single `login`, so adding a provider
    /// later keeps the sessions already open reachable), the others add their own name, so
    /// one provider's back-channel logout never ends another's sessions of the same `sub`.
    fn index_kind(&self, provider: Option<&str>, base: &str) -> String {
        match provider {
            Some(name)
                if self
                    .idps()
                    .first()
                    .is_some_and(|first| first.name() != name) =>
            {
                format!("{base}/{name}")
            }
            _ => base.to_owned(),
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
        self.start_path_at(rd, None)
    }

    /// `<prefix>/start` coming back to `rd`, at `provider` (else the chooser, when there are
    /// several).
    fn start_path_at(&self, rd: &str, provider: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(provider) = provider {
            query.append_pair("provider", provider);
        }
        query.append_pair("rd", rd);
        format!("{}/start?{}", self.settings.prefix, query.finish())
    }

    /// The names of the providers, in order (empty in dev mode).
    pub fn provider_names(&self) -> Vec<&str> {
        self.idps().iter().map(Idp::name).collect()
    }

    /// A redirect to the login, coming back to `original` (a path with its query) afterwards:
    /// 302 for GET and HEAD, 303 for other methods (a form POST), so that the browser
    /// follows with a GET and later fetches `original` with a GET.
    /// With `provider`, the login goes straight to that provider (a route allows only it).
    pub fn redirect_to_login(
        &self,
        original: &str,
        method: &Method,
        provider: Option<&str>,
    ) -> Response<Body> {
        let provider = provider.filter(|_| !self.is_dev());
        let mut response = redirect(&self.start_path_at(original, provider), Vec::new());
        if method != Method::GET && method != Method::HEAD {
            *response.status_mut() = StatusCode::SEE_OTHER;
        }
        response
    }

    /// Removes our cookies (session, chunks, flows) from a request going upstream.
    pub fn strip_cookies(&self, headers: &mut HeaderMap) {
        if !headers.contains_key(header::COOKIE) {
            return;
        }
        let mut kept = String::new();
        for (name, value) in cookie::all(headers)
            .filter(|(name, _)| !name.starts_with(self.session.cookie_name.as_str()))
        {
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.extend([name, "=", value]);
        }
        headers.remove(header::COOKIE);
        if !kept.is_empty()
            && let Ok(value) = HeaderValue::from_str(&kept)
        {
            headers.insert(header::COOKIE, value);
        }
    }

    /// The principal of a verified ID token, under the same identity rules as bearer tokens.
    fn principal_from_claims(
        &self,
        idp: &Idp,
        claims: Map<String, Value>,
    ) -> Result<Principal, TokenError> {
        let settings = idp.settings();
        let principal = settings
            .claims
            .principal(Value::Object(claims), &settings.issuer, AuthMethod::Session)
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
        idp: &Idp,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<(Map<String, Value>, u64), TokenError> {
        let settings = idp.settings();
        let audiences = [settings.client_id.clone()];
        let expect = Expectations {
            issuer: &settings.issuer,
            audiences: &audiences,
            algorithms: &settings.algorithms,
            leeway: settings.leeway,
        };
        let (claims, exp) = verify_signed(token, &idp.jwks, expect, (self.clock)()).await?;
        let several_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != settings.client_id => return Err(TokenError::Audience),
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

    fn flow_prefix(&self) -> String {
        format!("{}_flow_", self.session.cookie_name)
    }

    /// Dev mode: the login is the local user picker, not an OpenID provider.
    pub fn is_dev(&self) -> bool {
        matches!(self.backend, Backend::Dev(_))
    }

    /// The page after a sign-out at the provider.
    pub fn signed_out(&self) -> Response<Body> {
        pages::signed_out(&self.start_path("/"))
    }

    /// The dev login picker's answer; `None` when this is not dev mode.
    pub async fn dev_login(
        &self,
        choice: &DevChoice,
        headers: &HeaderMap,
    ) -> Option<Response<Body>> {
        match &self.backend {
            Backend::Dev(_) => Some(dev::finish(self, choice, headers).await),
            Backend::Oidc(..) => None,
        }
    }

    /// `<prefix>/start`: a new flow, then the provider (or the dev picker). With several
    /// providers and no `provider`, the page where the person chooses one.
    pub fn start(
        &self,
        rd: Option<&str>,
        provider: Option<&str>,
        headers: &HeaderMap,
        origin: Option<&Origin>,
    ) -> Response<Body> {
        // Only a navigation starts a login: an image, script or fetch must not create flows.
        let mode = headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok());
        if mode.is_some_and(|m| m != "navigate") {
            return status(StatusCode::FORBIDDEN);
        }
        let rd = rd
            .and_then(|rd| self.redirects.check(rd, origin))
            .unwrap_or_else(|| "/".to_owned());
        let idp = match (&self.backend, provider) {
            (Backend::Dev(_), _) => None,
            (Backend::Oidc(idps), None) if idps.len() > 1 => {
                let choices: Vec<(String, &str)> = idps
                    .iter()
                    .map(|idp| {
                        (
                            self.start_path_at(&rd, Some(idp.name())),
                            idp.settings().title.as_str(),
                        )
                    })
                    .collect();
                return pages::chooser(&choices);
            }
            (Backend::Oidc(_), name) => match self.idp(name) {
                Some(idp) => Some(idp),
                None => return pages::unknown_provider(&self.start_path(&rd)),
            },
        };
        let secrets = FlowSecrets::new();
        let (Some(id), Some(nonce)) = (random_hex(8), random_hex(16)) else {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let state = format!("{id}.{nonce}");
        let url = match idp {
            Some(idp) => match idp.provider.authorize_url(&state, &secrets) {
                Ok(url) => Some(url),
                Err(error) => {
                    tracing::warn!(provider = idp.name(), %error, "cannot start a login");
                    let retry = self.start_path_at(&rd, Some(idp.name()));
                    return pages::login_error(LoginFailure::Unavailable, &retry);
                }
            },
            None => None,
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
            provider: idp.map(|idp| idp.name().to_owned()),
        };
        let name = format!("{}{id}", self.flow_prefix());
        let Ok(sealed) = self.sealer().seal(&name, &flow) else {
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
                    .sealer()
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
            cookie::get(headers, &name).and_then(|v| self.sealer().open::<Flow>(&name, v))
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

    /// `<prefix>/callback`: the provider's answer to a login.
    pub async fn callback(&self, params: &CallbackParams, headers: &HeaderMap) -> Response<Body> {
        let retry = self.start_path("/");
        let state = params.state.as_deref().unwrap_or_default();
        let (flow, clear_flow) = match self.take_flow(state, headers) {
            Ok(taken) => taken,
            Err((failure, clear_flow)) => {
                return with_cookies(pages::login_error(failure, &retry), &clear_flow);
            }
        };
        let fail = |failure| with_cookies(pages::login_error(failure, &retry), &clear_flow);
        // The flow names its provider; one that is no longer configured cannot finish it.
        let Some(idp) = self
            .idp(flow.provider.as_deref())
            .filter(|_| !self.is_dev())
        else {
            return fail(LoginFailure::Expired);
        };
        if !issuer_matches(idp, params.iss.as_deref()) {
            tracing::warn!(provider = idp.name(), iss = ?params.iss, "the login answer names another issuer than the login was started at: refused (a mix-up)");
            return fail(LoginFailure::StateMismatch);
        }
        if let Some(error) = &params.error {
            tracing::info!(error = %error, "the provider answered the login with an error");
            return fail(LoginFailure::Provider);
        }
        let Some(code) = &params.code else {
            return fail(LoginFailure::StateMismatch);
        };
        let tokens = match idp.provider.exchange(code, &flow.verifier).await {
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
        let (claims, id_exp) = match self
            .verify_id_token(idp, &id_token, Some(&flow.nonce))
            .await
        {
            Ok(verified) => verified,
            Err(error) => {
                tracing::warn!(%error, "ID token rejected");
                return fail(LoginFailure::Rejected);
            }
        };
        let Ok(principal) = self.principal_from_claims(idp, claims.clone()) else {
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
            sid: claims.get("sid").and_then(Value::as_str).map(str::to_owned),
            claims: kept_claims(claims),
            access_token: self.kept_access_token(tokens.access_token),
            provider: Some(idp.name().to_owned()),
        };
        let mut cookies = match self.create_session(&data, headers).await {
            Ok(cookies) => cookies,
            Err(error) => {
                tracing::warn!(%error, "cannot store the session");
                return fail(match error {
                    CreateError::Store(_) => LoginFailure::Unavailable,
                    CreateError::Seal(_) => LoginFailure::Rejected,
                });
            }
        };
        cookies.extend(clear_flow.iter().cloned());
        tracing::info!(subject = %data.subject, provider = idp.name(), "signed in");
        redirect(&flow.rd, cookies)
    }

    /// `<prefix>/sign_out`: ends the session here and, when it can, at the provider.
    pub async fn sign_out(
        &self,
        rd: Option<&str>,
        headers: &HeaderMap,
        origin: Option<&Origin>,
    ) -> Response<Body> {
        let ended = match self.end_session(headers).await {
            Ok(ended) => ended,
            Err(error) => {
                // Clearing the cookie while the session lives on in Redis would only look
                // like a sign-out.
                tracing::warn!(%error, "sign-out refused: the session store is unavailable");
                return pages::store_unavailable();
            }
        };
        if let Some(data) = &ended {
            tracing::info!(subject = %data.subject, "signed out");
        }
        // The provider the session was signed in at; without a session, the only one.
        let idp = match &ended {
            Some(data) => self.idp(data.provider.as_deref()),
            None => self.idps().first().filter(|_| self.idps().len() == 1),
        };
        let provider = idp.map(|idp| &idp.provider);
        let id_token = ended.and_then(|data| data.id_token);
        let clear = self.clear_session(headers);
        if let Some(provider) = provider
            && provider.metadata().is_none()
        {
            tracing::warn!(issuer = %provider.issuer(), "signed out here only: the provider's discovery is not loaded, so its session may still be open");
            let page = pages::signed_out_here_only(&self.start_path("/"), &self.sign_out_path());
            return with_cookies(page, &clear);
        }
        let end_session = provider.and_then(|p| p.end_session_url(id_token.as_deref()));
        let target = match end_session {
            Some(url) => url,
            None => rd
                .and_then(|rd| self.redirects.check(rd, origin))
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

impl Login {
    /// Writes a session's access token for the app, as the login settings ask:
    /// `X-Forwarded-Access-Token` and/or `Authorization: Bearer`. (Client copies of both were
    /// removed before: the first is one of our identity headers, the second is never passed
    /// on a session route unless it is replaced here.)
    pub fn pass_access_token(&self, headers: &mut HeaderMap, token: &str) {
        let Ok(value) = HeaderValue::from_str(token) else {
            tracing::warn!("the session's access token is not a valid header value; not sent");
            return;
        };
        if self.settings.pass_access_token {
            headers.insert("x-forwarded-access-token", value);
        }
        if self.settings.set_authorization
            && let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            headers.insert(header::AUTHORIZATION, bearer);
        }
    }

    /// Does the app get the session's access token (`login.pass_access_token`)?
    pub fn passes_access_token(&self) -> bool {
        self.settings.pass_access_token
    }
}

/// The 503 page for a browser whose session cannot be checked (the store is down).
pub fn store_unavailable_page() -> Response<Body> {
    pages::store_unavailable()
}

pub use backchannel::MAX_BODY as BACKCHANNEL_MAX_BODY;

/// Does the login answer's `iss` (RFC 9207) fit the provider it was started at? Absent is
/// fine unless the provider says it always sends one.
fn issuer_matches(idp: &Idp, iss: Option<&str>) -> bool {
    match iss {
        Some(iss) => iss == idp.settings().issuer,
        None => !idp
            .provider
            .metadata()
            .is_some_and(|m| m.authorization_response_iss_parameter_supported),
    }
}

/// Is this request a person's browser navigating (so a login redirect makes sense), rather
/// than a script, an image or an API client? Any method: a form POST navigates too (its
/// redirect is a 303, see [`Login::redirect_to_login`]).
pub fn is_navigation(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    get("sec-fetch-mode").is_none_or(|m| m == "navigate")
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

fn read_sealer(session: &SessionSettings) -> Result<Sealer, String> {
    let secrets: Vec<Secret<String>> = session
        .secrets
        .iter()
        .map(|s| s.read())
        .collect::<Result<_, _>>()?;
    Sealer::new(&secrets).map_err(|e| e.to_string())
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
