//! Bearer JWT verification.
//!
//! Our own checks come first and decide everything that must not be left to a token: the
//! header may not point at keys (`jku`, `x5u`, `jwk`, `x5c`), may not carry `crit`
//! extensions, and its `alg` must be on the issuer's allow-list *and* fit the key found by
//! `kid` (so `none`, or HMAC keyed with an RSA public key, can never verify). Only then is the
//! signature checked, by jsonwebtoken on aws-lc-rs. `exp` is required; `nbf` and `iat` are
//! checked with the issuer's leeway; `iss` must match exactly and `aud` must intersect.
//!
//! The header and the claims are parsed once, refusing a member name given twice at any depth
//! ([`super::unique`]): which copy wins is exactly where parsers disagree. The principal made
//! from the claims must pass the identity rules (`identity::IdentityRules`) before it counts.
//!
//! Verified tokens are remembered by a hash of the token until their `exp`, so a repeated
//! token skips the signature check; a refused token is never remembered, and a remembered one
//! is checked again once its issuer withdraws or replaces a key ([`Jwks::key_epoch`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::introspect::{Introspected, Introspector};
use super::jwks::{Jwks, KeyError};
use super::{AuthMethod, Principal};
use crate::config::{IssuerSettings, TokenSettings};
use crate::identity::IdentityRules;
use crate::telemetry;

/// Why a token was refused. The `Display` text is safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is too large")]
    TooLarge,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token header is not accepted")]
    Header,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token's issuer is not accepted")]
    Issuer,
    #[error("no key of the issuer matches the token")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has no expiry")]
    NoExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's audience is not accepted")]
    Audience,
    #[error("the token's claims are not usable")]
    Claims,
    /// The issuer's keys could not be loaded: a 503, not the caller's fault.
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable,
    /// The issuer's introspection endpoint says the (opaque) token is not active.
    #[error("the token is not active")]
    Inactive,
    /// Introspection says the token is not a bearer access token (a refresh token, or one
    /// bound to a key).
    #[error("the token is not a bearer access token")]
    TokenType,
    /// No introspection endpoint could be asked about the token, or none answered usably:
    /// a 503, not the caller's fault.
    #[error("the token issuer cannot be asked about the token")]
    IntrospectionUnavailable,
}

struct Issuer {
    settings: IssuerSettings,
    jwks: Arc<Jwks>,
}

/// A verified token, as cached.
#[derive(Debug, Clone)]
struct Verified {
    principal: Arc<Principal>,
    exp: u64,
    pass_authorization: bool,
    /// For a JWS: the issuer's key cache and its key epoch when the signature was checked.
    /// The verification stands for later requests only while that epoch is current, so a key
    /// the issuer withdraws stops admitting the tokens it signed at the next key fetch.
    keys: Option<(Arc<Jwks>, u64)>,
}

impl From<Introspected> for Verified {
    fn from(introspected: Introspected) -> Self {
        Self {
            principal: introspected.principal,
            exp: introspected.until,
            pass_authorization: introspected.pass_authorization,
            keys: None,
        }
    }
}

impl Verified {
    /// Whether a remembered verification still holds at `now`.
    fn current(&self, now: u64) -> bool {
        self.exp > now
            && self
                .keys
                .as_ref()
                .is_none_or(|(jwks, epoch)| jwks.key_epoch() == *epoch)
    }

    fn authenticated(self) -> Authenticated {
        Authenticated {
            principal: self.principal,
            pass_authorization: self.pass_authorization,
        }
    }
}

/// The last token verified on one connection (see [`Verifier::verify_on`]).
#[derive(Debug, Default)]
pub struct TokenMemo(std::sync::Mutex<Option<(Box<str>, Verified)>>);

/// The outcome of a successful verification.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Arc<Principal>,
    /// The issuer asks for the `Authorization` header to reach the app.
    pub pass_authorization: bool,
}

pub struct Verifier {
    issuers: HashMap<String, Issuer>,
    max_bytes: usize,
    cache: Option<moka::sync::Cache<[u8; 32], Verified>>,
    /// Opaque tokens, for the issuers that have `introspection`.
    introspector: Introspector,
    rules: IdentityRules,
    clock: fn() -> u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Seconds since the Unix epoch.
pub fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct UntilExpiry;

impl moka::Expiry<[u8; 32], Verified> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        value: &Verified,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            value.exp.saturating_sub(system_clock()),
        ))
    }
}

impl Verifier {
    /// A verifier for `issuers`, fetching keys (and introspecting opaque tokens) with
    /// `client`, whose principals must pass `rules`. Key sets start empty: run [`Verifier::key_sets`] in the background to load
    /// and refresh them.
    pub fn new(
        issuers: &[IssuerSettings],
        tokens: TokenSettings,
        rules: IdentityRules,
        client: reqwest::Client,
    ) -> Self {
        let by_issuer = issuers
            .iter()
            .map(|s| {
                let issuer = Issuer {
                    settings: s.clone(),
                    jwks: Jwks::new(s, client.clone()),
                };
                (s.issuer.clone(), issuer)
            })
            .collect();
        let cache = (tokens.cache_size > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(tokens.cache_size)
                .expire_after(UntilExpiry)
                .build()
        });
        let introspector = Introspector::new(issuers, rules, client, tokens.cache_size);
        Self {
            issuers: by_issuer,
            max_bytes: tokens.max_bytes,
            cache,
            introspector,
            rules,
            clock: system_clock,
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// Every issuer's key cache.
    pub fn key_sets(&self) -> impl Iterator<Item = &Arc<Jwks>> {
        self.issuers.values().map(|i| &i.jwks)
    }

    pub async fn verify(&self, token: &str) -> Result<Authenticated, TokenError> {
        let now = (self.clock)();
        self.verified(token, now).await.map(Verified::authenticated)
    }

    /// [`Verifier::verify`] for a request on a connection that remembers its last token: a
    /// keep-alive client usually sends the same one again, and comparing it costs less than
    /// hashing it for the shared cache.
    /// With the cache turned off (`tokens.cache_size: 0`) nothing is remembered here either.
    pub async fn verify_on(
        &self,
        token: &str,
        memo: &TokenMemo,
    ) -> Result<Authenticated, TokenError> {
        if self.cache.is_none() {
            return Box::pin(self.verify(token)).await;
        }
        let now = (self.clock)();
        if let Ok(last) = memo.0.lock()
            && let Some((previous, verified)) = last.as_ref()
            && **previous == *token
            && verified.current(now)
        {
            telemetry::token_cache(true);
            return Ok(verified.clone().authenticated());
        }
        // Boxed: with its key fetches and introspection calls this future is kilobytes, which
        // every request's future would otherwise carry and move, the connection's remembered
        // token (above) or not.
        let verified = Box::pin(self.verified(token, now)).await?;
        if let Ok(mut last) = memo.0.lock() {
            *last = Some((token.into(), verified.clone()));
        }
        Ok(verified.authenticated())
    }

    async fn verified(&self, token: &str, now: u64) -> Result<Verified, TokenError> {
        if token.len() > self.max_bytes {
            return Err(TokenError::TooLarge);
        }
        let digest = (self.cache.is_some() || self.introspector.enabled()).then(|| hash(token));
        if let (Some(cache), Some(digest)) = (&self.cache, &digest)
            && let Some(hit) = cache.get(digest).filter(|v| v.current(now))
        {
            telemetry::token_cache(true);
            return Ok(hit);
        }
        // A JWS of a configured issuer is verified as such, and refused if it fails; any other
        // token is introspected when an issuer says how, and refused otherwise.
        let issuer = match self.jwt_issuer(token) {
            Ok(issuer) => issuer,
            Err(why) => {
                return match &digest {
                    Some(digest) if self.introspector.enabled() => self
                        .introspector
                        .introspect(token, digest, now)
                        .await
                        .map(Verified::from),
                    _ => Err(why),
                };
            }
        };
        if self.cache.is_some() {
            telemetry::token_cache(false);
        }
        let verified = self.verify_uncached(token, issuer, now).await?;
        if let (Some(cache), Some(digest)) = (&self.cache, digest) {
            cache.insert(digest, verified.clone());
        }
        Ok(verified)
    }

    /// The issuer a token claims, when it is a JWS whose (unverified) `iss` is configured.
    fn jwt_issuer(&self, token: &str) -> Result<&Issuer, TokenError> {
        let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
        let payload = decode_object(payload)?;
        let iss = payload
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(TokenError::Issuer)?;
        self.issuers.get(iss).ok_or(TokenError::Issuer)
    }

    async fn verify_uncached(
        &self,
        token: &str,
        issuer: &Issuer,
        now: u64,
    ) -> Result<Verified, TokenError> {
        // The issuer was chosen by the (unverified) `iss`; `verify_signed` now holds the token
        // to exactly that issuer's keys and expectations.
        let settings = &issuer.settings;
        let expect = Expectations {
            issuer: &settings.issuer,
            audiences: &settings.audiences,
            algorithms: &settings.algorithms,
            leeway: settings.leeway,
        };
        // Read before the keys are taken, so a key withdrawn meanwhile leaves this stamp old.
        let epoch = issuer.jwks.key_epoch();
        let (payload, exp) = verify_signed(token, &issuer.jwks, expect, now).await?;
        let principal = settings
            .claims
            .principal(Value::Object(payload), &settings.issuer, AuthMethod::Bearer)
            .map_err(|error| {
                tracing::info!(issuer = %settings.issuer, %error, "bearer token refused");
                TokenError::Claims
            })?;
        if let Err(error) = self.rules.check(&principal) {
            tracing::info!(
                issuer = %settings.issuer,
                subject = ?principal.subject,
                %error,
                "bearer token refused: its identity cannot be sent to the app unambiguously"
            );
            return Err(TokenError::Claims);
        }
        Ok(Verified {
            principal: Arc::new(principal),
            exp: exp.saturating_add(settings.leeway.as_secs()),
            pass_authorization: settings.pass_authorization,
            keys: Some((issuer.jwks.clone(), epoch)),
        })
    }

    /// The key cache of `issuer`, when it is one of the bearer issuers.
    pub fn jwks_for(&self, issuer: &str) -> Option<Arc<Jwks>> {
        self.issuers.get(issuer).map(|i| i.jwks.clone())
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The exact `iss`.
    pub issuer: &'a str,
    /// `aud` must name one of these.
    pub audiences: &'a [String],
    pub algorithms: &'a [Algorithm],
    pub leeway: Duration,
}

/// Verifies a compact JWS against `jwks` and `expect`: header rules, algorithm from the key and
/// the allow-list, signature, `exp` (required), `nbf`, `iat`, `iss` and `aud`. Returns the
/// payload and its `exp`. Used for bearer tokens and ID tokens alike.
pub async fn verify_signed(
    token: &str,
    jwks: &Jwks,
    expect: Expectations<'_>,
    now: u64,
) -> Result<(Map<String, Value>, u64), TokenError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header = decode_object(header_b64)?;
    let payload = decode_object(payload_b64)?;

    // Keys come from our configuration, never from the token.
    for forbidden in ["jku", "x5u", "jwk", "x5c", "crit", "b64"] {
        if header.contains_key(forbidden) {
            return Err(TokenError::Header);
        }
    }
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Algorithm)?;
    // Names are case-sensitive (RFC 7515): `none`, `None`, `NONE` and `HS256` all fail here.
    let alg: Algorithm = alg_name.parse().map_err(|_| TokenError::Algorithm)?;
    if !expect.algorithms.contains(&alg) {
        return Err(TokenError::Algorithm);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(TokenError::Header),
    };
    if payload.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err(TokenError::Issuer);
    }
    let keys = jwks.key_set_for(kid, alg).await.map_err(|e| match e {
        KeyError::Unavailable => TokenError::KeysUnavailable,
        KeyError::Unknown => TokenError::UnknownKey,
    })?;
    let key = keys.find(kid, alg).ok_or(TokenError::UnknownKey)?;
    let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
    let valid = jsonwebtoken::crypto::verify(signature_b64, signed.as_bytes(), &key.decoding, alg)
        .map_err(|_| TokenError::Signature)?;
    if !valid {
        return Err(TokenError::Signature);
    }

    let leeway = expect.leeway.as_secs();
    let exp = numeric(&payload, "exp")?.ok_or(TokenError::NoExpiry)?;
    if exp.saturating_add(leeway) <= now {
        return Err(TokenError::Expired);
    }
    if numeric(&payload, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(TokenError::NotYetValid);
    }
    if numeric(&payload, "iat")?.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(TokenError::NotYetValid);
    }
    if !audience_accepted(payload.get("aud"), expect.audiences) {
        return Err(TokenError::Audience);
    }
    Ok((payload, exp))
}

/// Does an `aud` claim (a string or an array of strings) name one of `audiences`? Absent or
/// of another type, it does not.
pub(crate) fn audience_accepted(aud: Option<&Value>, audiences: &[String]) -> bool {
    match aud {
        Some(Value::String(aud)) => audiences.contains(aud),
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str().is_some_and(|a| audiences.iter().any(|x| x == a))),
        _ => false,
    }
}

/// A base64url JSON object of a token: the header or the claims. A member name given twice,
/// at any depth, makes the token malformed.
fn decode_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    match super::unique::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TokenError::Malformed),
        Err(error) => {
            tracing::debug!(%error, "token refused: its header or claims are not one JSON object with distinct member names");
            Err(TokenError::Malformed)
        }
    }
}

/// A NumericDate claim: absent is `None`, anything but a non-negative number is malformed.
pub(crate) fn numeric_date(
    payload: &Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, TokenError> {
    numeric(payload, name)
}

fn numeric(payload: &Map<String, Value>, name: &str) -> Result<Option<u64>, TokenError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(TokenError::Claims),
        Some(_) => Err(TokenError::Claims),
    }
}

fn hash(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The bytes a bearer token may hold: base64url (`A-Z a-z 0-9 - _`) and `.`. Classified
/// without a branch per byte and folded with `&`, so that the compiler checks many bytes
/// per instruction: the check runs over every byte of every request's token (measured with
/// `bench/profile`, a 600-byte token: ~7,000 instructions with a short-circuiting
/// `is_ascii_alphanumeric() || b"-_.".contains()`, ~3,100 with a lookup table).
fn token_bytes(token: &[u8]) -> bool {
    token.iter().fold(true, |ok, &b| {
        ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_') | (b == b'.'))
    })
}

/// The token in an `Authorization: Bearer` header. Exactly one `Authorization` header, the
/// scheme case-insensitive, one token of base64url characters and dots. Any other scheme is
/// not ours to read (`None`), but its value must still be text.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<Option<&str>, TokenError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => return Err(TokenError::Malformed),
    };
    let bytes = value.as_bytes();
    let space = bytes
        .iter()
        .position(|&b| b == b' ')
        .ok_or(TokenError::Malformed)?;
    let (scheme, rest) = (&bytes[..space], &bytes[space + 1..]);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        value.to_str().map_err(|_| TokenError::Malformed)?;
        return Ok(None);
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[start..];
    if token.is_empty() || !token_bytes(token) {
        return Err(TokenError::Malformed);
    }
    // ASCII by now: this cannot fail, and costs a fraction of the check above.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for v in values {
            map.append(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_single() {
        assert_eq!(bearer_token(&headers(&[])), Ok(None));
        assert_eq!(bearer_token(&headers(&["Bearer a.b.c"])), Ok(Some("a.b.c")));
        assert_eq!(bearer_token(&headers(&["bEaReR a.b.c"])), Ok(Some("a.b.c")));
        assert_eq!(bearer_token(&headers(&["Basic dXNlcjpwYXNz"])), Ok(None));
        assert_eq!(
            bearer_token(&headers(&["Bearer   a.b.c"])),
            Ok(Some("a.b.c"))
        );
        // Another scheme's value is not read, but it must still be text.
        let mut latin1 = http::HeaderMap::new();
        latin1.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_bytes(b"Basic caf\xe9").unwrap(),
        );
        assert_eq!(bearer_token(&latin1), Err(TokenError::Malformed));
        for bad in [
            &["Bearer a.b.c", "Bearer d.e.f"][..],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a b"],
            &["Bearer a+b"],
        ] {
            assert_eq!(
                bearer_token(&headers(bad)),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bearer_token_bytes_are_exactly_base64url_and_dot() {
        // Every byte a header value can carry, in the middle of a token: accepted exactly
        // when it is A-Z, a-z, 0-9, `-`, `_` or `.`.
        for b in (0x20u8..=0x7e).chain(0x80..=0xff) {
            let Ok(value) = http::HeaderValue::from_bytes(&[b"Bearer a", &[b][..], b"b"].concat())
            else {
                continue;
            };
            let mut map = http::HeaderMap::new();
            map.insert(http::header::AUTHORIZATION, value);
            let allowed = b.is_ascii_alphanumeric() || b"-_.".contains(&b);
            let got = bearer_token(&map);
            if allowed {
                let want = format!("a{}b", char::from(b));
                assert_eq!(got, Ok(Some(want.as_str())), "byte {b:#04x}");
            } else if b != b' ' {
                assert_eq!(got, Err(TokenError::Malformed), "byte {b:#04x}");
            }
        }
    }

    #[test]
    fn numeric_dates_must_be_numbers() {
        let payload = |v: Value| match serde_json::json!({ "exp": v }) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        assert_eq!(
            numeric(&payload(serde_json::json!(10)), "exp"),
            Ok(Some(10))
        );
        assert_eq!(
            numeric(&payload(serde_json::json!(10.7)), "exp"),
            Ok(Some(10))
        );
        assert_eq!(
            numeric(&payload(serde_json::json!("10")), "exp"),
            Err(TokenError::Claims)
        );
        assert_eq!(
            numeric(&payload(serde_json::json!(-1)), "exp"),
            Err(TokenError::Claims)
        );
        assert_eq!(numeric(&payload(serde_json::json!(10)), "nbf"), Ok(None));
    }
}
