//! Sealed cookies: AES-256-GCM over a JSON payload, with the cookie's name as associated data
//! so that one cookie can never be replayed as another (a flow cookie as a session, say).
//!
//! Keys come from a list of secrets: the first seals, every one opens, so a secret can rotate
//! without signing everybody out. Each key is derived from its secret with HKDF-SHA256.
//! Values too large for one cookie are split into numbered chunks (`name_0`, `name_1`, ...).

use std::borrow::Cow;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::COOKIE;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::secret::Secret;

/// The longest value put in one cookie; browsers keep about 4096 bytes per cookie including
/// the name and attributes.
pub const MAX_CHUNK: usize = 3800;
/// At most this many chunks are read or written (about 30 KB).
pub const MAX_CHUNKS: usize = 8;
const VERSION: &str = "v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("at least one secret is required")]
    NoKeys,
    #[error("secrets must be at least 32 characters")]
    WeakSecret,
    #[error("the value is too large even for {MAX_CHUNKS} cookies")]
    TooLarge,
    #[error("sealing failed")]
    Crypto,
}

pub struct Sealer {
    /// The first key seals; all open.
    keys: Vec<LessSafeKey>,
    /// HMAC keys for index tags (Redis store), one per secret, in the same order.
    tag_keys: Vec<aws_lc_rs::hmac::Key>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Sealer {
    pub fn new(secrets: &[Secret<String>]) -> Result<Self, SealError> {
        if secrets.is_empty() {
            return Err(SealError::NoKeys);
        }
        let salt = Salt::new(HKDF_SHA256, b"gatehouse cookie sealing");
        let mut keys = Vec::with_capacity(secrets.len());
        let mut tag_keys = Vec::with_capacity(secrets.len());
        for secret in secrets {
            if secret.expose().len() < 32 {
                return Err(SealError::WeakSecret);
            }
            let prk = salt.extract(secret.expose().as_bytes());
            keys.push(aead_key(&prk, b"aes-256-gcm v1")?);
            let mut tag = [0u8; 32];
            prk.expand(&[b"index tag v1"], aws_lc_rs::hmac::HMAC_SHA256)
                .and_then(|okm| okm.fill(&mut tag))
                .map_err(|_| SealError::Crypto)?;
            tag_keys.push(aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                &tag,
            ));
        }
        Ok(Self {
            keys,
            tag_keys,
            rng: SystemRandom::new(),
        })
    }

    /// The sealer of one session in the Redis store: its only key is derived from the key
    /// half of the session's ticket, which only the cookie carries.
    pub fn for_ticket(key: &[u8; 16], id: &str) -> Result<Self, SealError> {
        let prk = Salt::new(HKDF_SHA256, b"gatehouse redis session").extract(key);
        Ok(Self {
            keys: vec![aead_key(&prk, id.as_bytes())?],
            tag_keys: Vec::new(),
            rng: SystemRandom::new(),
        })
    }

    /// Index tags for `value` (a subject or a provider session id) of kind `kind`: an HMAC
    /// under each secret, the current secret's first. Empty for a ticket's sealer.
    pub fn tags(&self, kind: &str, value: &str) -> Vec<String> {
        self.tag_keys
            .iter()
            .map(|key| {
                let mut context = aws_lc_rs::hmac::Context::with_key(key);
                context.update(kind.as_bytes());
                context.update(&[0]);
                context.update(value.as_bytes());
                URL_SAFE_NO_PAD.encode(context.sign().as_ref())
            })
            .collect()
    }

    /// Seals `value` for the cookie called `name`: `v1.<base64url(nonce | ciphertext | tag)>`.
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> Result<String, SealError> {
        let key = self.keys.first().ok_or(SealError::NoKeys)?;
        let mut data = serde_json::to_vec(value).map_err(|_| SealError::Crypto)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Crypto)?;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name.as_bytes()),
            &mut data,
        )
        .map_err(|_| SealError::Crypto)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        Ok(format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Opens a value sealed for `name` with any of the keys; `None` if it was not sealed by
    /// us, for this name, or has been altered.
    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        let encoded = sealed.strip_prefix(VERSION)?.strip_prefix('.')?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.keys.iter().find_map(|key| {
            let mut buffer = ciphertext.to_vec();
            let plain = key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(name.as_bytes()),
                    &mut buffer,
                )
                .ok()?;
            serde_json::from_slice(plain).ok()
        })
    }
}

fn aead_key(prk: &aws_lc_rs::hkdf::Prk, info: &[u8]) -> Result<LessSafeKey, SealError> {
    let mut bytes = [0u8; 32];
    prk.expand(&[info], &AES_256_GCM)
        .and_then(|okm| okm.fill(&mut bytes))
        .map_err(|_| SealError::Crypto)?;
    let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::Crypto)?;
    Ok(LessSafeKey::new(key))
}

/// The value of the cookie `name` in the request (the first, if a client sent several).
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    all(headers).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Every `name=value` pair of the request's `Cookie` headers. A header that is not all text
/// (visible ASCII and tabs, what `HeaderValue::to_str` takes) gives no pairs.
///
/// Written for the hot path: a session cookie is hundreds of bytes on every request of a
/// browser, and this runs twice per request (the session, then removing our cookies before
/// the app). The text check is a fold the compiler vectorizes and the `;` search is
/// `memchr`'s; `to_str` and `str::split` cost about 3,000 instructions for a 700-byte
/// cookie (`bench/profile`, `h1-session`).
pub fn all(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| text(v.as_bytes()))
        .flat_map(pairs)
}

/// The bytes as `&str` when every one is visible ASCII or a tab.
fn text(bytes: &[u8]) -> Option<&str> {
    let visible = bytes.iter().fold(true, |ok, &b| {
        ok & ((0x20..0x7f).contains(&b) | (b == b'\t'))
    });
    if visible {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// The `name=value` pairs of one header's text, split at `;`, each trimmed of spaces and tabs;
/// a piece without `=` is skipped.
fn pairs(value: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        loop {
            let current = rest?;
            let (piece, next) = match memchr::memchr(b';', current.as_bytes()) {
                Some(at) => (&current[..at], Some(&current[at + 1..])),
                None => (current, None),
            };
            rest = next;
            if let Some(pair) = piece.trim_ascii().split_once('=') {
                return Some(pair);
            }
        }
    })
}

/// A value read from one cookie or from its chunks (`name_0`, `name_1`, ...); borrowed from
/// the request when it is one cookie.
pub fn get_chunked<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    if let Some(value) = get(headers, name) {
        return Some(Cow::Borrowed(value));
    }
    let mut joined = String::new();
    for i in 0..MAX_CHUNKS {
        match get(headers, &format!("{name}_{i}")) {
            Some(part) => joined.push_str(part),
            None if i == 0 => return None,
            None => break,
        }
    }
    Some(Cow::Owned(joined))
}

/// Splits a value into `(cookie name, value)` pairs: one cookie when it fits, chunks when not.
pub fn chunk(name: &str, value: &str) -> Result<Vec<(String, String)>, SealError> {
    if value.len() <= MAX_CHUNK {
        return Ok(vec![(name.to_owned(), value.to_owned())]);
    }
    let parts: Vec<(String, String)> = value
        .as_bytes()
        .chunks(MAX_CHUNK)
        .enumerate()
        .map(|(i, part)| {
            (
                format!("{name}_{i}"),
                String::from_utf8_lossy(part).into_owned(),
            )
        })
        .collect();
    if parts.len() > MAX_CHUNKS {
        return Err(SealError::TooLarge);
    }
    Ok(parts)
}

/// Is `name` ours: the cookie itself or one of its chunks?
pub fn is_family(cookie: &str, name: &str) -> bool {
    cookie == name
        || cookie
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(secrets: &[&str]) -> Sealer {
        Sealer::new(
            &secrets
                .iter()
                .map(|s| Secret::new(s.to_string()))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    }

    const A: &str = "a-very-long-secret-of-at-least-32-characters";
    const B: &str = "another-long-secret-of-at-least-32-characters";

    #[test]
    fn round_trip_and_binding_to_the_name() {
        let s = sealer(&[A]);
        let sealed = s
            .seal("session", &serde_json::json!({"sub": "alice"}))
            .unwrap();
        let opened: serde_json::Value = s.open("session", &sealed).unwrap();
        assert_eq!(opened["sub"], "alice");
        assert!(
            s.open::<serde_json::Value>("flow", &sealed).is_none(),
            "bound to its name"
        );
    }

    #[test]
    fn tampering_is_detected() {
        let s = sealer(&[A]);
        let sealed = s
            .seal("session", &serde_json::json!({"sub": "alice"}))
            .unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            let forged = format!("v1.{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert!(
                s.open::<serde_json::Value>("session", &forged).is_none(),
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
        for junk in ["", "v1.", "v2.abc", "v1.!!!", "v1.AAAA"] {
            assert!(
                s.open::<serde_json::Value>("session", junk).is_none(),
                "{junk}"
            );
        }
    }

    #[test]
    fn the_first_secret_seals_and_every_secret_opens() {
        let old = sealer(&[A]);
        let rotated = sealer(&[B, A]);
        let by_old = old.seal("s", &1).unwrap();
        assert_eq!(rotated.open::<i32>("s", &by_old), Some(1));
        let by_new = rotated.seal("s", &2).unwrap();
        assert_eq!(old.open::<i32>("s", &by_new), None);
        assert_eq!(sealer(&[B]).open::<i32>("s", &by_new), Some(2));
    }

    #[test]
    fn ticket_sealers_are_bound_to_their_key_and_id() {
        let key = [7u8; 16];
        let sealed = Sealer::for_ticket(&key, "id-1")
            .unwrap()
            .seal("entry", &1)
            .unwrap();
        assert_eq!(
            Sealer::for_ticket(&key, "id-1")
                .unwrap()
                .open::<i32>("entry", &sealed),
            Some(1)
        );
        let mut other = key;
        other[15] ^= 1;
        assert_eq!(
            Sealer::for_ticket(&other, "id-1")
                .unwrap()
                .open::<i32>("entry", &sealed),
            None
        );
        assert_eq!(
            Sealer::for_ticket(&key, "id-2")
                .unwrap()
                .open::<i32>("entry", &sealed),
            None
        );
        assert_eq!(
            sealer(&[A]).open::<i32>("entry", &sealed),
            None,
            "not by a secret"
        );
        assert!(
            Sealer::for_ticket(&key, "id-1")
                .unwrap()
                .tags("sub", "alice")
                .is_empty()
        );
    }

    #[test]
    fn index_tags_hide_the_value_and_follow_the_secrets() {
        let tags = sealer(&[B, A]).tags("sub", "alice");
        assert_eq!(tags.len(), 2);
        assert_eq!(
            tags[1],
            sealer(&[A]).tags("sub", "alice")[0],
            "one per secret, in order"
        );
        assert_ne!(tags[0], tags[1]);
        assert_ne!(
            sealer(&[A]).tags("sid", "alice"),
            sealer(&[A]).tags("sub", "alice")
        );
        assert!(tags.iter().all(|t| !t.contains("alice") && t.len() == 43));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            Sealer::new(&[Secret::new("short".into())]).err(),
            Some(SealError::WeakSecret)
        );
        assert_eq!(Sealer::new(&[]).err(), Some(SealError::NoKeys));
    }

    /// The pairs as `to_str`, `split(';')`, `trim` and `split_once('=')` read them: what
    /// `all` did before it was written for speed, and must still do.
    fn plain(headers: &HeaderMap) -> Vec<(&str, &str)> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .collect()
    }

    #[test]
    fn pairs_are_read_as_the_plain_string_functions_read_them() {
        let cases: [&[u8]; 14] = [
            b"a=1",
            b"a=1; b=2;c=3 ;  d = 4 ",
            b";;a=1;;",
            b"",
            b"novalue; a=1; =empty-name; b=",
            b"a=b=c",
            b"\ta=1\t;\tb=2",
            b"a=1; bad=\xc3\xa9",
            b"a=1; high=\xff",
            b"a=1; tilde=~",
            b" ; ; ",
            b"a=\"quoted; still\"",
            b"x=y;",
            b"=",
        ];
        for case in cases {
            let mut headers = HeaderMap::new();
            headers.append(COOKIE, http::HeaderValue::from_bytes(case).unwrap());
            headers.append(COOKIE, http::HeaderValue::from_static("second=2"));
            let got: Vec<_> = all(&headers).collect();
            assert_eq!(got, plain(&headers), "{:?}", String::from_utf8_lossy(case));
        }
        // Every byte a header value can hold, at every place of a short cookie header.
        for byte in (0x09..=0xffu8).filter(|b| *b == 0x09 || (*b >= 0x20 && *b != 0x7f)) {
            for at in 0..7 {
                let mut value = b"ab=c;d".to_vec();
                value.insert(at, byte);
                let mut headers = HeaderMap::new();
                headers.append(COOKIE, http::HeaderValue::from_bytes(&value).unwrap());
                assert_eq!(
                    all(&headers).collect::<Vec<_>>(),
                    plain(&headers),
                    "{value:?}"
                );
            }
        }
    }

    #[test]
    fn large_values_are_chunked_and_joined() {
        let value = "x".repeat(MAX_CHUNK * 2 + 10);
        let parts = chunk("c", &value).unwrap();
        assert_eq!(
            parts.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["c_0", "c_1", "c_2"]
        );
        let cookie = parts
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, cookie.parse().unwrap());
        assert_eq!(get_chunked(&headers, "c").unwrap(), value);
        assert_eq!(
            chunk("c", &"x".repeat(MAX_CHUNK * MAX_CHUNKS + 1)),
            Err(SealError::TooLarge)
        );
        assert!(is_family("c_12", "c") && is_family("c", "c"));
        assert!(!is_family("c_", "c") && !is_family("cx_1", "c") && !is_family("c_1a", "c"));
    }
}
