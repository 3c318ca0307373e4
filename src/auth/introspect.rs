//! Opaque access tokens, checked at their issuer's RFC 7662 introspection endpoint.
//!
//! A bearer token that is not a JWS of a configured issuer is asked about at every issuer
//! with `introspection`, concurrently; the first (in config order) that says it is active and
//! for us wins. What an answer means is decided in [`answer`] (pure); this module owns the
//! calls, the cache and the failure rules:
//!
//! - Answers are cached per issuer by the SHA-256 of the token: active ones for
//!   `min(cache_ttl, exp - now)`, refusals for a few seconds. Failures are not cached.
//! - Concurrent requests with the same uncached token make one call (single-flight per
//!   token and issuer): every waiter gets the answer, or the failure, of that one call.
//! - Nothing is held across a call but that token's own slot, so a slow endpoint or token
//!   never stalls other tokens; every call (discovery too) is bounded by the issuer's
//!   `timeout`.
//! - The endpoint unreachable, slow, answering other than 200, or answering something
//!   unusable is [`TokenError::IntrospectionUnavailable`] (503), never a 401.
//! - The token travels only in the form body of the call: it is never logged, and errors
//!   name the issuer and the endpoint, not the token.

pub mod answer;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::join_all;
use moka::ops::compute::Op;
use oauth2::url::form_urlencoded;
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use self::answer::{Answer, Expect};
use super::Principal;
use super::jwt::TokenError;
use crate::config::{
    ClientAuthMethod, IntrospectionEndpoint, IntrospectionSettings, IssuerSettings, idp_url_allowed,
};
use crate::identity::IdentityRules;
use crate::telemetry;

/// How long a refusal (`active: false`, another audience) is reused, at most.
const REFUSAL_TTL: Duration = Duration::from_secs(5);

/// The largest introspection answer or discovery document read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Slots for tokens being introspected right now, per issuer. Only a backstop: a slot is
/// removed as soon as its call ends.
const MAX_IN_FLIGHT: u64 = 100_000;

/// An active token, as the verifier caches it.
#[derive(Debug, Clone)]
pub struct Introspected {
    pub principal: Arc<Principal>,
    /// Unix seconds until which the answer may be reused: never past the token's `exp`.
    pub until: u64,
    pub pass_authorization: bool,
}

/// What one issuer said about one token.
#[derive(Debug, Clone)]
enum Outcome {
    Active(Introspected),
    Refused(TokenError),
    Unavailable,
}

/// A remembered outcome (never `Unavailable`).
#[derive(Debug, Clone)]
struct Cached {
    outcome: Outcome,
    /// Unix seconds, checked against the verifier's clock.
    until: u64,
    /// The same lifetime for moka's own expiry.
    ttl: Duration,
}

struct CachedLifetime;

impl moka::Expiry<[u8; 32], Cached> for CachedLifetime {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        value: &Cached,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The introspection endpoints of every issuer that has one.
pub struct Introspector {
    endpoints: Vec<Endpoint>,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.issuer.issuer.as_str())
            .collect();
        f.debug_struct("Introspector")
            .field("issuers", &issuers)
            .finish()
    }
}

impl Introspector {
    /// Endpoints for those of `issuers` that have `introspection`. `cache_size` answers are
    /// kept per issuer (`tokens.cache_size`; 0 keeps none, so every request makes a call).
    pub fn new(
        issuers: &[IssuerSettings],
        rules: IdentityRules,
        client: reqwest::Client,
        cache_size: u64,
    ) -> Self {
        let endpoints = issuers
            .iter()
            .filter_map(|issuer| {
                let settings = issuer.introspection.clone()?;
                Some(Endpoint::new(
                    issuer.clone(),
                    settings,
                    rules,
                    client.clone(),
                    cache_size,
                ))
            })
            .collect();
        Self { endpoints }
    }

    /// Is any issuer configured for introspection?
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// Asks every endpoint about `token` (whose SHA-256 is `digest`) at `now`.
    pub async fn introspect(
        &self,
        token: &str,
        digest: &[u8; 32],
        now: u64,
    ) -> Result<Introspected, TokenError> {
        // One issuer is the usual case, and the cache-hit path: no futures to collect.
        let outcomes = match self.endpoints.as_slice() {
            [only] => vec![only.ask(token, digest, now).await],
            all => join_all(all.iter().map(|e| e.ask(token, digest, now))).await,
        };
        let mut refusal = None;
        let mut unavailable = false;
        for outcome in outcomes {
            match outcome {
                Outcome::Active(introspected) => return Ok(introspected),
                Outcome::Refused(why) => {
                    refusal.get_or_insert(why);
                }
                Outcome::Unavailable => unavailable = true,
            }
        }
        // An issuer that could not be asked might have said yes: that is not a 401.
        if unavailable {
            return Err(TokenError::IntrospectionUnavailable);
        }
        Err(refusal.unwrap_or(TokenError::Inactive))
    }
}

/// One issuer's endpoint, cache and in-flight calls.
struct Endpoint {
    issuer: IssuerSettings,
    settings: IntrospectionSettings,
    rules: IdentityRules,
    client: reqwest::Client,
    /// The endpoint's URL: configured, or found by discovery (then kept).
    url: ArcSwapOption<String>,
    /// Held while discovering; holds when the last discovery failed, so that callers who
    /// waited for it share its failure instead of each trying again in turn.
    discovering: Mutex<Option<Instant>>,
    answers: Option<moka::sync::Cache<[u8; 32], Cached>>,
    /// One slot per token being introspected: the first caller runs the call, the others
    /// wait for its outcome.
    in_flight: moka::sync::Cache<[u8; 32], Arc<OnceCell<Outcome>>>,
    /// Cache hits and misses, resolved once (this is the hot path).
    cache_counters: [metrics::Counter; 2],
}

impl Endpoint {
    fn new(
        issuer: IssuerSettings,
        settings: IntrospectionSettings,
        rules: IdentityRules,
        client: reqwest::Client,
        cache_size: u64,
    ) -> Self {
        let url = match &settings.endpoint {
            IntrospectionEndpoint::Url(url) => Some(Arc::new(url.clone())),
            IntrospectionEndpoint::Discovery => None,
        };
        let answers = (cache_size > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(cache_size)
                .expire_after(CachedLifetime)
                .build()
        });
        let in_flight = moka::sync::Cache::builder()
            .max_capacity(MAX_IN_FLIGHT)
            .time_to_live(settings.timeout.saturating_mul(4))
            .build();
        Self {
            cache_counters: telemetry::introspection_cache_counters(&issuer.issuer),
            issuer,
            settings,
            rules,
            client,
            url: ArcSwapOption::new(url),
            discovering: Mutex::new(None),
            answers,
            in_flight,
        }
    }

    async fn ask(&self, token: &str, digest: &[u8; 32], now: u64) -> Outcome {
        if let Some(hit) = self.cached(digest, now) {
            self.cache_counters[0].increment(1);
            return hit;
        }
        self.cache_counters[1].increment(1);
        let slot = self
            .in_flight
            .get_with(*digest, || Arc::new(OnceCell::new()));
        let outcome = slot
            .get_or_init(|| async {
                // A call that ended just before this slot was made stored its answer first.
                if let Some(hit) = self.cached(digest, now) {
                    return hit;
                }
                let outcome = self.call(token, now).await;
                self.remember(digest, &outcome, now);
                outcome
            })
            .await
            .clone();
        // The slot goes once its call is over, unless another slot has replaced it.
        self.in_flight
            .entry_by_ref(digest)
            .and_compute_with(|entry| match entry {
                Some(entry) if Arc::ptr_eq(entry.value(), &slot) => Op::Remove,
                _ => Op::Nop,
            });
        outcome
    }

    fn cached(&self, digest: &[u8; 32], now: u64) -> Option<Outcome> {
        let answers = self.answers.as_ref()?;
        answers
            .get(digest)
            .filter(|c| c.until > now)
            .map(|c| c.outcome)
    }

    fn remember(&self, digest: &[u8; 32], outcome: &Outcome, now: u64) {
        let Some(answers) = &self.answers else { return };
        let ttl = match outcome {
            Outcome::Active(introspected) => {
                Duration::from_secs(introspected.until.saturating_sub(now))
            }
            Outcome::Refused(_) => REFUSAL_TTL.min(self.settings.cache_ttl),
            Outcome::Unavailable => return,
        };
        let until = now.saturating_add(ceil_secs(ttl));
        if until > now {
            answers.insert(
                *digest,
                Cached {
                    outcome: outcome.clone(),
                    until,
                    ttl,
                },
            );
        }
    }

    /// One introspection call and what its answer means, counted by result.
    async fn call(&self, token: &str, now: u64) -> Outcome {
        let _span = crate::otel::Child::current("token introspection");
        let issuer = self.issuer.issuer.as_str();
        let expect = Expect {
            issuer,
            audiences: &self.issuer.audiences,
            leeway: self.issuer.leeway,
            claims: &self.issuer.claims,
            rules: self.rules,
        };
        let (outcome, result) = match self.exchange(token).await {
            Err(error) => {
                tracing::warn!(%issuer, %error, "token introspection failed; the request gets 503");
                (Outcome::Unavailable, "error")
            }
            Ok(body) => match answer::judge(&body, &expect, now) {
                Err(why) => {
                    tracing::warn!(%issuer, %why, "the introspection answer is not usable; the request gets 503");
                    (Outcome::Unavailable, "malformed")
                }
                Ok(Answer::Active { principal, exp }) => {
                    let by_ttl = now.saturating_add(ceil_secs(self.settings.cache_ttl));
                    let until = exp.map_or(by_ttl, |exp| exp.min(by_ttl));
                    let introspected = Introspected {
                        principal: Arc::new(principal),
                        until,
                        pass_authorization: self.issuer.pass_authorization,
                    };
                    (Outcome::Active(introspected), "active")
                }
                Ok(Answer::Refused(TokenError::Inactive)) => {
                    (Outcome::Refused(TokenError::Inactive), "inactive")
                }
                Ok(Answer::Refused(why)) => {
                    tracing::info!(%issuer, reason = %why, "introspected token refused");
                    (Outcome::Refused(why), "refused")
                }
            },
        };
        telemetry::introspection(issuer, result);
        outcome
    }

    /// Posts the token to the endpoint; the body of a 200 answer.
    async fn exchange(&self, token: &str) -> Result<Vec<u8>, String> {
        let url = self.endpoint_url().await?;
        let secret = self
            .settings
            .client_secret
            .read_async()
            .await
            .map_err(|e| format!("the client secret: {e}"))?;
        let mut request = self
            .client
            .post(url.as_str())
            .timeout(self.settings.timeout)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        // The serializer is not `Send`: the body is finished before anything is awaited.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token)
                .append_pair("token_type_hint", "access_token");
            match self.settings.auth_method {
                ClientAuthMethod::Basic => {
                    // RFC 6749 §2.3.1: both parts form-encoded before the Basic encoding.
                    let pair = format!(
                        "{}:{}",
                        form_encoded(&self.settings.client_id),
                        form_encoded(secret.expose())
                    );
                    let value = format!("Basic {}", STANDARD.encode(pair));
                    request = request.header(http::header::AUTHORIZATION, value);
                }
                ClientAuthMethod::Post => {
                    form.append_pair("client_id", &self.settings.client_id)
                        .append_pair("client_secret", secret.expose());
                }
            }
            form.finish()
        };
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&url, &e))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        read_limited(response, &url).await
    }

    /// The endpoint's URL, discovering it once when it is not configured.
    async fn endpoint_url(&self) -> Result<Arc<String>, String> {
        if let Some(url) = self.url.load_full() {
            return Ok(url);
        }
        let asked = Instant::now();
        let mut last_failure = self.discovering.lock().await;
        if let Some(url) = self.url.load_full() {
            return Ok(url);
        }
        if last_failure.is_some_and(|at| at >= asked) {
            return Err("discovery of the introspection endpoint failed just now".to_owned());
        }
        match self.discover().await {
            Ok(url) => {
                let url = Arc::new(url);
                self.url.store(Some(url.clone()));
                Ok(url)
            }
            Err(error) => {
                *last_failure = Some(Instant::now());
                Err(error)
            }
        }
    }

    async fn discover(&self) -> Result<String, String> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            introspection_endpoint: Option<String>,
        }
        let issuer = &self.issuer.issuer;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let response = self
            .client
            .get(&url)
            .timeout(self.settings.timeout)
            .send()
            .await
            .map_err(|e| describe(&url, &e))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = read_limited(response, &url).await?;
        let document: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: not an OpenID configuration: {e}"))?;
        if document.issuer != *issuer {
            return Err(format!(
                "{url} names issuer `{}`, not `{issuer}`",
                document.issuer
            ));
        }
        let endpoint = document
            .introspection_endpoint
            .ok_or_else(|| format!("{url} names no `introspection_endpoint`"))?;
        idp_url_allowed(&endpoint).map_err(|p| format!("discovered introspection_endpoint {p}"))?;
        Ok(endpoint)
    }
}

/// A failed call, described by the URL and the kind of failure (reqwest's text names the
/// URL, which never holds the token).
fn describe(url: &str, error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("{url}: no answer in time")
    } else {
        format!("{url}: {error}")
    }
}

async fn read_limited(mut response: reqwest::Response, url: &str) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(url, &e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "{url}: answer larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn form_encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Whole seconds, rounded up (the verifier's clock counts seconds).
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
