//! Bearer JWT parsing and checks (`gatehouse::auth::jwt::Verifier::verify`) with no network:
//! one issuer whose keys come from a local JWKS file holding one P-256 key.
//!
//! Input: the first byte picks the mode.
//! - `0`: the rest is the token, as a client would send it.
//! - `1`: the rest is `header JSON` NUL `payload JSON`; the target encodes and signs them
//!   with the issuer's key, so the claim checks behind the signature are reached.
//! - `2`: the rest is the payload JSON, signed under a plain `{"alg":"ES256","kid":"k1"}`.
//!
//! Whatever verifies must have an accepted header (`alg` ES256, no key-pointing or `crit`
//! members), the issuer's `iss`, an unexpired numeric `exp`, an accepted `aud`, and a
//! principal whose subject is the token's `sub`. Never panics. The clock is fixed, so
//! the outcome depends on the input alone.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse::auth::ClaimMapping;
use gatehouse::auth::jwt::Verifier;
use gatehouse::config::{
    DEFAULT_ALGORITHMS, IssuerSettings, JwksSettings, JwksSource, TokenSettings,
};
use gatehouse::identity::IdentityRules;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// A key made for this target only (PKCS#8, P-256); the seeds in `fuzz/seeds/jwt` are signed
/// with it.
const KEY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4nKieVE1gu0c4exvdfD4dkQ3ILloMSye75r8KZcjfVShRANCAAT238COfUorXrigoPqfj+/4sYopCTPZmRKeqPJuWPnPwfoPmoDv23ro+vXWPhsZ0QyKdsOvI3VJWkR8nu3UmujL";
const ISSUER: &str = "https://idp.example.com";
const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 30;

struct World {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    key: EcdsaKeyPair,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    gatehouse::install_crypto_provider();
    let pkcs8 = STANDARD.decode(KEY).unwrap_or_default();
    let key = match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8) {
        Ok(key) => key,
        Err(e) => panic!("fuzz key: {e}"),
    };
    let point = key.public_key().as_ref();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    let file: PathBuf =
        std::env::temp_dir().join(format!("gatehouse-fuzz-jwks-{}.json", std::process::id()));
    if let Err(e) = std::fs::write(&file, jwks.to_string()) {
        panic!("{}: {e}", file.display());
    }
    let issuer = IssuerSettings {
        issuer: ISSUER.to_owned(),
        audiences: vec!["app".to_owned()],
        keys: JwksSource::File(file),
        algorithms: DEFAULT_ALGORITHMS.to_vec(),
        claims: ClaimMapping::default(),
        leeway: Duration::from_secs(LEEWAY),
        pass_authorization: false,
        jwks: JwksSettings {
            // An unknown `kid` must not re-read the file on every input.
            unknown_kid_interval: Duration::from_secs(3600),
            ..JwksSettings::default()
        },
        introspection: None,
    };
    let tokens = TokenSettings {
        max_bytes: 8192,
        cache_size: 0,
    };
    let client = match gatehouse::server::idp_client() {
        Ok(client) => client,
        Err(e) => panic!("{e}"),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("{e}"),
    };
    World {
        runtime,
        verifier: Verifier::new(&[issuer], tokens, IdentityRules::default(), client)
            .with_clock(|| NOW),
        key,
    }
});

fn sign(header: &[u8], payload: &[u8]) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    match WORLD.key.sign(&SystemRandom::new(), signed.as_bytes()) {
        Ok(signature) => format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())),
        Err(e) => panic!("{e}"),
    }
}

fn part(token: &str, i: usize) -> Map<String, Value> {
    let bytes = token
        .split('.')
        .nth(i)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .unwrap_or_default();
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => map,
        other => panic!("verified, but part {i} is not a JSON object: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let world = &*WORLD;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => {
            let at = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            sign(&rest[..at], rest.get(at + 1..).unwrap_or_default())
        }
        _ => sign(br#"{"alg":"ES256","kid":"k1"}"#, rest),
    };
    let Ok(authenticated) = world.runtime.block_on(world.verifier.verify(&token)) else {
        return;
    };
    let header = part(&token, 0);
    let payload = part(&token, 1);
    assert_eq!(header.get("alg"), Some(&Value::from("ES256")), "{header:?}");
    for forbidden in ["jku", "x5u", "jwk", "x5c", "crit"] {
        assert!(!header.contains_key(forbidden), "{header:?}");
    }
    assert_eq!(
        payload.get("iss"),
        Some(&Value::from(ISSUER)),
        "{payload:?}"
    );
    let exp = payload.get("exp").and_then(Value::as_f64);
    assert!(
        exp.is_some_and(|exp| exp + LEEWAY as f64 > NOW as f64),
        "{payload:?}"
    );
    let aud_ok = match payload.get("aud") {
        Some(Value::String(a)) => a == "app",
        Some(Value::Array(a)) => a.iter().any(|a| a == "app"),
        _ => false,
    };
    assert!(aud_ok, "{payload:?}");
    let principal = &authenticated.principal;
    assert_eq!(
        payload.get("sub").and_then(Value::as_str),
        Some(principal.subject.as_str())
    );
    assert_eq!(principal.issuer, ISSUER);
});
