//! The rules, against the scripted endpoint of `fake`.

use std::sync::Arc;

use futures_util::future::join_all;
use gatehouse::auth::signing::Signer;
use gatehouse::server::Running;
use jsonwebtoken::Algorithm;
use serde_json::json;

use super::fake::{Fake, SECRET};
use super::*;

struct Fixture {
    pki: Pki,
    app: Upstream,
    fake: Fake,
    gh: Running,
    client: Client,
    signer: Signer,
    issuer: String,
}

/// The config of a fixture whose issuer is `https://NAME.example` (names keep the metrics
/// of parallel tests apart); `extra` lines go into its `introspection` section.
fn config(
    pki: &Pki,
    app: &Upstream,
    fake: &Fake,
    signer: &Signer,
    name: &str,
    extra: &[&str],
) -> String {
    let dir = pki.dir.path();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, signer.jwks().to_string()).unwrap();
    let secret = dir.join("introspection-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let mut yaml = format!(
        "issuers:
  - issuer: https://{name}.example
    audiences: [orders-api]
    jwks_file: {jwks}
    introspection:
      url: {url}
      client_id: gatehouse
      client_secret: {{ file: {secret} }}
",
        jwks = jwks.display(),
        url = fake.url,
        secret = secret.display(),
    );
    for line in extra {
        yaml.push_str(&format!("      {line}\n"));
    }
    config_text(pki, &app.url(), &yaml)
}

async fn fixture(name: &str, extra: &[&str]) -> Fixture {
    let pki = pki();
    write_policy(&pki);
    let app = ok_upstream().await;
    let fake = Fake::start().await;
    let signer = Signer::generate(Algorithm::ES256, "k1").unwrap();
    let gh = start(&config(&pki, &app, &fake, &signer, name, extra)).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    Fixture {
        pki,
        app,
        fake,
        gh,
        client,
        signer,
        issuer: format!("https://{name}.example"),
    }
}

impl Fixture {
    async fn get(&self, path: &str, token: &str) -> Response<Bytes> {
        self.client.h1(bearer(path, token)).await
    }

    async fn metric(&self, name: &str, result: &str) -> f64 {
        let series = format!("{name}{{issuer=\"{}\",result=\"{result}\"}}", self.issuer);
        metric(self.gh.admin_addr, &series).await
    }
}

#[tokio::test]
async fn an_active_answer_is_the_principal_and_is_reused() {
    let f = fixture("active", &["cache_ttl: 10m"]).await;
    let response = f.get("/orders/1", "good-1").await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    let seen = f.app.seen();
    assert_eq!(seen[0].header("x-user-id"), Some("alice"));
    assert_eq!(seen[0].header("x-user-roles"), Some("admin"));
    assert_eq!(seen[0].header("authorization"), None);
    // Fresh connections (no per-connection memo): the cache answers.
    for _ in 0..3 {
        assert_eq!(f.get("/orders/1", "good-1").await.status(), 200);
    }
    assert_eq!(f.fake.calls_for("good-1"), 1);
    assert_eq!(
        f.metric("gatehouse_introspections_total", "active").await,
        1.0
    );
    assert_eq!(
        f.metric("gatehouse_introspection_cache_total", "hit").await,
        3.0
    );
    let call = &f.fake.calls()[0];
    assert_eq!(call.form["token_type_hint"], "access_token");
    assert!(!call.form.contains_key("client_secret"));
    assert!(call.authorization.as_deref().unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn inactive_expired_and_foreign_tokens_are_401() {
    let f = fixture("refused", &[]).await;
    for token in ["inactive-1", "otheraud-1", "expired-1"] {
        let response = f.get("/", token).await;
        assert_eq!(response.status(), 401, "{token}: {}", body_text(&response));
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{token}: {challenge}");
    }
    let inactive = f.get("/", "inactive-2").await;
    assert!(body_text(&inactive).contains("not active"));
    assert!(f.app.seen().is_empty());
    assert_eq!(
        f.metric("gatehouse_introspections_total", "inactive").await,
        2.0
    );
    assert_eq!(
        f.metric("gatehouse_introspections_total", "refused").await,
        2.0
    );
}

#[tokio::test]
async fn unusable_answers_and_failures_are_503_never_401() {
    let f = fixture("failing", &["timeout: 300ms"]).await;
    for token in ["garbage-1", "stringly-1", "http500-1", "never-1"] {
        let response = f.get("/", token).await;
        assert_eq!(response.status(), 503, "{token}: {}", body_text(&response));
        assert_eq!(response.headers()["retry-after"], "5", "{token}");
        assert!(!response.headers().contains_key("www-authenticate"));
        assert!(body_text(&response).contains("introspection_unavailable"));
    }
    assert!(f.app.seen().is_empty());
    // Failures are not remembered: the next request asks again.
    assert_eq!(f.get("/", "http500-1").await.status(), 503);
    assert_eq!(f.fake.calls_for("http500-1"), 2);
    assert_eq!(
        f.metric("gatehouse_introspections_total", "malformed")
            .await,
        2.0
    );
    assert_eq!(
        f.metric("gatehouse_introspections_total", "error").await,
        3.0
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_503_not_401() {
    let f = fixture("wrong-secret", &[]).await;
    std::fs::write(
        f.pki.dir.path().join("introspection-secret"),
        "not-the-secret",
    )
    .unwrap();
    // The secret is read for every call: the rotated (wrong) one is used at once.
    let response = f.get("/", "good-1").await;
    assert_eq!(response.status(), 503, "{}", body_text(&response));
    std::fs::write(f.pki.dir.path().join("introspection-secret"), SECRET).unwrap();
    assert_eq!(f.get("/", "good-1").await.status(), 200);
}

#[tokio::test]
async fn a_slow_endpoint_never_stalls_other_tokens() {
    let f = Arc::new(fixture("slow", &["timeout: 10m"]).await);
    let slow = {
        let f = f.clone();
        tokio::spawn(async move { f.get("/", "held-slow").await.status() })
    };
    eventually("the slow call reaches the endpoint", WAIT, || async {
        f.fake.calls_for("held-slow") == 1
    })
    .await;
    // While that call hangs, other tokens are introspected and answered.
    for token in ["fast-1", "fast-2", "inactive-fast"] {
        let expected = if token.starts_with("inactive") {
            401
        } else {
            200
        };
        assert_eq!(f.get("/", token).await.status(), expected, "{token}");
    }
    assert!(
        !slow.is_finished(),
        "the slow call cannot have been answered"
    );
    f.fake.release();
    assert_eq!(slow.await.unwrap(), 200);
}

#[tokio::test]
async fn concurrent_requests_with_one_new_token_make_one_call() {
    let f = Arc::new(fixture("single-flight", &["timeout: 10m"]).await);
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { f.get("/", "held-popular").await.status() })
        })
        .collect();
    // Every request has missed the cache and waits on the one call the endpoint holds.
    eventually("all 50 requests wait", WAIT, || async {
        f.metric("gatehouse_introspection_cache_total", "miss")
            .await
            == 50.0
    })
    .await;
    f.fake.release();
    for status in join_all(requests).await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(f.fake.calls_for("held-popular"), 1);
}

#[tokio::test]
async fn client_secret_post_puts_the_credentials_in_the_form() {
    let f = fixture("post", &["auth_method: client_secret_post"]).await;
    assert_eq!(f.get("/", "good-post").await.status(), 200);
    let call = &f.fake.calls()[0];
    assert_eq!(call.authorization, None);
    assert_eq!(call.form["client_id"], "gatehouse");
    assert_eq!(call.form["client_secret"], SECRET);
    assert_eq!(call.form["token"], "good-post");
}

#[tokio::test]
async fn jwts_of_a_configured_issuer_are_verified_not_introspected() {
    let f = fixture("jwt", &[]).await;
    let now = gatehouse::auth::jwt::system_clock();
    let claims = json!({"iss": f.issuer, "aud": "orders-api", "sub": "jwt-user", "exp": now + 600});
    assert_eq!(
        f.get("/", &f.signer.sign(&claims).unwrap()).await.status(),
        200
    );
    let forger = Signer::generate(Algorithm::ES256, "k1").unwrap();
    let forged = f.get("/", &forger.sign(&claims).unwrap()).await;
    assert_eq!(forged.status(), 401);
    assert!(
        f.fake.calls().is_empty(),
        "a JWS of the issuer was introspected"
    );
    // A JWS of an issuer Gatehouse does not know is just another token to ask about.
    let foreign = json!({"iss": "https://elsewhere.example", "aud": "orders-api", "sub": "x", "exp": now + 600});
    let token = forger.sign(&foreign).unwrap();
    assert_eq!(f.get("/", &token).await.status(), 200);
    assert_eq!(f.fake.calls().len(), 1);
}

#[tokio::test]
async fn tokens_never_reach_the_logs() {
    let pki = pki();
    write_policy(&pki);
    let app = ok_upstream().await;
    let fake = Fake::start().await;
    let signer = Signer::generate(Algorithm::ES256, "k1").unwrap();
    let text =
        config(&pki, &app, &fake, &signer, "logs", &["timeout: 300ms"]) + "log:\n  level: trace\n";
    let gh = spawn_binary(&write_config(pki.dir.path(), &text));
    let client = Client::new(gh.https.unwrap(), &pki.paths.ca_cert);
    let tokens = [
        ("good-Zq8secret", 200),
        ("inactive-Zq8secret", 401),
        ("otheraud-Zq8secret", 401),
        ("garbage-Zq8secret", 503),
        ("never-Zq8secret", 503),
    ];
    for (i, (token, status)) in tokens.iter().enumerate() {
        let response = client.h1(bearer(&format!("/t/{i}"), token)).await;
        assert_eq!(response.status(), *status, "{token}");
    }
    for i in 0..tokens.len() {
        gh.wait_for_log(&format!("/t/{i}")).await;
    }
    gh.wait_for_log("token introspection failed").await;
    for line in gh.log_lines() {
        assert!(!line.contains("Zq8secret"), "a token in the log: {line}");
        assert!(
            !line.contains(SECRET),
            "the client secret in the log: {line}"
        );
    }
}
