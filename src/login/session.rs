//! Sessions: what one holds, where it is kept (sealed in the cookie, or in Redis behind a
//! ticket), how a request's session is restored, and refresh (once per session, across
//! replicas with the Redis store).
//!
//! Whatever the store, a session that cannot be read because the store is down is
//! [`SessionState::Unavailable`] (503), never "signed out": only a session that is really over
//! (ended, signed out, refused by the provider) clears the cookie.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use super::store::{Index, RedisStore, StoreError, Ticket};
use super::{Login, ProviderError, SealError, Sealer, cookie, random_hex, set_cookie};
use crate::auth::{AuthMethod, Principal};
use crate::identity::IdentityError;
use crate::telemetry;

/// How long a refresh result is shared with requests that still carry the old state.
pub(super) const REFRESH_MEMORY: Duration = Duration::from_secs(120);
/// How long one replica may hold a session's refresh lease (the provider's answer included).
const REFRESH_LEASE: Duration = Duration::from_secs(10);
/// How often a replica waiting for another's refresh looks again.
const REFRESH_POLL: Duration = Duration::from_millis(50);
/// A sealed cookie session larger than this is worth a warning: a few such cookies and a
/// browser refuses the request headers.
const LARGE_COOKIE_SESSION: usize = 3 * 1024;

/// The bytes of sealed cookies the opened-session cache may hold (their values are kept to be
/// compared): about 8,000 sessions of 1 KB.
pub(super) const OPENED_BYTES: u64 = 8 * 1024 * 1024;

/// A cookie session opened before: its principal and access token, until its tokens expire.
/// Opening a sealed cookie (base64, AES-GCM, JSON, the identity rules) costs more than the
/// rest of a request, and a browser sends the same cookie with every request.
///
/// Found by a fast keyed hash of the sealed value (a SHA-256 of a 3 KB cookie costs more
/// than opening it), then the whole value compared in constant time: a hit is only ever the
/// very cookie that was opened, and a collision is a miss.
pub(super) struct Opened {
    sealed: Box<str>,
    principal: Arc<Principal>,
    access_token: Option<String>,
    /// `min(expires, ends)`: past this the session needs a refresh (or is over), so the
    /// cookie is opened again.
    until: u64,
}

pub(super) struct OpenedCache {
    entries: moka::sync::Cache<u64, Arc<Opened>>,
    keys: foldhash::fast::RandomState,
    /// Moves on when the cache is emptied (new session secrets): what a connection remembers
    /// from an earlier epoch ([`SessionMemo`]) is void, and an entry opened under the old
    /// secrets but inserted after the emptying is taken out again.
    epoch: AtomicU64,
}

/// The cookie session last opened on one connection: a keep-alive browser sends the same
/// cookie with every request, and comparing it (in constant time, as the shared cache does)
/// costs less than the keyed hash and the shared cache's lookup (`bench/profile`,
/// `h1-session`).
///
/// A sign-out does not void it: a sealed cookie cannot be revoked (a copy opens again), and
/// the browser that signed out no longer sends it. New session secrets do (the epoch).
#[derive(Default)]
pub struct SessionMemo(std::sync::Mutex<Option<(Arc<Opened>, u64)>>);

impl std::fmt::Debug for SessionMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMemo").finish_non_exhaustive()
    }
}

impl SessionMemo {
    fn recall(&self, sealed: &str, epoch: u64) -> Option<Arc<Opened>> {
        let last = self.0.lock().ok()?;
        let (opened, at) = last.as_ref()?;
        (*at == epoch && same(&opened.sealed, sealed)).then(|| opened.clone())
    }

    fn remember(&self, opened: Arc<Opened>, epoch: u64) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some((opened, epoch));
        }
    }
}

fn same(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

impl OpenedCache {
    pub(super) fn new() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(OPENED_BYTES)
                .weigher(|_, opened: &Arc<Opened>| {
                    u32::try_from(opened.sealed.len() + 256).unwrap_or(u32::MAX)
                })
                .expire_after(UntilRefresh)
                .build(),
            keys: foldhash::fast::RandomState::default(),
            epoch: AtomicU64::new(0),
        }
    }

    /// Read before the session secrets are: see [`OpenedCache::insert`].
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn key(&self, sealed: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.keys, sealed)
    }

    /// The session opened from exactly `sealed`, if this connection or the cache remembers it.
    fn get_on(&self, sealed: &str, memo: &SessionMemo, epoch: u64) -> Option<Arc<Opened>> {
        if let Some(opened) = memo.recall(sealed, epoch) {
            return Some(opened);
        }
        let opened = self.get(sealed)?;
        memo.remember(opened.clone(), epoch);
        Some(opened)
    }

    /// The session opened from exactly `sealed`, if it is remembered.
    fn get(&self, sealed: &str) -> Option<Arc<Opened>> {
        self.entries
            .get(&self.key(sealed))
            .filter(|opened| same(&opened.sealed, sealed))
    }

    /// Remembers a session opened with the secrets as they were at `epoch`; if they changed
    /// meanwhile, the entry is taken out again (the emptying may have run before the insert).
    fn insert(&self, opened: Opened, memo: &SessionMemo, epoch: u64) {
        let key = self.key(&opened.sealed);
        let opened = Arc::new(opened);
        self.entries.insert(key, opened.clone());
        if self.epoch() == epoch {
            memo.remember(opened, epoch);
        } else {
            self.entries.invalidate(&key);
        }
    }

    fn forget(&self, sealed: &str) {
        if self.get(sealed).is_some() {
            self.entries.invalidate(&self.key(sealed));
        }
    }

    /// Every entry, and every connection's memo, when the session secrets change.
    pub(super) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
    }
}

/// Entries live until their session needs a refresh.
struct UntilRefresh;

impl moka::Expiry<u64, Arc<Opened>> for UntilRefresh {
    fn expire_after_create(
        &self,
        _: &u64,
        value: &Arc<Opened>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            value.until.saturating_sub(crate::auth::jwt::system_clock()),
        ))
    }
}

/// What a session holds; short keys keep the cookie store small.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionData {
    /// Random id of this session (new at every login; the Redis entry's name).
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
    /// The ID token's claims (without its housekeeping: `exp`, `nonce`, ...), so that a
    /// policy's `require.claims` works for sessions as for bearer tokens.
    #[serde(rename = "c", default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
    /// The access token, for the app (`login.pass_access_token`, `login.set_authorization`).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The provider's session id (`sid`), for back-channel logout.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The login provider's name (absent: the first, or dev login): refresh, sign-out and
    /// back-channel logout go to it, and a route's `providers` is checked against it.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// ID token claims a session does not keep: they describe the token, not the person.
const HOUSEKEEPING: [&str; 11] = [
    "exp",
    "iat",
    "nbf",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "jti",
    "aud",
    "azp",
    "sid",
];

/// The claims of a verified ID token as a session keeps them.
pub(super) fn kept_claims(mut claims: Map<String, Value>) -> Map<String, Value> {
    for name in HOUSEKEEPING {
        claims.remove(name);
    }
    claims
}

/// The session a request carries.
#[derive(Debug)]
pub enum SessionState {
    None,
    /// Valid; `set_cookies` is non-empty when it was just refreshed (cookie store).
    Valid {
        principal: Arc<Principal>,
        set_cookies: Vec<HeaderValue>,
        /// For the app, when the configuration sends it.
        access_token: Option<String>,
    },
    /// It was there but is over (expired, signed out, refused, unreadable): clear it.
    Ended {
        clear_cookies: Vec<HeaderValue>,
    },
    /// The session store cannot answer: 503, and the cookie stays.
    Unavailable,
}

/// What a refresh came to; shared by every request that waited for it.
#[derive(Debug, Clone)]
pub(super) enum Refreshed {
    New(Box<SessionData>),
    /// The provider refused the refresh token (`invalid_grant`), or the session is gone.
    Ended,
    /// The provider could not be reached: keep the session as it is and try again later.
    Later,
    /// The store is down.
    Unavailable,
}

pub(super) type RefreshCell = Arc<OnceCell<Refreshed>>;

/// Where sessions are kept.
pub(super) enum Store {
    Cookie,
    Redis(Arc<RedisStore>),
}

impl Login {
    /// The session of a request, refreshed when its tokens have expired.
    /// `memo` is the connection's (see [`SessionMemo`]).
    pub async fn session(&self, headers: &HeaderMap, memo: &SessionMemo) -> SessionState {
        match &self.store {
            Store::Cookie => self.cookie_session(headers, memo).await,
            Store::Redis(store) => self.redis_session(store, headers).await,
        }
    }

    async fn cookie_session(&self, headers: &HeaderMap, memo: &SessionMemo) -> SessionState {
        let name = &self.session.cookie_name;
        let Some(sealed) = cookie::get_chunked(headers, name) else {
            return SessionState::None;
        };
        let epoch = self.opened.epoch();
        if let Some(opened) = self.opened.get_on(&sealed, memo, epoch)
            && (self.clock)() < opened.until
        {
            return SessionState::Valid {
                principal: opened.principal.clone(),
                set_cookies: Vec::new(),
                access_token: opened.access_token.clone(),
            };
        }
        let ended = || SessionState::Ended {
            clear_cookies: self.clear_session(headers),
        };
        let Some(data) = self.sealer().open::<SessionData>(name, &sealed) else {
            return ended();
        };
        let refreshed = match self.needs_refresh(&data) {
            Err(()) => return ended(),
            Ok(false) => {
                let state = self.valid(&data, Vec::new(), headers);
                if let SessionState::Valid {
                    principal,
                    access_token,
                    ..
                } = &state
                {
                    self.opened.insert(
                        Opened {
                            sealed: sealed.into_owned().into_boxed_str(),
                            principal: principal.clone(),
                            access_token: access_token.clone(),
                            until: data.expires.min(data.ends),
                        },
                        memo,
                        epoch,
                    );
                }
                return state;
            }
            Ok(true) => self.refresh_once(&data, None).await,
        };
        match refreshed {
            Refreshed::New(next) => match self.session_cookies(&next, headers) {
                Ok(set_cookies) => self.valid(&next, set_cookies, headers),
                Err(_) => ended(),
            },
            Refreshed::Later => self.valid(&data, Vec::new(), headers),
            Refreshed::Ended => ended(),
            Refreshed::Unavailable => SessionState::Unavailable,
        }
    }

    async fn redis_session(&self, store: &Arc<RedisStore>, headers: &HeaderMap) -> SessionState {
        let Some(value) = cookie::get(headers, &self.session.cookie_name) else {
            return SessionState::None;
        };
        let ended = || SessionState::Ended {
            clear_cookies: self.clear_session(headers),
        };
        let Some(ticket) = Ticket::parse(value) else {
            return ended();
        };
        let data = match self.load_ticket(store, &ticket).await {
            Ok(Some(data)) => data,
            Ok(None) => return ended(),
            Err(_) => return SessionState::Unavailable,
        };
        let refreshed = match self.needs_refresh(&data) {
            Err(()) => return ended(),
            Ok(false) => return self.valid(&data, Vec::new(), headers),
            Ok(true) => self.refresh_once(&data, Some((store, &ticket))).await,
        };
        match refreshed {
            // The cookie is the same ticket: nothing to set.
            Refreshed::New(next) => self.valid(&next, Vec::new(), headers),
            Refreshed::Later => self.valid(&data, Vec::new(), headers),
            Refreshed::Ended => ended(),
            Refreshed::Unavailable => SessionState::Unavailable,
        }
    }

    /// The session a ticket opens: `None` when Redis has no such entry or the ticket's key
    /// does not open it (a forged or altered cookie changes nothing in Redis).
    async fn load_ticket(
        &self,
        store: &RedisStore,
        ticket: &Ticket,
    ) -> Result<Option<SessionData>, StoreError> {
        let Some(sealed) = store.load(&ticket.id).await? else {
            return Ok(None);
        };
        let opened = Sealer::for_ticket(&ticket.key, &ticket.id)
            .ok()
            .zip(std::str::from_utf8(&sealed).ok())
            .and_then(|(sealer, text)| {
                sealer.open::<SessionData>(&store.session_key(&ticket.id), text)
            })
            .filter(|data| data.id == ticket.id);
        if opened.is_none() {
            tracing::info!("a session ticket did not open its entry: refused");
        }
        Ok(opened)
    }

    /// `Err` when the session is over, `Ok(true)` when its tokens must be refreshed first.
    fn needs_refresh(&self, data: &SessionData) -> Result<bool, ()> {
        let now = (self.clock)();
        if now >= data.ends {
            return Err(());
        }
        if now < data.expires {
            return Ok(false);
        }
        if !self.session.refresh || data.refresh_token.is_none() {
            return Err(());
        }
        Ok(true)
    }

    /// The state of a session that opened; `request` is for the cookies that clear it should
    /// its identity no longer pass the rules.
    fn valid(
        &self,
        data: &SessionData,
        set_cookies: Vec<HeaderValue>,
        request: &HeaderMap,
    ) -> SessionState {
        match self.restored(data) {
            Some(principal) => SessionState::Valid {
                principal,
                set_cookies,
                access_token: data
                    .access_token
                    .clone()
                    .filter(|_| self.settings.sends_access_token()),
            },
            None => SessionState::Ended {
                clear_cookies: self.clear_session(request),
            },
        }
    }

    /// Refreshes a session's tokens once, however many requests ask at the same time: in this
    /// process they wait for one refresh and share its result; with Redis, replicas take a
    /// short lease so that one of them asks the provider (a rotating refresh token can only be
    /// used once) and the others read what it stored.
    async fn refresh_once(
        &self,
        data: &SessionData,
        redis: Option<(&Arc<RedisStore>, &Ticket)>,
    ) -> Refreshed {
        let key = format!("{}:{}", data.id, data.expires);
        let cell = {
            let Ok(mut map) = self.refreshes.lock() else {
                return Refreshed::Later;
            };
            map.retain(|_, (at, _)| at.elapsed() < REFRESH_MEMORY);
            map.entry(key)
                .or_insert_with(|| (tokio::time::Instant::now(), Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        cell.get_or_init(|| async {
            match redis {
                None => self.refresh(data).await,
                Some((store, ticket)) => self.refresh_shared(store, ticket, data).await,
            }
        })
        .await
        .clone()
    }

    /// One refresh across replicas: take the lease, or wait for whoever has it.
    async fn refresh_shared(
        &self,
        store: &RedisStore,
        ticket: &Ticket,
        data: &SessionData,
    ) -> Refreshed {
        let Some(holder) = random_hex(16) else {
            return Refreshed::Later;
        };
        let deadline = tokio::time::Instant::now() + REFRESH_LEASE;
        loop {
            match store.lock(&ticket.id, &holder, REFRESH_LEASE).await {
                Err(_) => return Refreshed::Unavailable,
                Ok(true) => break,
                Ok(false) => {}
            }
            // Another replica is refreshing: read what it stores.
            tokio::time::sleep(REFRESH_POLL).await;
            match self.load_ticket(store, ticket).await {
                Err(_) => return Refreshed::Unavailable,
                Ok(None) => return Refreshed::Ended,
                Ok(Some(now)) if now.expires > data.expires => {
                    return Refreshed::New(Box::new(now));
                }
                Ok(Some(_)) if tokio::time::Instant::now() >= deadline => {
                    return Refreshed::Later;
                }
                Ok(Some(_)) => {}
            }
        }
        // Ours. Someone may have stored a refresh just before we took the lease.
        let outcome = match self.load_ticket(store, ticket).await {
            Err(_) => Refreshed::Unavailable,
            Ok(None) => Refreshed::Ended,
            Ok(Some(current)) if current.expires > data.expires => {
                Refreshed::New(Box::new(current))
            }
            Ok(Some(current)) => match self.refresh(&current).await {
                Refreshed::New(next) => match self.store_refreshed(store, ticket, &next).await {
                    Ok(true) => Refreshed::New(next),
                    Ok(false) => Refreshed::Ended,
                    Err(_) => Refreshed::Unavailable,
                },
                Refreshed::Ended => match store.delete(std::slice::from_ref(&ticket.id)).await {
                    Ok(()) => Refreshed::Ended,
                    Err(_) => Refreshed::Unavailable,
                },
                other => other,
            },
        };
        if let Err(error) = store.unlock(&ticket.id, &holder).await {
            tracing::debug!(%error, "refresh lease not returned; it runs out by itself");
        }
        outcome
    }

    async fn store_refreshed(
        &self,
        store: &RedisStore,
        ticket: &Ticket,
        next: &SessionData,
    ) -> Result<bool, StoreError> {
        let sealer = Sealer::for_ticket(&ticket.key, &ticket.id)
            .map_err(|e| StoreError::new(e.to_string()))?;
        let sealed = sealer
            .seal(&store.session_key(&ticket.id), next)
            .map_err(|e| StoreError::new(e.to_string()))?;
        store
            .replace(&ticket.id, sealed.as_bytes(), self.remaining(next))
            .await
    }

    /// Asks the provider for new tokens. Only a provider that refuses the refresh token
    /// (`invalid_grant`) ends the session; one that cannot be reached or answers 5xx leaves it
    /// as it is until its hard end, and the next request after [`REFRESH_MEMORY`] tries again.
    pub(super) async fn refresh(&self, data: &SessionData) -> Refreshed {
        let _span = crate::otel::Child::current("session refresh");
        let (Some(refresh_token), Some(idp)) = (
            data.refresh_token.as_deref(),
            self.idp(data.provider.as_deref()),
        ) else {
            return Refreshed::Ended;
        };
        let tokens = match idp.provider.refresh(refresh_token).await {
            Ok(tokens) => tokens,
            Err(ProviderError::Refused(error)) if error == "invalid_grant" => {
                telemetry::session_refresh("ended");
                tracing::info!("the provider refused the refresh token; the session ends");
                return Refreshed::Ended;
            }
            Err(error) => {
                telemetry::session_refresh("later");
                tracing::warn!(%error, "session refresh failed; the session is kept and refreshed later");
                return Refreshed::Later;
            }
        };
        let now = (self.clock)();
        let mut next = data.clone();
        let mut expires = tokens.expires_in.map(|d| now + d.as_secs());
        if let Some(id_token) = &tokens.id_token {
            let (claims, id_exp) = match self.verify_id_token(idp, id_token, None).await {
                Ok(verified) => verified,
                Err(error) => {
                    telemetry::session_refresh("ended");
                    tracing::warn!(%error, "refreshed ID token rejected; the session ends");
                    return Refreshed::Ended;
                }
            };
            let Ok(principal) = self.principal_from_claims(idp, claims.clone()) else {
                return Refreshed::Ended;
            };
            if principal.subject != data.subject {
                tracing::warn!("refreshed ID token names another subject; the session ends");
                return Refreshed::Ended;
            }
            next.roles = principal.roles;
            next.email = principal.email;
            next.claims = kept_claims(claims);
            next.id_token = Some(id_token.clone());
            expires = Some(expires.map_or(id_exp, |e| e.min(id_exp)));
        }
        next.refresh_token = tokens.refresh_token.or(next.refresh_token);
        next.access_token = self.kept_access_token(tokens.access_token);
        let Some(expires) = expires else {
            return Refreshed::Ended;
        };
        next.expires = expires.min(data.ends);
        telemetry::session_refresh("ok");
        Refreshed::New(Box::new(next))
    }

    /// The access token as the session keeps it: always in Redis, in the cookie only when the
    /// app is sent it.
    pub(super) fn kept_access_token(&self, token: String) -> Option<String> {
        let keep = matches!(self.store, Store::Redis(_)) || self.settings.sends_access_token();
        keep.then_some(token)
    }

    /// Stores a new session (at login) and returns the cookies that carry it, replacing
    /// whatever session cookies the request had. With Redis, a session the browser had before
    /// is deleted: a login always starts a new session.
    pub(super) async fn create_session(
        &self,
        data: &SessionData,
        request: &HeaderMap,
    ) -> Result<Vec<HeaderValue>, CreateError> {
        let Store::Redis(store) = &self.store else {
            return self
                .session_cookies(data, request)
                .map_err(CreateError::Seal);
        };
        let ticket = Ticket {
            id: data.id.clone(),
            key: Ticket::new()
                .ok_or(CreateError::Seal(SealError::Crypto))?
                .key,
        };
        let sealed = Sealer::for_ticket(&ticket.key, &ticket.id)
            .and_then(|s| s.seal(&store.session_key(&ticket.id), data))
            .map_err(CreateError::Seal)?;
        let sealer = self.sealer();
        let mut indexes = Vec::new();
        let kind = |base| self.index_kind(data.provider.as_deref(), base);
        if let Some(tag) = sealer.tags(&kind("sub"), &data.subject).into_iter().next() {
            indexes.push((Index::Subject, tag));
        }
        if let Some(sid) = &data.sid
            && let Some(tag) = sealer.tags(&kind("sid"), sid).into_iter().next()
        {
            indexes.push((Index::ProviderSession, tag));
        }
        store
            .create(
                &ticket.id,
                sealed.as_bytes(),
                self.remaining(data),
                &indexes,
            )
            .await
            .map_err(CreateError::Store)?;
        if let Some(old) = cookie::get(request, &self.session.cookie_name).and_then(Ticket::parse)
            && let Err(error) = store.delete(&[old.id]).await
        {
            tracing::warn!(%error, "the session this browser had before could not be deleted");
        }
        let name = &self.session.cookie_name;
        let mut cookies: Vec<HeaderValue> =
            set_cookie(name, &ticket.encode(), self.remaining(data).as_secs())
                .into_iter()
                .collect();
        for (old, _) in cookie::all(request) {
            if cookie::is_family(old, name) && old != name {
                cookies.extend(set_cookie(old, "", 0));
            }
        }
        Ok(cookies)
    }

    /// Ends the session a request carries, in the store too: with Redis, the entry is deleted
    /// and a copy of the cookie is worthless on every replica. Returns the session that was
    /// there, if it could be read (for the provider's logout).
    pub(super) async fn end_session(
        &self,
        request: &HeaderMap,
    ) -> Result<Option<SessionData>, StoreError> {
        let name = &self.session.cookie_name;
        match &self.store {
            Store::Cookie => Ok(cookie::get_chunked(request, name).and_then(|sealed| {
                self.opened.forget(&sealed);
                self.sealer().open::<SessionData>(name, &sealed)
            })),
            Store::Redis(store) => {
                let Some(ticket) = cookie::get(request, name).and_then(Ticket::parse) else {
                    return Ok(None);
                };
                let data = self.load_ticket(store, &ticket).await?;
                if data.is_some() {
                    store.delete(std::slice::from_ref(&ticket.id)).await?;
                }
                Ok(data)
            }
        }
    }

    fn remaining(&self, data: &SessionData) -> Duration {
        Duration::from_secs(data.ends.saturating_sub((self.clock)()).max(1))
    }

    /// The principal of a session, checked again: the cookie may have been sealed under other
    /// identity rules (`identity.list_format` changed since). `None` ends the session.
    pub(super) fn restored(&self, data: &SessionData) -> Option<Arc<Principal>> {
        if !self.is_dev() && self.idp(data.provider.as_deref()).is_none() {
            tracing::warn!(subject = ?data.subject, provider = ?data.provider, "session refused: its login provider is no longer configured; it ends");
            return None;
        }
        match self.principal(data) {
            Ok(principal) => Some(Arc::new(principal)),
            Err(error) => {
                tracing::warn!(subject = ?data.subject, %error, "session refused: its identity cannot be sent to the app unambiguously; it ends");
                None
            }
        }
    }

    pub(super) fn principal(&self, data: &SessionData) -> Result<Principal, IdentityError> {
        let issuer = self
            .idp(data.provider.as_deref())
            .map_or(&self.settings.issuer, |idp| &idp.settings().issuer);
        let claims = if data.claims.is_empty() {
            json!({"sub": data.subject, "email": data.email, "roles": data.roles, "iss": issuer})
        } else {
            Value::Object(data.claims.clone())
        };
        let principal = Principal {
            subject: data.subject.clone(),
            issuer: issuer.clone(),
            email: data.email.clone(),
            roles: data.roles.clone(),
            scopes: Vec::new(),
            claims: Arc::new(claims),
            method: AuthMethod::Session,
        };
        self.rules.check(&principal)?;
        Ok(principal)
    }

    /// `Set-Cookie` values that store `data` in the cookie itself, replacing whatever session
    /// cookies the request carried (so no chunk of an older session survives).
    pub(super) fn session_cookies(
        &self,
        data: &SessionData,
        request: &HeaderMap,
    ) -> Result<Vec<HeaderValue>, SealError> {
        let name = &self.session.cookie_name;
        let sealed = self.sealer().seal(name, data)?;
        if sealed.len() > LARGE_COOKIE_SESSION
            && !self
                .warned_large
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                bytes = sealed.len(),
                "sealed sessions are over 3 KB and take several cookies; consider `session.store: redis`"
            );
        }
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

    pub(super) fn clear_session(&self, request: &HeaderMap) -> Vec<HeaderValue> {
        cookie::all(request)
            .filter(|(n, _)| cookie::is_family(n, &self.session.cookie_name))
            .filter_map(|(n, _)| set_cookie(n, "", 0))
            .collect()
    }
}

/// Why a new session could not be stored.
#[derive(Debug, thiserror::Error)]
pub(super) enum CreateError {
    #[error(transparent)]
    Seal(SealError),
    #[error(transparent)]
    Store(StoreError),
}
