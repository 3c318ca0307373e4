use std::sync::Arc;

use http::header::HeaderValue;

use super::*;
use crate::auth::AuthMethod;

fn own() -> Own<'static> {
    Own {
        method: &Method::GET,
        path: "/oauth2/auth",
        host: Some("auth.example.com"),
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(*name, HeaderValue::from_static(value));
    }
    h
}

#[test]
fn a_trusted_proxy_describes_the_original_request_in_canonical_form() {
    let h = headers(&[
        ("x-forwarded-method", "POST"),
        ("x-forwarded-uri", "/public/%2e%2e/admin//x;p?q=/public#f"),
        ("x-forwarded-host", "app.example.com"),
    ]);
    let found = original(&h, true, own()).unwrap();
    assert_eq!(found.method, Method::POST);
    assert_eq!(found.path, "/admin/x");
    assert_eq!(found.host.as_deref(), Some("app.example.com"));
}

#[test]
fn nginx_spellings_and_absolute_uris_are_read() {
    let h = headers(&[
        ("x-original-method", "DELETE"),
        ("x-original-uri", "https://app.example.com:8443/a/b?c"),
    ]);
    let found = original(&h, true, own()).unwrap();
    assert_eq!(found.method, Method::DELETE);
    assert_eq!(found.path, "/a/b");
    assert_eq!(found.host.as_deref(), Some("app.example.com:8443"));
    // X-Forwarded-* wins over X-Original-*.
    let h = headers(&[("x-forwarded-uri", "/one"), ("x-original-uri", "/two")]);
    assert_eq!(original(&h, true, own()).unwrap().path, "/one");
}

#[test]
fn an_untrusted_peer_is_judged_by_its_own_request() {
    let h = headers(&[
        ("x-forwarded-method", "POST"),
        ("x-forwarded-uri", "/public/x"),
        ("x-forwarded-host", "app.example.com"),
    ]);
    let found = original(&h, false, own()).unwrap();
    assert_eq!(found.method, Method::GET);
    assert_eq!(found.path, "/oauth2/auth");
    assert_eq!(found.host.as_deref(), Some("auth.example.com"));
}

#[test]
fn ambiguous_descriptions_are_refused() {
    for pairs in [
        &[("x-forwarded-uri", "/a"), ("x-forwarded-uri", "/b")][..],
        &[("x-forwarded-uri", "/a%2fb")],
        &[("x-forwarded-uri", "//evil/a")],
        &[("x-forwarded-uri", "admin")],
        &[("x-forwarded-uri", "https://user@evil/a")],
        &[("x-forwarded-method", "GE T")],
        &[("x-forwarded-host", "a.example.com, b.example.com")],
    ] {
        assert!(original(&headers(pairs), true, own()).is_err(), "{pairs:?}");
    }
}

fn principal(email: Option<&str>, roles: &[&str]) -> Principal {
    Principal {
        subject: "alice".into(),
        issuer: "i".into(),
        email: email.map(str::to_owned),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        scopes: Vec::new(),
        claims: Arc::new(serde_json::json!({})),
        method: AuthMethod::Session,
    }
}

#[test]
fn query_constraints_follow_oauth2_proxy() {
    let alice = principal(Some("Alice@Example.com"), &["dev", "ops"]);
    let ok = |q: &str| Constraints::parse(Some(q)).unmet(&alice).is_none();
    assert!(ok(""));
    assert!(ok("other=1"));
    assert!(ok("allowed_groups=admin,ops"));
    assert!(ok("allowed_groups=admin&allowed_groups=dev"));
    assert!(!ok("allowed_groups=admin"));
    assert!(!ok("allowed_groups="), "present but empty allows nobody");
    assert!(ok("allowed_emails=bob@example.com,alice@example.com"));
    assert!(!ok("allowed_emails=bob@example.com"));
    assert!(ok("allowed_email_domains=example.com"));
    assert!(ok("allowed_email_domains=*"));
    assert!(!ok("allowed_email_domains=ample.com"));
    assert!(!ok("allowed_email_domains=*.example.com"));
    assert!(
        !ok("allowed_groups=dev&allowed_email_domains=corp.com"),
        "all must hold"
    );
    let sub = principal(Some("a@eu.example.com"), &[]);
    let ok = |q: &str| Constraints::parse(Some(q)).unmet(&sub).is_none();
    assert!(ok("allowed_email_domains=*.example.com"));
    assert!(ok("allowed_email_domains=.example.com"));
    assert!(!ok("allowed_email_domains=example.com"));
    assert!(!ok("allowed_email_domains=*.xample.com"));
    let nobody = principal(None, &[]);
    assert!(
        Constraints::parse(Some("allowed_email_domains=*"))
            .unmet(&nobody)
            .is_some()
    );
}
