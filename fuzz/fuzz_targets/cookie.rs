//! Sealed cookies (`gatehouse::login::cookie`): `Sealer::open` on arbitrary strings never
//! panics, and whatever it opens is bound to its cookie name; sealing any value and chunking
//! it into cookies comes back intact through `get_chunked`, and every chunk belongs to the
//! cookie's family. `cookie::all` reads any header's pairs as `to_str`, `split(';')`, `trim`
//! and `split_once('=')` do.
//!
//! Input: the first byte picks the mode (open arbitrary text, or round-trip a value); the
//! rest is the text.
#![no_main]

use std::sync::LazyLock;

use gatehouse::login::Sealer;
use gatehouse::login::cookie::{self, MAX_CHUNK, MAX_CHUNKS};
use gatehouse::secret::Secret;
use http::header::{COOKIE, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The secrets `fuzz/seeds/cookie` was sealed with (the first), and a rotated-out one.
static SEALER: LazyLock<Sealer> = LazyLock::new(|| {
    gatehouse::install_crypto_provider();
    let secrets = [
        Secret::new("fuzz-secret-0123456789abcdefghijklmnop".to_owned()),
        Secret::new("an-older-secret-0123456789abcdefghijkl".to_owned()),
    ];
    match Sealer::new(&secrets) {
        Ok(sealer) => sealer,
        Err(e) => panic!("{e}"),
    }
});

fn header(cookies: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(cookies) {
        map.append(COOKIE, value);
    }
    map
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 3 {
        0 => {
            if let Some(value) = SEALER.open::<Value>("_gatehouse", &text) {
                // Bound to its name: a session cookie never opens as a flow cookie.
                assert!(SEALER.open::<Value>("_gatehouse_flow", &text).is_none());
                let again = SEALER.seal("_gatehouse", &value).ok();
                let reopened = again.and_then(|s| SEALER.open::<Value>("_gatehouse", &s));
                assert_eq!(reopened.as_ref(), Some(&value));
            }
            // Arbitrary Cookie headers: never a panic, and the pairs the plain string
            // functions find (the hot path's own parsing must not read them differently).
            let mut map = header(&text);
            if let Ok(raw) = HeaderValue::from_bytes(rest) {
                map.append(COOKIE, raw);
            }
            let _ = cookie::get_chunked(&map, "_gatehouse");
            let plain: Vec<(&str, &str)> = map
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .collect();
            assert_eq!(cookie::all(&map).collect::<Vec<_>>(), plain);
        }
        1 => {
            let value = Value::String(text.into_owned());
            let Ok(sealed) = SEALER.seal("_gatehouse", &value) else {
                return;
            };
            check_round_trip(&sealed);
            assert_eq!(SEALER.open::<Value>("_gatehouse", &sealed), Some(value));
        }
        _ => {
            // Large values: repeat the input to cross the chunk boundaries.
            let unit: String = text
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            if unit.is_empty() {
                return;
            }
            let times = (MAX_CHUNK * (MAX_CHUNKS + 1)) / unit.len() + 1;
            let long = unit.repeat(times.min(usize::from(rest[0])));
            check_round_trip(&long);
        }
    }
});

/// `chunk` then `get_chunked` gives the value back, and the chunks are the cookie's family.
fn check_round_trip(value: &str) {
    match cookie::chunk("_gatehouse", value) {
        Ok(parts) => {
            assert!(parts.len() <= MAX_CHUNKS);
            for (name, part) in &parts {
                assert!(cookie::is_family(name, "_gatehouse"), "{name}");
                assert!(part.len() <= MAX_CHUNK);
            }
            let joined: Vec<String> = parts.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let map = header(&joined.join("; "));
            assert_eq!(
                cookie::get_chunked(&map, "_gatehouse").as_deref(),
                Some(value)
            );
        }
        Err(_) => assert!(value.len() > MAX_CHUNK * MAX_CHUNKS),
    }
}
