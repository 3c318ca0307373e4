//! An issuer's signing keys: fetched (by OIDC discovery, a `jwks_uri`, or a local file),
//! refreshed in the background before they expire, re-fetched once when a token names an
//! unknown `kid` (single-flight and rate-limited, so a flood of random kids is one fetch), and
//! kept serving while the issuer is unreachable, up to a maximum staleness.
//!
//! The key set is an `Arc` swapped whole. Time comes from `tokio::time`, so tests can pause it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use crate::config::{IssuerSettings, JwksSettings, JwksSource, idp_url_allowed};
use crate::telemetry;

/// The kind of a public key, which decides the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    pub fn allows(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::P256 => alg == ES256,
            Self::P384 => alg == ES384,
            Self::Ed25519 => alg == EdDSA,
        }
    }
}

pub struct Key {
    pub kid: Option<String>,
    /// The key's own `alg`, when the JWKS states one: then only that algorithm is accepted.
    pub alg: Option<Algorithm>,
    pub kind: KeyKind,
    pub decoding: DecodingKey,
    /// The public key's parameters as published (`kty`, `crv`, `n`, `e`, `x`, `y`): what tells
    /// a key the issuer still publishes from one it replaced under the same `kid`.
    material: Box<str>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish()
    }
}

#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document. Keys we cannot or must not use (symmetric `oct` keys,
    /// encryption keys, unknown types or curves) are skipped; a set with no usable key is an
    /// error.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let raw: RawJwks =
            serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys: Vec<Key> = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<RawJwk>(value).ok())
            .filter_map(Key::from_raw)
            .collect();
        if keys.is_empty() {
            return Err("the JWKS has no usable signing key".into());
        }
        Ok(Self { keys })
    }

    /// The key for a token: by `kid` when the token has one, otherwise the only key that can
    /// verify `alg`. The key must allow `alg` by its type and, if it names one, its own `alg`.
    /// Whether every key of `self` is in `newer` as it was (same `kid`, `alg` and parameters).
    fn kept_in(&self, newer: &KeySet) -> bool {
        self.keys.iter().all(|old| {
            newer
                .keys
                .iter()
                .any(|k| k.kid == old.kid && k.alg == old.alg && k.material == old.material)
        })
    }

    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        let usable = |key: &&Key| key.kind.allows(alg) && key.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(usable)
                .find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut candidates = self.keys.iter().filter(usable);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

impl Key {
    fn from_raw(raw: RawJwk) -> Option<Self> {
        if raw.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let alg = match raw.alg.as_deref() {
            None => None,
            Some(a) => Some(a.parse::<Algorithm>().ok()?),
        };
        let (kind, decoding) = match (raw.kty.as_str(), raw.crv.as_deref()) {
            ("RSA", _) => (
                KeyKind::Rsa,
                DecodingKey::from_rsa_components(raw.n.as_deref()?, raw.e.as_deref()?).ok()?,
            ),
            ("EC", Some("P-256")) => (
                KeyKind::P256,
                DecodingKey::from_ec_components(raw.x.as_deref()?, raw.y.as_deref()?).ok()?,
            ),
            ("EC", Some("P-384")) => (
                KeyKind::P384,
                DecodingKey::from_ec_components(raw.x.as_deref()?, raw.y.as_deref()?).ok()?,
            ),
            ("OKP", Some("Ed25519")) => (
                KeyKind::Ed25519,
                DecodingKey::from_ed_components(raw.x.as_deref()?).ok()?,
            ),
            _ => return None,
        };
        if alg.is_some_and(|a| !kind.allows(a)) {
            return None;
        }
        let param = |p: &Option<String>| p.as_deref().unwrap_or_default().to_owned();
        let material = [
            raw.kty.clone(),
            param(&raw.crv),
            param(&raw.n),
            param(&raw.e),
            param(&raw.x),
            param(&raw.y),
        ]
        .join(".")
        .into_boxed_str();
        Some(Self {
            kid: raw.kid,
            alg,
            kind,
            decoding,
            material,
        })
    }
}

/// Why no key could be had for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Keys were never loaded, or are older than the allowed staleness: not the caller's fault.
    Unavailable,
    /// The keys are loaded and none fits the token.
    Unknown,
}

struct Loaded {
    keys: Arc<KeySet>,
    fetched_at: Instant,
    ttl: Duration,
}

/// One issuer's key cache.
pub struct Jwks {
    issuer: String,
    source: JwksSource,
    settings: JwksSettings,
    client: reqwest::Client,
    state: ArcSwapOption<Loaded>,
    /// Held while fetching: concurrent callers wait for the one fetch instead of starting more.
    /// Holds when a token last caused a fetch (unknown `kid`, or no keys yet), for the rate
    /// limit; the scheduled refreshes of [`Jwks::run`] do not count.
    fetching: Mutex<Option<Instant>>,
    /// Bumped by every successful fetch.
    generation: AtomicU64,
    /// Bumped when a fetched set drops or changes a key the set before it had: a verification
    /// remembered under an older epoch may rest on a key the issuer withdrew.
    key_epoch: AtomicU64,
    loaded: watch::Sender<bool>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("issuer", &self.issuer)
            .field("source", &self.source)
            .finish()
    }
}

const MAX_DOCUMENT_BYTES: usize = 1 << 20;

impl Jwks {
    pub fn new(settings: &IssuerSettings, client: reqwest::Client) -> Arc<Self> {
        Self::with_source(
            &settings.issuer,
            settings.keys.clone(),
            settings.jwks,
            client,
        )
    }

    /// A key cache for `issuer` that is not a bearer issuer (the login provider's ID tokens).
    pub fn with_source(
        issuer: &str,
        source: JwksSource,
        settings: JwksSettings,
        client: reqwest::Client,
    ) -> Arc<Self> {
        Arc::new(Self {
            issuer: issuer.to_owned(),
            source,
            settings,
            client,
            state: ArcSwapOption::empty(),
            fetching: Mutex::new(None),
            generation: AtomicU64::new(0),
            key_epoch: AtomicU64::new(0),
            loaded: watch::channel(false).0,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Becomes true at the first successful fetch (for `/readyz`).
    pub fn loaded(&self) -> watch::Receiver<bool> {
        self.loaded.subscribe()
    }

    /// Changes whenever a fetched key set withdraws or replaces a key the one before it had.
    /// Read it *before* taking the keys for a verification: the verification is current while
    /// the epoch stays the same.
    pub fn key_epoch(&self) -> u64 {
        self.key_epoch.load(Ordering::SeqCst)
    }

    /// The current key set, if it is fresh enough to use.
    fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        let loaded = self.state.load_full().ok_or(KeyError::Unavailable)?;
        let age = loaded.fetched_at.elapsed();
        if age > loaded.ttl + self.settings.max_stale {
            return Err(KeyError::Unavailable);
        }
        Ok(loaded.keys.clone())
    }

    /// Finds the key for a token, re-fetching once (rate-limited) when the `kid` is unknown.
    pub async fn key_set_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<KeySet>, KeyError> {
        match self.current() {
            Ok(keys) if keys.find(kid, alg).is_some() => return Ok(keys),
            Ok(_) => telemetry::jwks_unknown_kid(&self.issuer),
            Err(_) => {}
        }
        self.refresh(self.settings.unknown_kid_interval).await;
        let keys = self.current()?;
        if keys.find(kid, alg).is_some() {
            Ok(keys)
        } else {
            Err(KeyError::Unknown)
        }
    }

    /// Fetches unless another caller just did, or a token caused a fetch attempt less than
    /// `min_interval` ago. Concurrent callers share one fetch.
    async fn refresh(&self, min_interval: Duration) {
        let generation = self.generation.load(Ordering::SeqCst);
        let mut last_attempt = self.fetching.lock().await;
        if self.generation.load(Ordering::SeqCst) != generation {
            return; // someone fetched while we waited for the lock
        }
        if last_attempt.is_some_and(|at| at.elapsed() < min_interval) {
            return;
        }
        *last_attempt = Some(Instant::now());
        let span = crate::otel::Child::current("jwks fetch");
        if !self.fetch_and_store().await
            && let Some(span) = &span
        {
            span.fail("the key set could not be fetched");
        }
    }

    async fn fetch_and_store(&self) -> bool {
        match self.fetch().await {
            Ok((keys, max_age)) => {
                let ttl = max_age
                    .unwrap_or(self.settings.max_ttl)
                    .clamp(self.settings.min_ttl, self.settings.max_ttl);
                let keys = Arc::new(keys);
                let previous = self.state.swap(Some(Arc::new(Loaded {
                    keys: keys.clone(),
                    fetched_at: Instant::now(),
                    ttl,
                })));
                if previous.is_some_and(|p| !p.keys.kept_in(&keys)) {
                    self.key_epoch.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(issuer = %self.issuer, "the issuer withdrew or replaced a key: tokens verified with it are checked again");
                }
                self.generation.fetch_add(1, Ordering::SeqCst);
                self.loaded.send_replace(true);
                telemetry::jwks_fetched(&self.issuer, true);
                true
            }
            Err(error) => {
                telemetry::jwks_fetched(&self.issuer, false);
                let age = self.state.load().as_ref().map(|l| l.fetched_at.elapsed());
                match age {
                    Some(age) => {
                        tracing::warn!(issuer = %self.issuer, %error, age_s = age.as_secs(), "JWKS refresh failed; still using the keys fetched earlier")
                    }
                    None => {
                        tracing::warn!(issuer = %self.issuer, %error, "JWKS fetch failed; tokens of this issuer get 503 until it succeeds")
                    }
                }
                false
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Option<Duration>), String> {
        match &self.source {
            JwksSource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok((KeySet::parse(&bytes)?, None))
            }
            JwksSource::Uri(uri) => self.fetch_keys(uri).await,
            JwksSource::Discovery => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let (body, _) = self.get(&url).await?;
                let discovery: Discovery = serde_json::from_slice(&body)
                    .map_err(|e| format!("{url}: not an OpenID configuration: {e}"))?;
                if discovery.issuer != self.issuer {
                    return Err(format!(
                        "{url} names issuer `{}`, not `{}`",
                        discovery.issuer, self.issuer
                    ));
                }
                idp_url_allowed(&discovery.jwks_uri)
                    .map_err(|p| format!("discovered jwks_uri {p}"))?;
                self.fetch_keys(&discovery.jwks_uri).await
            }
        }
    }

    async fn fetch_keys(&self, url: &str) -> Result<(KeySet, Option<Duration>), String> {
        let (body, max_age) = self.get(url).await?;
        Ok((
            KeySet::parse(&body).map_err(|e| format!("{url}: {e}"))?,
            max_age,
        ))
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let max_age = response
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|d| {
                d.trim()
                    .strip_prefix("max-age=")
                    .and_then(|s| s.parse().ok())
            })
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "{url}: document larger than {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    /// Keeps the keys fresh: fetches at start (retrying with backoff until it works), then
    /// again before each set expires. Runs until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let ok = {
                // Single-flight with token-triggered fetches, but not counted against their
                // rate limit: a key rotated just after this fetch must still be fetched when
                // its first token arrives.
                let _fetching = self.fetching.lock().await;
                self.fetch_and_store().await
            };
            let wait = match (ok, self.state.load().as_ref()) {
                (true, Some(loaded)) => {
                    backoff = Duration::from_millis(250);
                    // Refresh at three quarters of the TTL, leaving time to retry.
                    loaded.ttl.mul_f64(0.75)
                }
                _ => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_jwk(kid: &str, alg: Option<&str>) -> serde_json::Value {
        // A real 2048-bit modulus is not needed to test selection; components only need to
        // decode as base64url.
        let mut jwk = serde_json::json!({"kty": "RSA", "kid": kid, "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"});
        if let Some(alg) = alg {
            jwk["alg"] = serde_json::json!(alg);
        }
        jwk
    }

    #[test]
    fn symmetric_encryption_and_unknown_keys_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "k1", "crv": "P-521", "x": "AA", "y": "AA"},
            rsa_jwk("good", None),
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid.as_deref(), Some("good"));
        let none = serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        assert!(KeySet::parse(none.to_string().as_bytes()).is_err());
    }

    #[test]
    fn the_algorithm_must_fit_the_key() {
        let doc = serde_json::json!({"keys": [rsa_jwk("a", Some("PS256")), rsa_jwk("b", None)]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert!(set.find(Some("a"), Algorithm::PS256).is_some());
        assert!(
            set.find(Some("a"), Algorithm::RS256).is_none(),
            "the key's own alg wins"
        );
        assert!(set.find(Some("b"), Algorithm::RS512).is_some());
        assert!(set.find(Some("b"), Algorithm::ES256).is_none());
        assert!(set.find(Some("b"), Algorithm::HS256).is_none());
        assert!(
            set.find(None, Algorithm::RS256).is_some(),
            "only b can do RS256"
        );
        assert!(
            set.find(None, Algorithm::PS256).is_none(),
            "a and b both could: ambiguous"
        );
        assert!(set.find(Some("zzz"), Algorithm::RS256).is_none());
    }

    #[test]
    fn a_set_keeps_its_keys_only_when_each_is_published_unchanged() {
        let set = |keys: Vec<serde_json::Value>| {
            KeySet::parse(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap()
        };
        let old = set(vec![rsa_jwk("a", None), rsa_jwk("b", Some("RS256"))]);
        let grown = set(vec![
            rsa_jwk("b", Some("RS256")),
            rsa_jwk("a", None),
            rsa_jwk("c", None),
        ]);
        assert!(
            old.kept_in(&grown),
            "added keys and a new order keep the old ones"
        );
        assert!(!old.kept_in(&set(vec![rsa_jwk("a", None)])), "b withdrawn");
        assert!(
            !old.kept_in(&set(vec![rsa_jwk("a", None), rsa_jwk("b", Some("PS256"))])),
            "b's algorithm changed"
        );
        let mut replaced = rsa_jwk("a", None);
        replaced["e"] = serde_json::json!("AQAC");
        assert!(
            !old.kept_in(&set(vec![replaced, rsa_jwk("b", Some("RS256"))])),
            "a new key under an old kid"
        );
    }
}
