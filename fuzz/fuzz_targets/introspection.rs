//! What an RFC 7662 introspection answer means (`gatehouse::auth::introspect::answer::judge`),
//! for an issuer `https://idp.example` with audience `orders-api`, at a fixed clock.
//! The body comes from the IdP, so anything that is not one JSON object with distinct member
//! names and a boolean `active` must be `Malformed` (a 503), never a 401 and never a pass.
//! Whatever is judged active must say `"active": true`, name the audience, not be expired
//! (past the leeway), not be bound to a key (`cnf`), and give a principal whose subject is
//! one of the answer's `sub`, `username` or `client_id`. Never panics.
#![no_main]

use std::time::Duration;

use gatehouse::auth::ClaimMapping;
use gatehouse::auth::introspect::answer::{Answer, Expect, judge};
use gatehouse::identity::IdentityRules;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 30;

fuzz_target!(|data: &[u8]| {
    let claims = ClaimMapping::default();
    let audiences = ["orders-api".to_owned()];
    let expect = Expect {
        issuer: "https://idp.example",
        audiences: &audiences,
        leeway: Duration::from_secs(LEEWAY),
        claims: &claims,
        rules: IdentityRules::default(),
    };
    let Ok(Answer::Active { principal, exp }) = judge(data, &expect, NOW) else {
        return;
    };
    // serde_json keeps the last of duplicate members; judge refused duplicates already.
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(data) else {
        panic!("judged active, but not a JSON object");
    };
    assert_eq!(answer.get("active"), Some(&Value::Bool(true)));
    assert!(!answer.contains_key("cnf"), "a key-bound token passed");
    let aud_ok = match answer.get("aud") {
        Some(Value::String(a)) => a == "orders-api",
        Some(Value::Array(list)) => list.iter().any(|a| a == "orders-api"),
        _ => false,
    };
    assert!(aud_ok, "audience not named: {:?}", answer.get("aud"));
    if let Some(exp) = exp {
        assert!(
            exp.saturating_add(LEEWAY) > NOW,
            "expired token passed: exp {exp}"
        );
    }
    let named = ["sub", "username", "client_id"]
        .iter()
        .any(|k| answer.get(*k) == Some(&Value::String(principal.subject.clone())));
    assert!(
        named,
        "subject {:?} is not from the answer",
        principal.subject
    );
    assert!(!principal.subject.is_empty());
    if let Some(Value::String(iss)) = answer.get("iss") {
        assert_eq!(iss, "https://idp.example");
    }
});
