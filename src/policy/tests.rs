use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::auth::AuthMethod;

fn policy(text: &str) -> Result<Policy, Vec<ConfigError>> {
    parse(&[(PathBuf::from("policies/main.yaml"), text.to_owned())])
}

const SKETCH: &str = "\
version: 1
default: deny
routes:
  - name: health
    path: /healthz
    auth: none
  - name: static
    path: /assets/**
    methods: [GET, HEAD]
    auth: none
  - name: admin
    path: /admin/**
    require:
      roles: { any_of: [admin] }
  - name: orders-write
    path: /api/orders/**
    methods: [POST, PUT, PATCH, DELETE]
    auth: bearer
    require:
      scopes: { all_of: [orders:write] }
  - name: tenant
    path: /t/**
    host: '*.example.com'
    require:
      claims:
        tenant: { one_of: [acme, globex] }
        email_verified: { equals: true }
  - name: everything-else
    path: /**
    auth: any
";

fn who(roles: &[&str], scopes: &[&str], claims: serde_json::Value) -> Principal {
    Principal {
        subject: "alice".into(),
        issuer: "https://idp".into(),
        email: None,
        roles: roles.iter().map(|s| s.to_string()).collect(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        claims: Arc::new(claims),
        method: AuthMethod::Bearer,
    }
}

fn rule_name(p: &Policy, method: &str, path: &str, host: Option<&str>) -> String {
    match p.route(&Method::from_bytes(method.as_bytes()).unwrap(), path, host) {
        Route::Rule(rule) => rule.name.clone(),
        Route::Default(d) => format!("default {d:?}"),
    }
}

#[test]
fn first_match_wins() {
    let p = policy(SKETCH).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(rule_name(&p, "GET", "/healthz", None), "health");
    assert_eq!(rule_name(&p, "GET", "/assets/app.js", None), "static");
    assert_eq!(
        rule_name(&p, "POST", "/assets/app.js", None),
        "everything-else"
    );
    assert_eq!(rule_name(&p, "GET", "/admin", None), "admin");
    assert_eq!(
        rule_name(&p, "DELETE", "/api/orders/7", None),
        "orders-write"
    );
    assert_eq!(
        rule_name(&p, "GET", "/api/orders/7", None),
        "everything-else"
    );
    assert_eq!(
        rule_name(&p, "GET", "/t/x", Some("a.example.com:8443")),
        "tenant"
    );
    assert_eq!(
        rule_name(&p, "GET", "/t/x", Some("badexample.com")),
        "everything-else"
    );
    assert_eq!(
        rule_name(&p, "GET", "/t/x", Some("example.com")),
        "everything-else"
    );
}

#[test]
fn default_is_deny_unless_a_file_says_allow() {
    let only = "version: 1\nroutes:\n  - name: a\n    path: /a\n";
    let p = policy(only).unwrap();
    assert_eq!(
        p.route(&Method::GET, "/b", None),
        Route::Default(DefaultAction::Deny)
    );
    let allow = policy(&only.replace("version: 1\n", "version: 1\ndefault: allow\n")).unwrap();
    assert_eq!(
        allow.route(&Method::GET, "/b", None),
        Route::Default(DefaultAction::Allow)
    );
}

#[test]
fn authorization_outcomes() {
    let p = policy(SKETCH).unwrap();
    let rule = |name: &str| p.rules.iter().find(|r| r.name == name).unwrap();
    assert_eq!(rule("health").authorize(None), Decision::Allow);
    assert_eq!(rule("admin").authorize(None), Decision::Unauthenticated);
    assert_eq!(
        rule("admin").authorize(Some(&who(&["admin"], &[], json!({})))),
        Decision::Allow
    );
    let Decision::Forbidden(denial) = rule("admin").authorize(Some(&who(&["dev"], &[], json!({}))))
    else {
        panic!("dev is not admin");
    };
    assert_eq!(denial.needed, "role one of admin");
    assert!(!denial.scope);
    let Decision::Forbidden(denial) =
        rule("orders-write").authorize(Some(&who(&[], &["orders:read"], json!({}))))
    else {
        panic!("missing scope");
    };
    assert!(denial.scope);
    let tenant = rule("tenant");
    let ok = json!({"tenant": "acme", "email_verified": true});
    assert_eq!(tenant.authorize(Some(&who(&[], &[], ok))), Decision::Allow);
    let array = json!({"tenant": ["other", "globex"], "email_verified": true});
    assert_eq!(
        tenant.authorize(Some(&who(&[], &[], array))),
        Decision::Allow
    );
    for bad in [
        json!({"tenant": "acme", "email_verified": "true"}),
        json!({"tenant": "initech", "email_verified": true}),
        json!({"email_verified": true}),
        json!({"tenant": null, "email_verified": true}),
    ] {
        assert!(matches!(
            tenant.authorize(Some(&who(&[], &[], bad))),
            Decision::Forbidden(_)
        ));
    }
}

#[test]
fn all_of_needs_every_item() {
    let p = policy("version: 1\nroutes:\n  - name: a\n    path: /a\n    require:\n      roles: { all_of: [x, y] }\n").unwrap();
    assert!(matches!(
        p.rules[0].authorize(Some(&who(&["x"], &[], json!({})))),
        Decision::Forbidden(_)
    ));
    assert_eq!(
        p.rules[0].authorize(Some(&who(&["y", "x"], &[], json!({})))),
        Decision::Allow
    );
}

#[test]
fn every_problem_is_reported_with_file_line_and_field() {
    let text = "\
version: 1
default: maybe
routes:
  - name: a
    path: admin/**
  - name: a
    path: /b
    methods: [GET, 'NOT A METHOD']
  - name: c
    path: /c
    auth: session
    on_unauthenticated: sometimes
  - name: d
    path: /d
    auth: none
    require:
      roles: { any_of: [x] }
";
    let errors = policy(text).unwrap_err();
    let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "default"),
            (5, "routes[0].path"),
            (6, "routes[1].name"),
            (8, "routes[1].methods"),
            (12, "routes[2].on_unauthenticated"),
            (13, "routes[3].require"),
        ]
    );
    assert!(
        errors
            .iter()
            .all(|e| e.file == Path::new("policies/main.yaml"))
    );
}

#[test]
fn unknown_keys_are_errors() {
    let errors =
        policy("version: 1\nroutes:\n  - name: a\n    path: /a\n    requires: {}\n").unwrap_err();
    assert_eq!(errors[0].line, 5);
    assert_eq!(errors[0].field, "routes.requires");
}

#[test]
fn shadowed_rules_are_warned_about() {
    let p = policy(
        "version: 1\nroutes:\n  - name: all\n    path: /**\n  - name: admin\n    path: /admin/**\n",
    )
    .unwrap();
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].contains("route `admin` can never match"),
        "{}",
        p.warnings[0]
    );
}

#[test]
fn rules_from_several_files_keep_file_order_and_one_default() {
    let a = (
        PathBuf::from("p/10-a.yaml"),
        "version: 1\ndefault: allow\nroutes:\n  - name: a\n    path: /x\n".to_owned(),
    );
    let b = (
        PathBuf::from("p/20-b.yaml"),
        "version: 1\nroutes:\n  - name: b\n    path: /x\n    methods: [POST]\n".to_owned(),
    );
    let p = parse(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(
        p.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let twice = (
        PathBuf::from("p/30-c.yaml"),
        "version: 1\ndefault: deny\n".to_owned(),
    );
    let errors = parse(&[a, b, twice]).unwrap_err();
    assert_eq!(errors[0].field, "default");
    assert!(errors[0].message.contains("p/10-a.yaml:2"));
}

fn arb_glob() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof!["a", "b", "c", r"\*", r"\*\*", "a\\*"], 0..4)
        .prop_map(|segments| format!("/{}", segments.join("/")))
}

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof!["a", "b", "c", "ab", "ba"], 0..5)
        .prop_map(|s| format!("/{}", s.join("/")))
}

proptest! {
    #[test]
    fn route_is_the_first_rule_that_matches_by_brute_force(
        rules in prop::collection::vec((arb_glob(), prop::option::of(prop_oneof!["GET", "POST"])), 1..12),
        path in arb_path(),
        method in prop_oneof!["GET", "POST"],
    ) {
        let mut text = String::from("version: 1\nroutes:\n");
        for (i, (glob, m)) in rules.iter().enumerate() {
            text.push_str(&format!("  - name: r{i}\n    path: '{glob}'\n"));
            if let Some(m) = m {
                text.push_str(&format!("    methods: [{m}]\n"));
            }
        }
        let Ok(p) = policy(&text) else { return Ok(()) };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let segments: Vec<&str> = glob::split(&path).collect();
        let brute = p.rules.iter().position(|r| {
            r.methods.as_ref().is_none_or(|ms| ms.contains(&method))
                && r.paths.iter().any(|g| reference_match(g.as_str(), &segments))
        });
        let found = match p.route(&method, &path, None) {
            Route::Rule(rule) => p.rules.iter().position(|r| std::ptr::eq(r, rule)),
            Route::Default(_) => None,
        };
        prop_assert_eq!(found, brute);
    }
}

/// An independent glob matcher (dynamic programming over segments) to check the real one.
fn reference_match(glob: &str, path: &[&str]) -> bool {
    let globs: Vec<&str> = glob::split(glob).collect();
    // table[i][j]: globs[i..] matches path[j..]
    let mut table = vec![vec![false; path.len() + 1]; globs.len() + 1];
    table[globs.len()][path.len()] = true;
    for i in (0..globs.len()).rev() {
        for j in (0..=path.len()).rev() {
            table[i][j] = match globs[i] {
                "**" => table[i + 1][j] || (j < path.len() && table[i][j + 1]),
                g => j < path.len() && segment_reference(g, path[j]) && table[i + 1][j + 1],
            };
        }
    }
    table[0][0]
}

fn segment_reference(glob: &str, text: &str) -> bool {
    match glob.split_once('*') {
        None => glob == text,
        Some((prefix, rest)) => {
            text.starts_with(prefix)
                && (prefix.len()..=text.len())
                    .any(|k| text.is_char_boundary(k) && segment_reference(rest, &text[k..]))
        }
    }
}

#[test]
fn case_insensitive_paths_close_case_games() {
    let text = "version: 1\nroutes:\n  - name: admin\n    path: /Admin/**\n  - name: rest\n    path: /**\n";
    let strict = policy(text).unwrap();
    assert_eq!(rule_name(&strict, "GET", "/ADMIN/x", None), "rest");
    let folded =
        policy(&text.replace("version: 1\n", "version: 1\ncase_insensitive_paths: true\n"))
            .unwrap();
    for path in ["/admin/x", "/ADMIN/x", "/aDmIn"] {
        assert_eq!(rule_name(&folded, "GET", path, None), "admin", "{path}");
    }
}

/// Found by `fuzz/` (target `policy`): a route without a name was reported with no line, so
/// in a long file nobody could tell which route it was.
#[test]
fn a_route_without_a_name_is_reported_at_the_route() {
    let errors = policy("version: 1\nroutes:\n  - name: a\n    path: /a\n    auth: none\n  - path: /b\n    auth: none\n")
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].line, errors[0].field.as_str()),
        (6, "routes[1].name"),
        "{errors:?}"
    );
}

#[test]
fn email_domains_match_exactly_by_subdomain_or_any() {
    let p = policy(
        "version: 1\nroutes:\n  - name: corp\n    path: /**\n    require:\n      email_domains: [Example.com, '*.corp.example.org']\n",
    )
    .unwrap();
    let rule = &p.rules[0];
    let with = |email: Option<&str>| {
        let mut principal = who(&[], &[], json!({}));
        principal.email = email.map(str::to_owned);
        rule.authorize(Some(&principal))
    };
    assert_eq!(with(Some("a@example.COM")), Decision::Allow);
    assert_eq!(with(Some("a@eu.corp.example.org")), Decision::Allow);
    for email in [
        None,
        Some("a@corp.example.org"),
        Some("a@badexample.com"),
        Some("a@example.com.evil"),
        Some("example.com"),
        Some("@example.com"),
    ] {
        assert!(matches!(with(email), Decision::Forbidden(_)), "{email:?}");
    }
    assert!(email_in_domains("x@any.where", &["*".into()]));
    let errors = policy(
        "version: 1\nroutes:\n  - name: r\n    path: /**\n    require:\n      email_domains: ['a@b.com', '*']\n",
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].field.ends_with("email_domains[0]"), "{errors:?}");
}

#[test]
fn a_route_limited_to_providers_admits_only_their_issuers() {
    let mut p =
        policy("version: 1\nroutes:\n  - name: corp\n    path: /corp/**\n    providers: [corp]\n")
            .unwrap();
    let rule = &mut p.rules[0];
    assert_eq!(rule.only_provider(), Some("corp"));
    let alice = who(&[], &[], json!({}));
    // Unresolved (no config yet): nobody passes.
    assert!(matches!(
        rule.authorize(Some(&alice)),
        Decision::Forbidden(_)
    ));
    rule.providers[0].issuer = Some("https://corp.example".into());
    let Decision::Forbidden(denial) = rule.authorize(Some(&alice)) else {
        panic!("another issuer passed");
    };
    assert_eq!(denial.needed, "a sign-in with corp");
    let corp = Principal {
        issuer: "https://corp.example".into(),
        ..alice
    };
    assert_eq!(rule.authorize(Some(&corp)), Decision::Allow);
    assert_eq!(rule.authorize(None), Decision::Unauthenticated);
}

#[test]
fn providers_need_a_route_where_someone_signs_in() {
    for auth in ["none", "mtls"] {
        let errors = policy(&format!(
            "version: 1\nroutes:\n  - name: r\n    path: /r\n    auth: {auth}\n    providers: [corp]\n"
        ))
        .unwrap_err();
        assert_eq!(
            (errors[0].line, errors[0].field.as_str()),
            (6, "routes[0].providers"),
            "{errors:?}"
        );
    }
    let errors =
        policy("version: 1\nroutes:\n  - name: r\n    path: /r\n    providers: ['Not A Name']\n")
            .unwrap_err();
    assert_eq!(errors[0].field, "routes[0].providers", "{errors:?}");
}

#[test]
fn a_route_naming_a_provider_the_config_lacks_is_refused_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("main.yaml"),
        "version: 1\nroutes:\n  - name: r\n    path: /r\n    auth: session\n    providers: [corp, partner]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("secret"),
        "a-session-secret-of-at-least-32-chars",
    )
    .unwrap();
    let text = format!(
        "version: 1\nlisten:\n  http: 127.0.0.1:8080\nupstream:\n  url: http://127.0.0.1:3000\npolicies: {}\nlogin:\n  - name: corp\n    issuer: https://corp.example\n    client_id: app\n    redirect_url: https://app.example/oauth2/callback\nsession:\n  secrets: [{{ file: {} }}]\n",
        policies.display(),
        dir.path().join("secret").display()
    );
    let config = crate::config::parse(
        &text,
        &dir.path().join("g.yaml"),
        &crate::config::Overrides::default(),
    )
    .unwrap();
    let errors = load_for(&config).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 3, "{errors:?}");
    assert!(errors[0].file.ends_with("main.yaml"));
    assert!(
        errors[0].message.contains("`partner`") && errors[0].message.contains("it has: corp"),
        "{errors:?}"
    );
    // With the provider named right, the issuer is resolved.
    std::fs::write(
        policies.join("main.yaml"),
        "version: 1\nroutes:\n  - name: r\n    path: /r\n    auth: session\n    providers: [corp]\n",
    )
    .unwrap();
    let policy = load_for(&config).unwrap();
    assert_eq!(
        policy.rules[0].providers[0].issuer.as_deref(),
        Some("https://corp.example")
    );
    // In dev mode the dev login stands in for every provider, named or not.
    std::fs::write(
        policies.join("main.yaml"),
        "version: 1\nroutes:\n  - name: r\n    path: /r\n    auth: session\n    providers: [anything]\n",
    )
    .unwrap();
    let mut dev = config.clone();
    dev.dev_users = Some(Vec::new());
    let policy = load_for(&dev).unwrap();
    assert_eq!(
        policy.rules[0].providers[0].issuer.as_deref(),
        Some(crate::devissuer::ISSUER)
    );
    assert!(load_for(&config).is_err(), "outside dev mode it is unknown");
}
