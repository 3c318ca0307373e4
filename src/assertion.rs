//! The signed identity assertion (`identity.assertion`): a short-lived compact ES256 JWS per
//! principal, sent to the app in its own header so that the app can trust the identity even if
//! something reaches its port without passing through Gatehouse; and the JWKS that verifies it.
//!
//! Signing is kept off the hot path: an assertion is reused for the same identity for a quarter
//! of its ttl (a moka cache), so an app always receives one with at least three quarters of its
//! life left. Keys rotate without breaking verification ([`ring`]): a new key is published for
//! a full ttl before it signs, and the old one stays published for a ttl after its last use.
//! Depends on `auth` (the principal, the JWS signer), `config`, `reload` and `telemetry`.

mod ring;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::auth::signing::Signer;
use crate::auth::{AuthMethod, Principal};
use crate::config::AssertionSettings;
use crate::reload::{self, FileWatch};
use crate::telemetry;
use ring::Ring;

/// Where the JWKS is served (admin listener; public listeners with `publish: true`).
pub const JWKS_PATH: &str = "/.well-known/gatehouse/jwks.json";

/// An assertion could not be made; the request is refused (500) rather than sent without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("signing the identity assertion failed")]
    Signing,
}

/// A signing key with its public JWK; `kid` is the RFC 7638 thumbprint of the public key, so a
/// key file keeps its `kid` across restarts.
#[derive(Debug)]
pub struct Key {
    signer: Signer,
    jwk: Value,
}

impl Key {
    pub fn generate() -> Result<Self, String> {
        let signer = Signer::generate(Algorithm::ES256, "new")
            .map_err(|e| format!("cannot generate a key: {e}"))?;
        Self::from_pkcs8(signer.pkcs8())
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let bad = |e| format!("not a usable ES256 (P-256) PKCS#8 key: {e}");
        let probe = Signer::from_pkcs8(Algorithm::ES256, "probe", der).map_err(bad)?;
        let public = probe.jwk();
        let canonical = json!({
            "crv": public["crv"], "kty": public["kty"], "x": public["x"], "y": public["y"],
        });
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.to_string().as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
        let signer = Signer::from_pkcs8(Algorithm::ES256, &kid, der).map_err(bad)?;
        let jwk = signer.jwk();
        Ok(Self { signer, jwk })
    }

    pub fn kid(&self) -> &str {
        self.signer.kid()
    }
}

/// Checks the key file as `identity.assertion.key_file` needs it: readable by its owner only,
/// and an ES256 PKCS#8 key.
pub fn check_key_file(path: &std::path::Path) -> Result<(), String> {
    read_key(path).map(|_| ())
}

fn read_key(path: &std::path::Path) -> Result<Key, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} is readable by others (mode {mode:o}): `chmod 600` it, a private key \
                 must be its owner's only"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    match PrivateKeyDer::from_pem_file(path) {
        Ok(PrivateKeyDer::Pkcs8(der)) => Key::from_pkcs8(der.secret_pkcs8_der()),
        Ok(_) => Err(format!(
            "{shown} is not PKCS#8 (`-----BEGIN PRIVATE KEY-----`): convert it with \
             `openssl pkcs8 -topk8 -nocrypt`"
        )),
        Err(e) => Err(format!("cannot read a PEM private key from {shown}: {e}")),
    }
}

/// What identifies an assertion's claims, so that one is reused only for the same identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    method: AuthMethod,
    issuer: String,
    subject: String,
    email: Option<String>,
    roles: Vec<String>,
}

#[derive(Debug, Clone)]
struct Cached {
    kid: Arc<Key>,
    value: HeaderValue,
}

/// The assertion signer: its keys, its settings and the per-identity cache.
#[derive(Debug)]
pub struct Assertions {
    header: HeaderName,
    audience: String,
    issuer: String,
    ttl: Duration,
    publish: bool,
    ring: Mutex<Ring>,
    cache: moka::sync::Cache<Identity, Cached>,
}

impl Assertions {
    /// Loads `key_file`, or generates a key when there is none.
    pub fn new(settings: &AssertionSettings) -> Result<Arc<Self>, String> {
        let key = match &settings.key_file {
            Some(path) => read_key(path)?,
            None => Key::generate()?,
        };
        Ok(Arc::new(Self {
            header: settings.header.clone(),
            audience: settings.audience.clone(),
            issuer: settings.issuer.clone(),
            ttl: settings.ttl,
            publish: settings.publish,
            ring: Mutex::new(Ring::new(Arc::new(key), settings.ttl)),
            cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(settings.ttl / 4)
                .build(),
        }))
    }

    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Is the JWKS served on the public listeners too?
    pub fn published(&self) -> bool {
        self.publish
    }

    fn signing_key(&self) -> Option<Arc<Key>> {
        let now = tokio::time::Instant::now();
        let mut ring = self.ring.lock().ok()?;
        if ring.advance(now) {
            tracing::info!(
                kid = ring.active().kid(),
                "identity assertion key rotated: the new key signs from now on"
            );
        }
        Some(ring.active().clone())
    }

    /// The assertion for `principal`: a cached one while it is fresh and its key still signs,
    /// otherwise a new one.
    pub fn for_principal(&self, principal: &Principal) -> Result<HeaderValue, AssertionError> {
        let key = self.signing_key().ok_or(AssertionError::Signing)?;
        let identity = Identity {
            method: principal.method,
            issuer: principal.issuer.clone(),
            subject: principal.subject.clone(),
            email: principal.email.clone(),
            roles: principal.roles.clone(),
        };
        if let Some(cached) = self.cache.get(&identity)
            && Arc::ptr_eq(&cached.kid, &key)
        {
            telemetry::assertion_signed(true);
            return Ok(cached.value);
        }
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": principal.subject,
            "roles": principal.roles,
            "auth": principal.method.as_str(),
            "iat": iat,
            "exp": iat + self.ttl.as_secs(),
        });
        if let Some(email) = &principal.email {
            claims["email"] = json!(email);
        }
        let token = key
            .signer
            .sign(&claims)
            .map_err(|_| AssertionError::Signing)?;
        let value = HeaderValue::try_from(token).map_err(|_| AssertionError::Signing)?;
        telemetry::assertion_signed(false);
        self.cache.insert(
            identity,
            Cached {
                kid: key,
                value: value.clone(),
            },
        );
        Ok(value)
    }

    /// The published keys: the signing key, a key about to sign, and keys retired less than a
    /// ttl ago.
    pub fn jwks(&self) -> Value {
        let now = tokio::time::Instant::now();
        let keys: Vec<Value> = match self.ring.lock() {
            Ok(mut ring) => {
                ring.advance(now);
                ring.published().map(|k| k.jwk.clone()).collect()
            }
            Err(_) => Vec::new(),
        };
        json!({ "keys": keys })
    }

    /// `Cache-Control` for the JWKS: half a ttl, so a cached copy always learns a new key
    /// before it signs.
    pub fn jwks_max_age(&self) -> u64 {
        (self.ttl.as_secs() / 2).max(1)
    }

    /// Replaces the key: it is published now and signs after a full ttl.
    pub fn rotate(&self, key: Key) {
        let now = tokio::time::Instant::now();
        if let Ok(mut ring) = self.ring.lock() {
            let kid = key.kid().to_owned();
            if ring.rotate(Arc::new(key), now) {
                tracing::info!(%kid, ttl = ?self.ttl, "new identity assertion key published; it signs after one ttl");
            }
        }
    }

    /// Re-reads `key_file` when it changes; a file that does not load keeps the current key.
    pub fn watch(
        self: &Arc<Self>,
        settings: &AssertionSettings,
        interval: Duration,
        trigger: &reload::Trigger,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let path = settings.key_file.clone()?;
        let this = Arc::downgrade(self);
        let watched = path.clone();
        Some(reload::spawn(
            FileWatch::new(vec![watched]),
            interval,
            trigger,
            move || {
                let Some(this) = this.upgrade() else { return };
                match read_key(&path) {
                    Ok(key) => {
                        telemetry::reloaded("assertion_key", true);
                        this.rotate(key);
                    }
                    Err(error) => {
                        telemetry::reloaded("assertion_key", false);
                        tracing::warn!(%error, "assertion key reload failed; still signing with the current key");
                    }
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwks::KeySet;

    fn settings(ttl: u64) -> AssertionSettings {
        AssertionSettings {
            header: HeaderName::from_static("x-gatehouse-assertion"),
            audience: "orders-app".into(),
            issuer: "gatehouse".into(),
            ttl: Duration::from_secs(ttl),
            key_file: None,
            origin: crate::config::Origin {
                file: "t.yaml".into(),
                line: 0,
                column: 0,
                field: "identity.assertion".into(),
            },
            publish: false,
        }
    }

    fn principal(method: AuthMethod) -> Principal {
        Principal {
            subject: "alice".into(),
            issuer: "https://idp".into(),
            email: Some("a@example.com".into()),
            roles: vec!["admin".into()],
            scopes: vec![],
            claims: Arc::new(json!({})),
            method,
        }
    }

    fn payload(token: &HeaderValue) -> Value {
        let part = token.to_str().unwrap().split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn claims_and_reuse_per_identity() {
        let a = Assertions::new(&settings(60)).unwrap();
        let bearer = a.for_principal(&principal(AuthMethod::Bearer)).unwrap();
        let claims = payload(&bearer);
        assert_eq!(claims["iss"], "gatehouse");
        assert_eq!(claims["aud"], "orders-app");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["roles"], json!(["admin"]));
        assert_eq!(claims["email"], "a@example.com");
        assert_eq!(claims["auth"], "bearer");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            60
        );
        assert_eq!(
            a.for_principal(&principal(AuthMethod::Bearer)).unwrap(),
            bearer
        );
        let mtls = a.for_principal(&principal(AuthMethod::Mtls)).unwrap();
        assert_ne!(mtls, bearer);
        assert_eq!(payload(&mtls)["auth"], "mtls");
    }

    #[test]
    fn the_jwks_verifies_what_is_signed() {
        crate::install_crypto_provider();
        let a = Assertions::new(&settings(60)).unwrap();
        let token = a.for_principal(&principal(AuthMethod::Session)).unwrap();
        let keys = KeySet::parse(a.jwks().to_string().as_bytes()).unwrap();
        let header = jsonwebtoken::decode_header(token.to_str().unwrap()).unwrap();
        let key = &keys
            .find(header.kid.as_deref(), Algorithm::ES256)
            .unwrap()
            .decoding;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["orders-app"]);
        validation.set_issuer(&["gatehouse"]);
        jsonwebtoken::decode::<Value>(token.to_str().unwrap(), key, &validation).unwrap();
    }
}
