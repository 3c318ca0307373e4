//! The signed identity assertion (`identity.assertion`) end to end: Gatehouse in-process, a
//! real upstream, bearer tokens from a test IdP and client certificates; every assertion the
//! app receives is verified with PyJWT (`tests/assertion/verify.py`, Debian's python3-jwt)
//! against the JWKS Gatehouse serves, never with Gatehouse's own code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse::auth::signing::Signer;
use gatehouse::server::Running;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use common::clientcerts::*;
use common::idp::Idp;
use common::*;

const WAIT: Duration = Duration::from_secs(30);
const JWKS: &str = "/.well-known/gatehouse/jwks.json";

const POLICY: &str = "version: 1
routes:
  - name: public
    path: /public/**
    auth: none
  - name: service
    path: /mtls/**
    auth: mtls
  - name: api
    path: /**
    auth: bearer
";

struct Fixture {
    pki: Pki,
    app: Upstream,
    idp: Idp,
    signer: Signer,
    ca: ClientCa,
    gh: Running,
}

impl Fixture {
    /// `assertion`: the lines of `identity.assertion`.
    async fn start(assertion: &[&str]) -> Self {
        let pki = pki();
        std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
        let ca = ClientCa::new("Client CA");
        let ca_file = pki.dir.path().join("clients-ca.pem");
        ca.write(&ca_file);
        let signer = Signer::generate(Algorithm::ES256, "idp-1").unwrap();
        let idp = Idp::start(&[&signer]).await;
        let app = ok_upstream().await;
        let mut extra = idp.issuer_yaml("svc", &[]);
        extra.push_str("identity:\n  assertion:\n");
        for line in assertion {
            extra.push_str(&format!("    {line}\n"));
        }
        let text = mtls_config_text(
            &pki,
            &app.url(),
            &format!("    ca_file: {}", ca_file.display()),
            &extra,
        );
        let gh = start(&text).await;
        let admin = gh.admin_addr;
        eventually("ready", WAIT, || async move {
            admin_get(admin, "/readyz").await.0 == 200
        })
        .await;
        Self {
            pki,
            app,
            idp,
            signer,
            ca,
            gh,
        }
    }

    fn token(&self, sub: &str) -> String {
        let now = now();
        self.signer
            .sign(&json!({
                "iss": self.idp.issuer(), "aud": "svc", "sub": sub, "roles": ["admin", "dev"],
                "email": format!("{sub}@example.com"), "iat": now, "exp": now + 300,
            }))
            .unwrap()
    }

    /// GET `path` with `token`, a forged assertion header in two spellings, and `cert`;
    /// returns the status and the assertion the app got.
    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
        cert: Option<&ClientCert>,
    ) -> (u16, Option<String>) {
        let mut request = http::Request::get(path)
            .header("host", "localhost")
            .header("x-gatehouse-assertion", "forged.by.client")
            .header("x_gatehouse_assertion", "forged.by.client");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let before = self.app.seen().len();
        let response = mtls_request(
            self.gh.https_addr.unwrap(),
            &self.pki.paths.ca_cert,
            cert,
            request.body(empty()).unwrap(),
        )
        .await
        .unwrap();
        let seen = self.app.seen();
        let assertion = (seen.len() > before)
            .then(|| seen.last().unwrap())
            .and_then(|s| {
                assert_eq!(s.header("x_gatehouse_assertion"), None);
                s.header("x-gatehouse-assertion").map(str::to_owned)
            });
        (response.status().as_u16(), assertion)
    }

    fn jwks_url(&self) -> String {
        format!("http://{}{JWKS}", self.gh.admin_addr)
    }

    async fn jwks_kids(&self) -> Vec<String> {
        let (status, body) = admin_get(self.gh.admin_addr, JWKS).await;
        assert_eq!(status, 200);
        let jwks: Value = serde_json::from_str(&body).unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs `verify.py` (PyJWT); `Ok(header and claims)` or `Err(why PyJWT refused)`.
/// `flag`: `None`, `Some("--expiry")` or `Some("--lenient")` (see the script).
async fn pyjwt(
    jwks_url: &str,
    token: &str,
    audience: &str,
    flag: Option<&str>,
) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/assertion/verify.py");
    let mut command = Command::new("/usr/bin/python3");
    command
        .arg(script)
        .args([jwks_url, token, audience, "gatehouse"]);
    command.args(flag);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn pyjwt_verifies_the_assertion_of_every_kind_of_caller() {
    let f = Fixture::start(&["audience: orders-app", "ttl: 60s"]).await;

    let (status, assertion) = f.get("/orders/1", Some(&f.token("alice")), None).await;
    assert_eq!(status, 200);
    let assertion = assertion.expect("an assertion");
    assert_ne!(assertion, "forged.by.client");
    let verified = pyjwt(&f.jwks_url(), &assertion, "orders-app", None)
        .await
        .unwrap();
    let claims = &verified["claims"];
    assert_eq!(claims["iss"], "gatehouse");
    assert_eq!(claims["aud"], "orders-app");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], json!(["admin", "dev"]));
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["auth"], "bearer");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );
    assert_eq!(verified["header"]["alg"], "ES256");
    assert!(f.jwks_kids().await.contains(&kid_of(&assertion)));
    assert!(
        pyjwt(&f.jwks_url(), &assertion, "another-app", None)
            .await
            .unwrap_err()
            .contains("InvalidAudienceError")
    );

    // The same identity again: the cached assertion, still valid.
    let (_, again) = f.get("/orders/2", Some(&f.token("alice")), None).await;
    assert_eq!(again.as_deref(), Some(assertion.as_str()));

    let cert =
        f.ca.issue(&[], &["spiffe://example.org/ns/a/sa/job"], None, false);
    let (status, assertion) = f.get("/mtls/x", None, Some(&cert)).await;
    assert_eq!(status, 200);
    let claims = pyjwt(&f.jwks_url(), &assertion.unwrap(), "orders-app", None)
        .await
        .unwrap()["claims"]
        .clone();
    assert_eq!(claims["sub"], "spiffe://example.org/ns/a/sa/job");
    assert_eq!(claims["auth"], "mtls");
    assert_eq!(claims["roles"], json!([]));
    assert!(claims.get("email").is_none(), "no email when none is known");

    // Public routes carry no identity, and no client copy of the header either.
    assert_eq!(f.get("/public/x", None, None).await, (200, None));
    // Without `publish`, the public port does not serve the keys (the policy decides).
    assert_eq!(f.get(JWKS, None, None).await.0, 401);
    let metrics = admin_get(f.gh.admin_addr, "/metrics").await.1;
    assert!(metrics.contains("gatehouse_assertions_total{result=\"cached\"}"));
}

#[tokio::test]
async fn pyjwt_rejects_the_assertion_after_exp() {
    let f = Fixture::start(&["audience: orders-app", "ttl: 1s"]).await;
    let (status, assertion) = f.get("/orders/1", Some(&f.token("bob")), None).await;
    assert_eq!(status, 200);
    // Verified first (signature, issuer, audience), then refused as expired once `exp` has
    // passed, and not before.
    let claims = pyjwt(
        &f.jwks_url(),
        &assertion.unwrap(),
        "orders-app",
        Some("--expiry"),
    )
    .await
    .unwrap()["claims"]
        .clone();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        1
    );
}

#[tokio::test]
async fn publish_serves_the_keys_on_the_public_port() {
    let f = Fixture::start(&[
        "audience: orders-app",
        "publish: true",
        "header: X-Identity",
    ])
    .await;
    let response = Client::new(f.gh.https_addr.unwrap(), &f.pki.paths.ca_cert)
        .h1(get(JWKS))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "max-age=30");
    let public: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(public["keys"][0]["kid"], f.jwks_kids().await[0]);
    assert!(
        f.app.seen().is_empty(),
        "answered by Gatehouse, not the app"
    );

    // A renamed header: ours under that name, client copies of both names removed.
    let (status, _) = f.get("/orders/1", Some(&f.token("carol")), None).await;
    assert_eq!(status, 200);
    let seen = f.app.seen().pop().unwrap();
    let assertion = seen.header("x-identity").unwrap();
    assert_eq!(seen.header("x-gatehouse-assertion"), None);
    pyjwt(&f.jwks_url(), assertion, "orders-app", None)
        .await
        .unwrap();
}

/// An ES256 PKCS#8 key as PEM, written with `mode`.
fn write_key(path: &Path, mode: u32) -> String {
    let key = Signer::generate(Algorithm::ES256, "k").unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(key.pkcs8())
    );
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, pem).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    key.jwk()["x"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_new_key_is_published_before_it_signs_and_the_old_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("assertion-key.pem");
    write_key(&key_file, 0o600);
    let key_line = format!("key_file: {}", key_file.display());
    let f = Fixture::start(&["audience: orders-app", "ttl: 6s", &key_line]).await;
    let token = f.token("dave");
    let (_, first) = f.get("/orders/1", Some(&token), None).await;
    let old_kid = kid_of(first.as_ref().unwrap());
    assert_eq!(f.jwks_kids().await, std::slice::from_ref(&old_kid));

    write_key(&key_file, 0o600);
    f.gh.reload();
    // Each round: the published keys, then an assertion. The new key must be published in an
    // earlier round than the first assertion it signs, with the old one still published.
    let mut rounds: Vec<(Vec<String>, String, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let kids = f.jwks_kids().await;
        let (status, assertion) = f.get("/orders/1", Some(&token), None).await;
        assert_eq!(status, 200);
        let assertion = assertion.unwrap();
        let kid = kid_of(&assertion);
        rounds.push((kids, kid.clone(), assertion));
        if kid != old_kid {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new key never signed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (kids_now, new_kid, signed_by_new) = rounds.last().unwrap().clone();
    let published_at = rounds
        .iter()
        .position(|(kids, _, _)| kids.contains(&new_kid))
        .unwrap();
    assert!(
        published_at < rounds.len() - 1,
        "published before it signed: {rounds:?}"
    );
    assert!(
        rounds[published_at..rounds.len() - 1]
            .iter()
            .all(|(_, kid, _)| *kid == old_kid),
        "the old key kept signing while the new one waited"
    );
    assert!(
        kids_now.contains(&old_kid),
        "the old key is still published"
    );
    // Both verify against the JWKS of this moment: the overlap an app relies on.
    let (_, _, signed_by_old) = &rounds[rounds.len() - 2];
    pyjwt(
        &f.jwks_url(),
        signed_by_old,
        "orders-app",
        Some("--lenient"),
    )
    .await
    .unwrap();
    pyjwt(
        &f.jwks_url(),
        &signed_by_new,
        "orders-app",
        Some("--lenient"),
    )
    .await
    .unwrap();

    // A key file readable by others is refused at reload: the keys stay as they are.
    let kids_before = f.jwks_kids().await;
    write_key(&key_file, 0o644);
    f.gh.reload();
    let admin = f.gh.admin_addr;
    eventually("the 0644 key is refused", WAIT, || async move {
        metric(
            admin,
            "gatehouse_reloads_total{kind=\"assertion_key\",result=\"error\"}",
        )
        .await
            >= 1.0
    })
    .await;
    let kids_after = f.jwks_kids().await;
    assert!(kids_after.iter().all(|k| kids_before.contains(k)));
}

#[test]
fn check_refuses_a_key_file_readable_by_others() {
    let pki = pki();
    let key_file = pki.dir.path().join("assertion-key.pem");
    write_key(&key_file, 0o640);
    let text = format!(
        "{}identity:\n  assertion:\n    audience: app\n    key_file: {}\n",
        config_text(&pki, "http://127.0.0.1:9", ""),
        key_file.display()
    );
    let file = write_config(pki.dir.path(), &text);
    let output = cli(&[
        std::ffi::OsStr::new("check"),
        std::ffi::OsStr::new("--config"),
        file.as_os_str(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("identity.assertion.key_file") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = cli(&[
        std::ffi::OsStr::new("check"),
        std::ffi::OsStr::new("--config"),
        file.as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
