//! What an operator sees: the audit line of every decision, the access line's caller and
//! route, and that no log line carries a token. The real binary runs with JSON logs, a real
//! IdP (`common::idp`) and a real upstream on `127.0.0.1:0`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use gatehouse::auth::signing::Signer;
use http::Request;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use common::idp::Idp;
use common::*;

const WAIT: Duration = Duration::from_secs(30);
const AUDIENCE: &str = "observability-tests";

const POLICY: &str = "version: 1
routes:
  - name: public
    path: /public/**
    auth: none
  - name: admin-area
    path: /admin/**
    auth: bearer
    require:
      roles: { any_of: [admin] }
  - name: api
    path: /api/**
    auth: bearer
";

struct Fixture {
    pki: Pki,
    _app: Upstream,
    idp: Idp,
    gh: Process,
    client: Client,
    signer: Signer,
}

impl Fixture {
    async fn start(extra: &str) -> Self {
        let pki = pki();
        std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
        let app = ok_upstream().await;
        let signer = Signer::generate(Algorithm::ES256, "ec-1").unwrap();
        let idp = Idp::start(&[&signer]).await;
        let text = config_text(
            &pki,
            &app.url(),
            &format!("{}{extra}", idp.issuer_yaml(AUDIENCE, &[])),
        );
        let gh = spawn_binary(&write_config(pki.dir.path(), &text));
        let admin = gh.admin;
        eventually("ready", WAIT, || async move {
            admin_get(admin, "/readyz").await.0 == 200
        })
        .await;
        let client = Client::new(gh.https.unwrap(), &pki.paths.ca_cert);
        Self {
            pki,
            _app: app,
            idp,
            gh,
            client,
            signer,
        }
    }

    fn token(&self, sub: &str, roles: &[&str]) -> String {
        let now = gatehouse::auth::jwt::system_clock();
        self.signer
            .sign(&json!({
                "iss": self.idp.issuer(), "aud": AUDIENCE, "sub": sub, "roles": roles,
                "iat": now, "exp": now + 300,
            }))
            .unwrap()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> u16 {
        let mut request = Request::get(path).header("host", "localhost");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self.client.h1(request.body(empty()).unwrap()).await;
        response.status().as_u16()
    }

    /// The JSON log lines of `target` that satisfy `matches`, once there is at least one.
    async fn lines(&self, target: &str, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        let found = || {
            self.gh
                .log_lines()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["target"] == target && matches(v))
                .collect::<Vec<_>>()
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let lines = found();
            if !lines.is_empty() {
                return lines;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {target} line matches:\n{:#?}",
                self.gh.log_lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// No log line so far holds any of `secrets`.
    fn assert_no_secret_logged(&self, secrets: &[&str]) {
        for line in self.gh.log_lines() {
            for secret in secrets {
                assert!(!line.contains(secret), "a log line holds a token: {line}");
            }
        }
    }
}

#[tokio::test]
async fn a_403_has_an_audit_line_naming_the_route_and_the_missing_role() {
    let f = Fixture::start("").await;
    let token = f.token("alice", &["reader"]);
    assert_eq!(f.get("/admin/panel?secret=q", Some(&token)).await, 403);

    let audit = f
        .lines("gatehouse::audit", |v| v["decision"] == "forbidden")
        .await;
    assert_eq!(audit.len(), 1, "{audit:#?}");
    let line = &audit[0];
    assert_eq!(line["route"], "admin-area");
    assert_eq!(line["reason"], "needs role one of admin");
    assert_eq!(line["subject"], "alice");
    assert_eq!(line["issuer"], f.idp.issuer());
    assert_eq!(line["auth_method"], "bearer");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/admin/panel");
    assert_eq!(line["host"], "localhost");
    assert_eq!(line["status"], 403);
    assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    // The access line names the caller and the route too.
    let access = f.lines("gatehouse::access", |v| v["status"] == 403).await;
    assert_eq!(access[0]["user"], "alice");
    assert_eq!(access[0]["route"], "admin-area");
    f.assert_no_secret_logged(&[&token, "secret=q"]);
    drop(f.pki);
}

#[tokio::test]
async fn denials_are_audited_by_default_and_allows_only_with_audit_all() {
    let f = Fixture::start("").await;
    let token = f.token("bob", &[]);
    assert_eq!(f.get("/api/x", Some(&token)).await, 200);
    assert_eq!(f.get("/api/x", None).await, 401);
    let denied = f
        .lines("gatehouse::audit", |v| v["decision"] == "unauthenticated")
        .await;
    assert_eq!(denied[0]["reason"], "missing credential");
    assert_eq!(denied[0]["route"], "api");
    // The allowed request came first and left no audit line.
    f.lines("gatehouse::access", |v| v["status"] == 401).await;
    assert!(
        !f.gh
            .log_lines()
            .iter()
            .any(|l| l.contains("gatehouse::audit") && l.contains("\"allow\"")),
        "{:#?}",
        f.gh.log_lines()
    );

    let f = Fixture::start("log:\n  audit: all\n").await;
    let token = f.token("bob", &[]);
    assert_eq!(f.get("/api/x", Some(&token)).await, 200);
    let allowed = f
        .lines("gatehouse::audit", |v| v["decision"] == "allow")
        .await;
    assert_eq!(allowed[0]["subject"], "bob");
    assert_eq!(allowed[0]["route"], "api");
    f.assert_no_secret_logged(&[&token]);
}

#[tokio::test]
async fn identical_denials_from_one_peer_are_folded_into_a_suppressed_line() {
    let f = Fixture::start("").await;
    let expired = {
        let now = gatehouse::auth::jwt::system_clock();
        f.signer
            .sign(&json!({
                "iss": f.idp.issuer(), "aud": AUDIENCE, "sub": "carol",
                "iat": now - 600, "exp": now - 300,
            }))
            .unwrap()
    };
    for _ in 0..5 {
        assert_eq!(f.get("/api/x", Some(&expired)).await, 401);
    }
    let suppressed = f
        .lines("gatehouse::audit", |v| v["suppressed"].is_u64())
        .await;
    assert_eq!(suppressed[0]["suppressed"], 4);
    assert_eq!(suppressed[0]["reason"], "expired");
    assert_eq!(suppressed[0]["route"], "api");
    let written: Vec<_> = f
        .lines("gatehouse::audit", |v| v["reason"] == "expired")
        .await
        .into_iter()
        .filter(|v| v["decision"] == "unauthenticated")
        .collect();
    assert_eq!(written.len(), 1, "{written:#?}");
    f.assert_no_secret_logged(&[&expired]);
}

#[tokio::test]
async fn metrics_show_the_build_the_process_and_upstream_time_by_status_class() {
    let f = Fixture::start("").await;
    let token = f.token("dave", &[]);
    assert_eq!(f.get("/api/x", Some(&token)).await, 200);
    let (status, text) = admin_get(f.gh.admin, "/metrics").await;
    assert_eq!(status, 200);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!("gatehouse_build_info{{version=\"{version}\"}} 1")),
        "{text}"
    );
    for series in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "{series}: {text}"
        );
    }
    assert!(metric(f.gh.admin, "process_resident_memory_bytes").await > 1e6);
    assert_eq!(
        metric(
            f.gh.admin,
            "gatehouse_upstream_duration_seconds_count{class=\"2xx\"}"
        )
        .await,
        1.0
    );
}
