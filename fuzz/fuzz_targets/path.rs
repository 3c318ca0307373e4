//! Path canonicalization (`gatehouse::path::canonicalize`): whatever it accepts is a fixed
//! point (idempotent), starts with `/`, has no `.`/`..` segments, no `//`, no `;params`, and
//! the policy decides the same on the canonical path as on its re-canonicalization (so the
//! decision path is the forwarded path).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use gatehouse::path::canonicalize;
use gatehouse::policy::{self, Policy, Route};
use http::Method;
use libfuzzer_sys::fuzz_target;

const POLICY: &str = "version: 1
default: deny
routes:
  - name: public
    path: /public/**
    auth: none
  - name: admin
    path: /admin/**
    auth: bearer
  - name: exact
    path: /a/b
    auth: none
";

static POLICIES: LazyLock<[Policy; 2]> = LazyLock::new(|| {
    let sensitive = vec![(PathBuf::from("p.yaml"), POLICY.to_owned())];
    let insensitive = vec![(
        PathBuf::from("p.yaml"),
        format!("case_insensitive_paths: true\n{POLICY}"),
    )];
    match (policy::parse(&sensitive), policy::parse(&insensitive)) {
        (Ok(a), Ok(b)) => [a, b],
        (a, b) => panic!("the fuzz policy does not parse: {a:?} {b:?}"),
    }
});

fn name(route: Route<'_>) -> String {
    match route {
        Route::Rule(rule) => rule.name.clone(),
        Route::Default(action) => format!("default {action:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(once) = canonicalize(raw) else {
        return;
    };
    assert!(once.starts_with('/'), "{raw:?} -> {once:?}");
    assert!(!once.contains("//"), "{raw:?} -> {once:?}");
    assert!(!once.contains(';'), "{raw:?} -> {once:?}");
    assert!(
        !once.split('/').any(|s| s == "." || s == ".."),
        "{raw:?} -> {once:?}"
    );
    assert!(
        once.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'),
        "{raw:?} -> {once:?}"
    );
    let bytes = once.as_bytes();
    for (i, _) in once.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
        let upper = hex.len() == 2
            && hex
                .iter()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b));
        assert!(upper, "escape not normalised: {raw:?} -> {once:?}");
        let value = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16).unwrap_or(0);
        let unreserved = value.is_ascii_alphanumeric() || b"-._~".contains(&value);
        assert!(!unreserved, "unreserved escape kept: {raw:?} -> {once:?}");
    }
    let twice = canonicalize(&once);
    assert_eq!(
        twice.as_deref(),
        Ok(once.as_str()),
        "not idempotent: {raw:?}"
    );
    let twice = twice.unwrap_or_default();
    for policy in POLICIES.iter() {
        for method in [Method::GET, Method::POST] {
            let decided = name(policy.route(&method, &once, None));
            let forwarded = name(policy.route(&method, &twice, None));
            assert_eq!(decided, forwarded, "{raw:?}");
        }
    }
});
