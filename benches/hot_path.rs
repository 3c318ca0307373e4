//! Micro-benchmarks of the per-request hot path: token verification (cold and cached), route
//! matching, header hygiene, path canonicalization and the signed identity assertion. See `bench/README.md` for what each
//! bench measures and the latest results.
//!
//! Run with `cargo bench --bench hot_path`. Under `cargo test --all-targets` every bench runs
//! once, as a smoke test of the setup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group};
use gatehouse::assertion::Assertions;
use gatehouse::auth::jwt::Verifier;
use gatehouse::auth::signing::Signer;
use gatehouse::auth::{ClaimMapping, Principal};
use gatehouse::config::{
    AssertionSettings, DEFAULT_ALGORITHMS, IdentitySettings, IssuerSettings, JwksSettings,
    JwksSource, TokenSettings,
};
use gatehouse::headers::{self, TrustedProxies};
use gatehouse::identity::{IdentityHeaders, IdentityRules};
use gatehouse::path;
use gatehouse::policy::{self, Route};
use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use serde_json::json;

const ISSUER: &str = "https://idp.bench.example";
const AUDIENCE: &str = "gatehouse-bench";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A token as an IdP would issue it: a handful of standard claims, roles and scopes.
fn token(signer: &Signer) -> String {
    let now = gatehouse::auth::jwt::system_clock();
    let claims = json!({
        "iss": ISSUER,
        "aud": [AUDIENCE, "other-api"],
        "sub": "5f3c2a9e-8d1b-4c7a-9e2f-1a2b3c4d5e6f",
        "email": "alice@example.com",
        "email_verified": true,
        "roles": ["orders-admin", "dev"],
        "scope": "openid email orders:read orders:write",
        "tenant": "acme",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "b9a0c1d2-e3f4-4a5b-8c6d-7e8f9a0b1c2d",
    });
    signer.sign(&claims).unwrap()
}

struct Tokens {
    /// Keeps the JWKS file for as long as the verifiers may need it.
    _dir: tempfile::TempDir,
    settings: IssuerSettings,
    rs256: String,
    es256: String,
}

fn tokens() -> Tokens {
    let rsa = Signer::generate(Algorithm::RS256, "rsa-1").unwrap();
    let ec = Signer::generate(Algorithm::ES256, "ec-1").unwrap();
    let jwks = json!({ "keys": [rsa.jwk(), ec.jwk()] });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let settings = IssuerSettings {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        keys: JwksSource::File(file),
        algorithms: DEFAULT_ALGORITHMS.to_vec(),
        claims: ClaimMapping::default(),
        leeway: Duration::from_secs(60),
        pass_authorization: false,
        jwks: JwksSettings::default(),
        introspection: None,
    };
    Tokens {
        _dir: dir,
        settings,
        rs256: token(&rsa),
        es256: token(&ec),
    }
}

/// A verifier whose keys are loaded (the background refresher has fetched the file once).
fn verifier(rt: &tokio::runtime::Runtime, settings: &IssuerSettings, cache_size: u64) -> Verifier {
    let tokens = TokenSettings {
        max_bytes: 8192,
        cache_size,
    };
    let verifier = Verifier::new(
        std::slice::from_ref(settings),
        tokens,
        IdentityRules::default(),
        reqwest::Client::new(),
    );
    for jwks in verifier.key_sets() {
        let mut loaded = jwks.loaded();
        rt.spawn(jwks.clone().run());
        rt.block_on(loaded.wait_for(|l| *l)).unwrap();
    }
    verifier
}

fn bench_verify(c: &mut Criterion) {
    let rt = runtime();
    let t = tokens();
    let cold = verifier(&rt, &t.settings, 0);
    let cached = verifier(&rt, &t.settings, 10_000);
    for token in [&t.rs256, &t.es256] {
        rt.block_on(cold.verify(token)).unwrap();
    }
    // Warms the cache.
    rt.block_on(cached.verify(&t.rs256)).unwrap();

    let mut group = c.benchmark_group("verify");
    group.bench_function("rs256_cold", |b| {
        b.to_async(&rt).iter(|| cold.verify(black_box(&t.rs256)));
    });
    group.bench_function("es256_cold", |b| {
        b.to_async(&rt).iter(|| cold.verify(black_box(&t.es256)));
    });
    group.bench_function("cache_hit", |b| {
        b.to_async(&rt).iter(|| cached.verify(black_box(&t.rs256)));
    });
    group.finish();
}

const SERVICES: [&str; 19] = [
    "orders",
    "users",
    "invoices",
    "payments",
    "carts",
    "catalog",
    "inventory",
    "shipments",
    "returns",
    "reviews",
    "coupons",
    "accounts",
    "teams",
    "projects",
    "reports",
    "exports",
    "webhooks",
    "audit",
    "billing",
];

/// 100 rules: five front rules (public and host-bound) and five per service, in the order an
/// operator would write them (specific before general).
fn policy_yaml() -> String {
    let mut y = String::from(
        "version: 1
default: deny
routes:
  - name: health
    path: /healthz
    auth: none
  - name: static
    paths: [/static/**, /assets/*.css, /assets/*.js]
    methods: [GET, HEAD]
    auth: none
  - name: well-known
    path: /.well-known/**
    auth: none
  - name: tenant-portal
    path: /t/**
    host: '*.tenants.example.com'
    require:
      claims:
        tenant: { one_of: [acme, globex] }
  - name: admin-console
    path: /console/**
    host: admin.example.com
    require:
      roles: { any_of: [admin] }
",
    );
    for svc in SERVICES {
        y.push_str(&format!(
            "  - name: {svc}-export
    path: /api/v1/{svc}/*/export/*.csv
    methods: [GET]
    require:
      scopes: {{ all_of: [{svc}:export] }}
  - name: {svc}-admin
    path: /api/v1/{svc}/admin/**
    host: admin.example.com
    require:
      roles: {{ any_of: [{svc}-admin, admin] }}
  - name: {svc}-items-write
    path: /api/v1/{svc}/*/items/**
    methods: [POST, PUT, DELETE]
    auth: bearer
  - name: {svc}-read
    paths: [/api/v1/{svc}/**, /api/v2/{svc}/**]
    methods: [GET, HEAD]
    require:
      scopes: {{ any_of: [{svc}:read, {svc}:write] }}
  - name: {svc}-write
    path: /api/v1/{svc}/**
    methods: [POST, PUT, PATCH, DELETE]
    auth: bearer
    require:
      scopes: {{ all_of: [{svc}:write] }}
"
        ));
    }
    y
}

fn bench_policy(c: &mut Criterion) {
    let policy = policy::parse(&[(PathBuf::from("policies/bench.yaml"), policy_yaml())]).unwrap();
    assert_eq!(policy.rules.len(), 100);
    let host = Some("api.example.com:8443");
    // Matches only the very last rule (`billing-write`).
    let last = (Method::PATCH, "/api/v1/billing/42");
    // Shares `/api/v1/` with 95 rules, then matches none of them.
    let none = (Method::GET, "/api/v1/unknown-service/42");
    match policy.route(&last.0, last.1, host) {
        Route::Rule(rule) => assert_eq!(rule.name, "billing-write"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        policy.route(&none.0, none.1, host),
        Route::Default(_)
    ));

    let mut group = c.benchmark_group("policy/match_100_rules");
    for (name, (method, path)) in [("last_rule", &last), ("no_match", &none)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(policy.route(black_box(method), black_box(path), black_box(host)));
            });
        });
    }
    group.finish();
}

/// A browser-ish request from an untrusted client, with hop-by-hop headers (one named only in
/// `Connection`), forwarding headers and spoofed identity headers.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("accept", "application/json, text/plain, */*"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-GB,en;q=0.7"),
        (
            "authorization",
            "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl",
        ),
        ("content-type", "application/json"),
        ("content-length", "512"),
        ("cookie", "theme=dark; _ga=GA1.2.123456789.1700000000"),
        ("connection", "keep-alive, X-Debug-Token"),
        ("keep-alive", "timeout=5"),
        ("x-debug-token", "dbg-123"),
        ("te", "trailers"),
        ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
        ("x-real-ip", "203.0.113.9"),
        ("x-user-id", "mallory"),
        ("X_User_Roles", "admin"),
        ("x-request-id", "req-7f3a9c"),
    ] {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static(value),
        );
    }
    h
}

fn principal() -> Principal {
    Principal {
        subject: "5f3c2a9e-8d1b-4c7a-9e2f-1a2b3c4d5e6f".into(),
        issuer: ISSUER.into(),
        email: Some("alice@example.com".into()),
        roles: vec!["orders-admin".into(), "dev".into()],
        scopes: ["openid", "email", "orders:read", "orders:write"]
            .map(String::from)
            .to_vec(),
        claims: Arc::new(json!({})),
        method: gatehouse::auth::AuthMethod::Bearer,
    }
}

fn bench_headers(c: &mut Criterion) {
    let request = request_headers();
    let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let peer: IpAddr = "198.51.100.23".parse().unwrap();
    let identity = IdentityHeaders::new(IdentitySettings {
        email: Some(HeaderName::from_static("x-user-email")),
        scopes: Some(HeaderName::from_static("x-user-scopes")),
        ..IdentitySettings::default()
    });
    let hygiene = |h: &mut HeaderMap| {
        headers::remove_hop_by_hop(h);
        identity.strip_spoofed(h);
        let host = h.get(http::header::HOST).cloned();
        headers::set_forwarded(h, peer, "https", host, &trusted);
    };
    let mut clean = request.clone();
    hygiene(&mut clean);
    for gone in [
        "connection",
        "x-debug-token",
        "x-user-id",
        "x_user_roles",
        "x-real-ip",
    ] {
        assert!(!clean.contains_key(gone), "{gone}");
    }
    assert_eq!(clean["x-forwarded-for"], "198.51.100.23");
    let who = principal();

    let mut group = c.benchmark_group("headers");
    group.bench_function("clone", |b| b.iter(|| black_box(request.clone())));
    group.bench_function("hygiene", |b| {
        b.iter(|| {
            let mut h = black_box(&request).clone();
            hygiene(&mut h);
            h
        });
    });
    group.bench_function("inject", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |h| identity.inject(h, black_box(&who)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn bench_assertion(c: &mut Criterion) {
    let settings = AssertionSettings {
        header: HeaderName::from_static("x-gatehouse-assertion"),
        audience: "bench-app".into(),
        issuer: "gatehouse".into(),
        ttl: Duration::from_secs(60),
        key_file: None,
        origin: gatehouse::config::Origin {
            file: PathBuf::from("bench.yaml"),
            line: 0,
            column: 0,
            field: "identity.assertion".into(),
        },
        publish: false,
    };
    let assertions = Assertions::new(&settings).unwrap();
    let who = principal();
    assertions.for_principal(&who).unwrap();
    let mut group = c.benchmark_group("assertion");
    // The common case: this identity's assertion is cached.
    group.bench_function("cache_hit", |b| {
        b.iter(|| assertions.for_principal(black_box(&who)).unwrap())
    });
    // A new identity every time: claims, ES256 signature, cache insert.
    let mut n = 0u64;
    group.bench_function("sign", |b| {
        b.iter_batched_ref(
            || {
                n += 1;
                Principal {
                    subject: format!("user-{n}"),
                    ..principal()
                }
            },
            |p| assertions.for_principal(black_box(p)).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn bench_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("path/canonicalize");
    for (name, raw, canonical) in [
        ("plain", "/api/v1/orders/123", "/api/v1/orders/123"),
        ("tricky", "/a/./b/../c/%7euser;x//d", "/a/c/~user/d"),
    ] {
        assert_eq!(path::canonicalize(raw).unwrap(), canonical);
        group.bench_function(name, |b| b.iter(|| path::canonicalize(black_box(raw))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the bench machine is small and shared. Command-line flags still override.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots();
    targets = bench_verify, bench_policy, bench_headers, bench_path, bench_assertion
}

fn main() {
    gatehouse::install_crypto_provider();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
