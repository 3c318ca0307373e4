//! A differential check of the canonical path against a lenient origin (issue 10, item 8).
//!
//! The origin behind Gatehouse may read the path it receives more loosely than we do: decode
//! every escape once, take `\` for `/`, drop `;params`, merge `//`, resolve dot segments and
//! strip trailing dots and spaces (Windows/IIS), in whatever order its stack happens to use.
//! The property: whatever Gatehouse forwards under a permissive catch-all, for a caller
//! without the admin role, never means an admin path to such an origin, in any order of
//! those steps.

use http::Method;
use proptest::prelude::*;

use super::canonicalize;
use crate::auth::{AuthMethod, Principal};
use crate::policy::{self, Decision, DefaultAction, Policy, Route};

const POLICY: &str = "\
version: 1
default: deny
routes:
  - name: admin
    path: /admin/**
    require:
      roles: { any_of: [admin] }
  - name: public
    path: /public/**
    auth: none
  - name: everything-else
    path: /**
    auth: none
";

fn policy() -> Policy {
    policy::parse(&[("policies/main.yaml".into(), POLICY.to_owned())]).unwrap()
}

/// One step of a lenient origin's path handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Every `%XX` decoded, once.
    Decode,
    /// Decoded once, then cut at the first `?` or `#`, as an origin that decodes the whole
    /// target before it splits off the query would (the other spelling of `Decode`).
    DecodeThenSplit,
    /// `\` read as `/`.
    Backslash,
    /// `;...` dropped up to the next `/`.
    Params,
    /// `//` read as `/`.
    Merge,
    /// `.` and `..` resolved (`..` at the root stays at the root).
    Dots,
    /// Trailing `.` and ` ` stripped from each segment (but `.` and `..` left alone).
    Trailing,
}

const STEPS: [Step; 6] = [
    Step::Decode,
    Step::Backslash,
    Step::Params,
    Step::Merge,
    Step::Dots,
    Step::Trailing,
];

/// Every order of the six steps, each once with `Decode` and once with `DecodeThenSplit`;
/// the first is the one the issue lists.
fn orders() -> Vec<Vec<Step>> {
    fn permute(done: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        if done.len() == STEPS.len() {
            out.push(done.clone());
            return;
        }
        for step in STEPS {
            if !done.contains(&step) {
                done.push(step);
                permute(done, out);
                done.pop();
            }
        }
    }
    let mut out = Vec::new();
    permute(&mut Vec::new(), &mut out);
    let splitting: Vec<Vec<Step>> = out
        .iter()
        .map(|order| {
            order
                .iter()
                .map(|&s| match s {
                    Step::Decode => Step::DecodeThenSplit,
                    s => s,
                })
                .collect()
        })
        .collect();
    out.extend(splitting);
    out
}

fn decode_once(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escape {
            Some(value) => {
                out.push(value);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn map_segments(path: &str, f: impl Fn(&str) -> &str) -> String {
    path.split('/').map(f).collect::<Vec<_>>().join("/")
}

fn resolve_dots(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        if matches!(*segment, "." | "..") && i == segments.len() - 1 {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

fn apply(step: Step, path: &str) -> String {
    match step {
        Step::Decode => decode_once(path),
        Step::DecodeThenSplit => {
            let decoded = decode_once(path);
            let end = decoded.find(['?', '#']).unwrap_or(decoded.len());
            decoded[..end].to_owned()
        }
        Step::Backslash => path.replace('\\', "/"),
        Step::Params => map_segments(path, |s| s.split(';').next().unwrap_or_default()),
        Step::Merge => {
            let mut merged = path.to_owned();
            while merged.contains("//") {
                merged = merged.replace("//", "/");
            }
            merged
        }
        Step::Dots => resolve_dots(path),
        Step::Trailing => map_segments(path, |s| match s {
            "." | ".." => s,
            s => s.trim_end_matches(['.', ' ']),
        }),
    }
}

/// What a lenient origin makes of `path`, doing the steps in `order`.
fn lenient(path: &str, order: &[Step]) -> String {
    order
        .iter()
        .fold(path.to_owned(), |path, &step| apply(step, &path))
}

/// True when the origin would serve `path` from under `/admin` (empty segments ignored, so
/// even an origin that skipped a merge is judged as if it had merged).
fn is_admin(path: &str) -> bool {
    path.split('/').find(|s| !s.is_empty()) == Some("admin")
}

fn nobody() -> Principal {
    Principal {
        subject: "mallory".into(),
        issuer: "https://idp".into(),
        email: None,
        roles: vec!["reader".into()],
        scopes: Vec::new(),
        claims: std::sync::Arc::new(serde_json::json!({})),
        method: AuthMethod::Bearer,
    }
}

/// What the check found wrong with `raw`, if anything: Gatehouse allowed a caller without the
/// admin role, and some order of lenient steps reads the forwarded path as an admin path.
fn bypass(policy: &Policy, raw: &str) -> Option<String> {
    let forwarded = canonicalize(raw).ok()?;
    let principal = nobody();
    for caller in [None, Some(&principal)] {
        let decision = match policy.route(&Method::GET, &forwarded, None) {
            Route::Rule(rule) => rule.authorize(caller),
            Route::Default(DefaultAction::Allow) => Decision::Allow,
            Route::Default(DefaultAction::Deny) => continue,
        };
        if decision != Decision::Allow {
            continue;
        }
        for order in orders() {
            let seen = lenient(&forwarded, &order);
            if is_admin(&seen) {
                return Some(format!(
                    "{raw:?} forwarded as {forwarded:?} is read as {seen:?} by {order:?}"
                ));
            }
        }
    }
    None
}

#[test]
fn the_model_reads_known_tricks_as_admin() {
    // The model itself must see the classic tricks, or the property proves nothing.
    let listed = &orders()[0];
    for raw in [
        "/admin",
        "/public/../admin/x",
        "/public/%2e%2e/admin",
        "/public\\..\\admin",
        "/admin;x=1/users",
        "//admin",
        "/admin./users",
        "/admin%20/users",
        "/admin%3bx/users",
        "/%61dmin",
    ] {
        assert!(is_admin(&lenient(raw, listed)), "{raw}");
    }
    assert!(!is_admin(&lenient("/public/%252e%252e/admin", listed)));
    let splitting = orders()
        .into_iter()
        .find(|o| o.contains(&Step::DecodeThenSplit))
        .unwrap();
    assert!(is_admin(&lenient("/admin%3F/users", &splitting)));
    assert!(is_admin(&lenient("/admin%23/users", &splitting)));
    assert_eq!(orders().len(), 1440);
}

#[test]
fn hand_picked_tricks_do_not_bypass() {
    let policy = policy();
    let mut bypasses = Vec::new();
    for raw in [
        "/admin",
        "/admin/users",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/..%2fadmin",
        "/public/..%5cadmin",
        "/public\\..\\admin",
        "/public/..;x=1/admin",
        "/admin;x=1/users",
        "/admin;/users",
        "//admin",
        "/admin.",
        "/admin./users",
        "/admin../users",
        "/admin.../users",
        "/admin%2e/users",
        "/admin%20/users",
        "/admin%20",
        "/admin /users",
        "/admin.%20/users",
        "/admin%20./users",
        "/admin%3b/users",
        "/admin%3Bx=1/users",
        "/admin%3F/users",
        "/admin%3f",
        "/admin%23/users",
        "/public/%252e%252e/admin",
        "/admin%00/users",
        "/admin%",
        "/x/.../admin",
        "/x/.. /admin",
        "/x/..%20/admin",
        "/x/. /admin",
        "/%61dmin%2e",
    ] {
        bypasses.extend(bypass(&policy, raw));
    }
    assert!(bypasses.is_empty(), "{bypasses:#?}");
}

/// Pieces a segment is built from: the names that matter and the tricks around them.
const PIECES: &[&str] = &[
    "admin", "admin", "public", "x", "", ".", "..", "...", "%2e", "%2E", "%2e%2e", "%2f", "%2F",
    "%5c", "%5C", "\\", ";x=1", ";", "%3b", "%3B", "%3f", "%3F", "%23", "%20", " ", "%09", "%252e",
    "%25", "%00", "%", "%61", "%C3%A9", "é", "~", "-", "_",
];

fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 1..4).prop_map(|p| p.concat())
}

fn raw_path() -> impl Strategy<Value = String> {
    (prop::collection::vec(segment(), 1..6), any::<bool>()).prop_map(|(segments, slash)| {
        let mut path = format!("/{}", segments.join("/"));
        if slash {
            path.push('/');
        }
        path
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn nothing_forwarded_to_a_caller_without_the_role_is_an_admin_path(raw in raw_path()) {
        let found = bypass(&policy(), &raw);
        prop_assert!(found.is_none(), "{}", found.unwrap_or_default());
    }
}
