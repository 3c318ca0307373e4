//! Client certificates (`tls.client_auth`) over real TLS handshakes on `127.0.0.1:0`, with
//! certificates made by rcgen: valid, expired, from another CA, none (in both modes), a
//! SPIFFE URI SAN; `auth: mtls` and `auth: any` routes, roles from SAN patterns,
//! `X-Forwarded-Client-Cert`, the CA file reloading, and `curl --cert`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use gatehouse::auth::signing::Signer;
use jsonwebtoken::Algorithm;
use rustls::pki_types::pem::PemObject;
use serde_json::json;

use common::clientcerts::*;
use common::idp::Idp;
use common::*;

const WAIT: Duration = Duration::from_secs(20);
const HANDSHAKE_ERRORS: &str = "gatehouse_tls_handshake_failures_total{reason=\"error\"}";

const POLICY: &str = "version: 1
routes:
  - name: public
    path: /public/**
    auth: none
  - name: billing
    path: /billing/**
    auth: mtls
    require:
      roles: { any_of: [billing] }
  - name: service
    path: /mtls/**
    auth: mtls
  - name: mixed
    path: /any/**
    auth: any
";

/// Gatehouse with [`POLICY`] and `client_auth` lines (the CA file is `ca_file: CA`).
struct Fixture {
    pki: Pki,
    app: Upstream,
    gh: gatehouse::server::Running,
    ca: ClientCa,
}

impl Fixture {
    async fn start(client_auth: &[&str]) -> Self {
        let pki = pki();
        std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
        let ca = ClientCa::new("Client CA");
        let ca_file = pki.dir.path().join("clients-ca.pem");
        ca.write(&ca_file);
        let mut lines = format!("    ca_file: {}\n", ca_file.display());
        for line in client_auth {
            lines.push_str(&format!("    {line}\n"));
        }
        let app = ok_upstream().await;
        let gh = start(&mtls_config_text(&pki, &app.url(), lines.trim_end(), "")).await;
        Self { pki, app, gh, ca }
    }

    /// GET `path` presenting `cert`: the status, or `Err` when the connection was refused.
    async fn get(&self, path: &str, cert: Option<&ClientCert>) -> Result<u16, String> {
        self.send(get(path), cert).await
    }

    async fn send(
        &self,
        request: http::Request<BoxBody>,
        cert: Option<&ClientCert>,
    ) -> Result<u16, String> {
        mtls_request(
            self.gh.https_addr.unwrap(),
            &self.pki.paths.ca_cert,
            cert,
            request,
        )
        .await
        .map(|r| r.status().as_u16())
    }

    /// Expects the handshake with `cert` to be refused by Gatehouse (counted as a handshake
    /// failure) and nothing to reach the app.
    async fn refused(&self, what: &str, cert: Option<&ClientCert>) {
        let before = metric(self.gh.admin_addr, HANDSHAKE_ERRORS).await;
        let seen = self.app.seen().len();
        let result = self.get("/public/x", cert).await;
        assert!(
            result.is_err(),
            "{what}: expected a refused handshake, got {result:?}"
        );
        let admin = self.gh.admin_addr;
        eventually(
            &format!("{what}: a handshake failure is counted"),
            WAIT,
            || async move { metric(admin, HANDSHAKE_ERRORS).await > before },
        )
        .await;
        assert_eq!(self.app.seen().len(), seen, "{what}: reached the app");
    }

    fn last_seen(&self) -> Seen {
        self.app.seen().pop().unwrap()
    }
}

#[tokio::test]
async fn optional_mode_lets_routes_decide() {
    let f = Fixture::start(&["mode: optional"]).await;
    let valid = f.ca.issue(&["svc.test"], &[], Some("svc"), false);

    assert_eq!(
        f.get("/public/x", None).await,
        Ok(200),
        "no certificate is fine"
    );
    assert_eq!(
        f.get("/mtls/x", None).await,
        Ok(401),
        "but not for an mtls route"
    );
    assert_eq!(f.get("/mtls/x", Some(&valid)).await, Ok(200));
    let seen = f.last_seen();
    assert_eq!(seen.header("x-user-id"), Some("svc.test"));
    assert_eq!(seen.header("x-user-roles"), Some(""));
    assert_eq!(
        seen.header("x-forwarded-client-cert"),
        None,
        "not configured"
    );
    assert_eq!(f.get("/billing/x", Some(&valid)).await, Ok(403), "no role");

    let expired = f.ca.issue(&["svc.test"], &[], None, true);
    f.refused("expired", Some(&expired)).await;
    let other = ClientCa::new("Other CA").issue(&["svc.test"], &[], None, false);
    f.refused("another CA", Some(&other)).await;
}

#[tokio::test]
async fn required_mode_refuses_handshakes_without_a_valid_certificate() {
    let f = Fixture::start(&["mode: required"]).await;
    f.refused("no certificate", None).await;
    let expired = f.ca.issue(&["svc.test"], &[], None, true);
    f.refused("expired", Some(&expired)).await;
    let other = ClientCa::new("Other CA").issue(&["svc.test"], &[], None, false);
    f.refused("another CA", Some(&other)).await;

    let valid = f.ca.issue(&["svc.test"], &[], None, false);
    assert_eq!(f.get("/public/x", Some(&valid)).await, Ok(200));
    assert_eq!(f.get("/mtls/x", Some(&valid)).await, Ok(200));
}

#[tokio::test]
async fn a_spiffe_uri_san_is_the_subject_and_patterns_grant_roles() {
    let f = Fixture::start(&[
        "roles:",
        "  - { subject: \"spiffe://example.org/ns/billing/**\", roles: [billing, reader] }",
        "  - { subject: \"*.svc.test\", roles: [reader] }",
    ])
    .await;
    let job = "spiffe://example.org/ns/billing/sa/job";
    let billing = f.ca.issue(&["job.svc.test"], &[job], Some("job"), false);
    assert_eq!(f.get("/billing/run", Some(&billing)).await, Ok(200));
    let seen = f.last_seen();
    assert_eq!(seen.header("x-user-id"), Some(job));
    assert_eq!(seen.header("x-user-roles"), Some("billing,reader"));

    let other = f.ca.issue(
        &["x.svc.test"],
        &["spiffe://example.org/ns/other/sa/x"],
        None,
        false,
    );
    assert_eq!(f.get("/billing/run", Some(&other)).await, Ok(403));
    assert_eq!(f.get("/mtls/x", Some(&other)).await, Ok(200));
    assert_eq!(f.last_seen().header("x-user-roles"), Some(""));

    // The subject order is configurable; the CN alone is used when told so.
    let f = Fixture::start(&["subject: [cn]"]).await;
    let cert = f.ca.issue(&["a.svc.test"], &[job], Some("job-cn"), false);
    assert_eq!(f.get("/mtls/x", Some(&cert)).await, Ok(200));
    assert_eq!(f.last_seen().header("x-user-id"), Some("job-cn"));
    let no_cn = f.ca.issue(&["a.svc.test"], &[job], None, false);
    assert_eq!(
        f.get("/mtls/x", Some(&no_cn)).await,
        Ok(401),
        "a verified certificate without the configured name is no identity"
    );
    assert_eq!(f.get("/public/x", Some(&no_cn)).await, Ok(200));
}

#[tokio::test]
async fn client_copies_of_xfcc_are_removed_and_ours_is_sent_only_when_configured() {
    let forged = |path: &str| {
        http::Request::get(path)
            .header("host", "localhost")
            .header("x-forwarded-client-cert", "Hash=forged;URI=spiffe://evil")
            .header("x_forwarded_client_cert", "Hash=forged")
            .body(empty())
            .unwrap()
    };
    let f = Fixture::start(&[]).await;
    let cert = f.ca.issue(&["svc.test"], &["spiffe://td/a"], None, false);
    for (path, cert) in [("/public/x", None), ("/mtls/x", Some(&cert))] {
        assert_eq!(f.send(forged(path), cert).await, Ok(200));
        let seen = f.last_seen();
        assert_eq!(seen.header("x-forwarded-client-cert"), None, "{path}");
        assert_eq!(seen.header("x_forwarded_client_cert"), None, "{path}");
    }

    let f = Fixture::start(&["forward_client_cert: true"]).await;
    let cert = f.ca.issue(&["svc.test"], &["spiffe://td/a"], None, false);
    assert_eq!(f.send(forged("/public/x"), None).await, Ok(200));
    assert_eq!(f.last_seen().header("x-forwarded-client-cert"), None);
    assert_eq!(f.send(forged("/mtls/x"), Some(&cert)).await, Ok(200));
    let xfcc = f
        .last_seen()
        .header("x-forwarded-client-cert")
        .unwrap()
        .to_owned();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())
        .map(|d| d.to_vec());
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der.unwrap());
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(xfcc, format!("Hash={hex};URI=spiffe://td/a;DNS=svc.test"));
}

#[tokio::test]
async fn the_ca_file_reloads_when_it_changes() {
    let f = Fixture::start(&[]).await;
    let old = f.ca.issue(&["old.test"], &[], None, false);
    let next_ca = ClientCa::new("Next CA");
    let new = next_ca.issue(&["new.test"], &[], None, false);
    assert_eq!(f.get("/mtls/x", Some(&old)).await, Ok(200));
    f.refused("not yet trusted", Some(&new)).await;

    replace_file(
        &f.pki.dir.path().join("clients-ca.pem"),
        next_ca.pem.as_bytes(),
    );
    let f = &f;
    let new = &new;
    eventually("the new CA is trusted", WAIT, || async move {
        f.get("/mtls/x", Some(new)).await == Ok(200)
    })
    .await;
    f.refused("the old CA is gone", Some(&old)).await;

    // A broken file keeps the CAs in use.
    replace_file(
        &f.pki.dir.path().join("clients-ca.pem"),
        b"not a certificate",
    );
    let admin = f.gh.admin_addr;
    eventually("the broken file is refused", WAIT, || async move {
        metric(
            admin,
            "gatehouse_reloads_total{kind=\"client_cas\",result=\"error\"}",
        )
        .await
            >= 1.0
    })
    .await;
    assert_eq!(f.get("/mtls/x", Some(new)).await, Ok(200));
}

#[tokio::test]
async fn curl_presents_a_client_certificate() {
    let f = Fixture::start(&[]).await;
    let cert = f.ca.issue(&["curl.test"], &[], None, false);
    let (cert_file, key_file) = cert.write(f.pki.dir.path());
    let url = format!(
        "https://127.0.0.1:{}/mtls/x",
        f.gh.https_addr.unwrap().port()
    );
    let ca = f.pki.paths.ca_cert.clone();
    let curl = move |with_cert: bool| {
        let (url, ca, cert_file, key_file) =
            (url.clone(), ca.clone(), cert_file.clone(), key_file.clone());
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new("curl");
            command
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                .arg(&ca);
            if with_cert {
                command
                    .arg("--cert")
                    .arg(&cert_file)
                    .arg("--key")
                    .arg(&key_file);
            }
            let output = command.arg(&url).output().unwrap();
            String::from_utf8(output.stdout).unwrap()
        })
    };
    assert_eq!(curl(true).await.unwrap(), "200");
    assert_eq!(f.last_seen().header("x-user-id"), Some("curl.test"));
    assert_eq!(curl(false).await.unwrap(), "401");
}

#[tokio::test]
async fn any_routes_take_a_token_or_a_certificate_and_the_token_wins() {
    let pki = pki();
    std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
    let ca = ClientCa::new("Client CA");
    let ca_file = pki.dir.path().join("clients-ca.pem");
    ca.write(&ca_file);
    let signer = Signer::generate(Algorithm::ES256, "ec-1").unwrap();
    let idp = Idp::start(&[&signer]).await;
    let app = ok_upstream().await;
    let text = mtls_config_text(
        &pki,
        &app.url(),
        &format!("    ca_file: {}", ca_file.display()),
        &idp.issuer_yaml("svc", &[]),
    );
    // The real binary, for its log.
    let gh = spawn_binary(&write_config(pki.dir.path(), &text));
    let admin = gh.admin;
    eventually("ready", WAIT, || async move {
        admin_get(admin, "/readyz").await.0 == 200
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = signer
        .sign(&json!({"iss": idp.issuer(), "aud": "svc", "sub": "token-user", "iat": now, "exp": now + 300}))
        .unwrap();
    let cert = ca.issue(&["cert.test"], &[], None, false);
    let (addr, server_ca) = (gh.https.unwrap(), pki.paths.ca_cert.clone());
    let send = |token: Option<&str>, cert: Option<&ClientCert>| {
        let mut request = http::Request::get("/any/x").header("host", "localhost");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(empty()).unwrap();
        let config = mtls_client_config(&server_ca, cert);
        async move {
            let tls = tls_connect(addr, "localhost", config).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            collect(sender.send_request(request).await.unwrap()).await
        }
    };
    let user = || {
        app.seen()
            .pop()
            .unwrap()
            .header("x-user-id")
            .unwrap()
            .to_owned()
    };

    assert_eq!(send(None, Some(&cert)).await.status(), 200);
    assert_eq!(user(), "cert.test");
    assert_eq!(send(Some(&token), None).await.status(), 200);
    assert_eq!(user(), "token-user");
    assert!(
        !gh.log_lines()
            .iter()
            .any(|l| l.contains("token's identity wins")),
        "said only when both are present"
    );
    assert_eq!(send(Some(&token), Some(&cert)).await.status(), 200);
    assert_eq!(user(), "token-user");
    gh.wait_for_log("the token's identity wins").await;
    assert!(
        gh.log_lines()
            .iter()
            .any(|l| l.contains("token's identity wins") && l.contains("cert.test"))
    );
    // A bad token with a good certificate is refused: the token is what was presented.
    assert_eq!(send(Some("not.a.jwt"), Some(&cert)).await.status(), 401);
    assert_eq!(send(None, None).await.status(), 401);
}

#[test]
fn policy_explain_takes_a_client_certificate() {
    let pki = pki();
    std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
    let ca = ClientCa::new("Client CA");
    let ca_file = pki.dir.path().join("clients-ca.pem");
    ca.write(&ca_file);
    let client_auth = format!(
        "    ca_file: {}\n    roles:\n      - {{ subject: \"spiffe://example.org/ns/billing/**\", roles: [billing] }}",
        ca_file.display()
    );
    let config = write_config(
        pki.dir.path(),
        &mtls_config_text(&pki, "http://127.0.0.1:9", &client_auth, ""),
    );
    let billing = ca.issue(
        &["job.test"],
        &["spiffe://example.org/ns/billing/sa/job"],
        None,
        false,
    );
    let (cert_file, _) = billing.write(pki.dir.path());
    let policies = pki.policies();
    let explain = |path: &str, extra: &[&std::ffi::OsStr]| {
        let words = ["policy", "explain", "--path", path, "--dir"];
        let mut args: Vec<&std::ffi::OsStr> = words.iter().map(std::ffi::OsStr::new).collect();
        args.push(policies.as_os_str());
        args.extend_from_slice(extra);
        let out = cli(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let with_cert = [
        std::ffi::OsStr::new("--cert"),
        cert_file.as_os_str(),
        std::ffi::OsStr::new("--config"),
        config.as_os_str(),
    ];
    let out = explain("/billing/run", &with_cert);
    assert!(
        out.contains("caller    spiffe://example.org/ns/billing/sa/job (roles: billing) by client certificate"),
        "{out}"
    );
    assert!(
        out.contains("auth mtls") && out.contains("decision  allow"),
        "{out}"
    );
    assert!(
        explain("/any/x", &with_cert).contains("decision  allow"),
        "any takes it"
    );
    // Without the config: the default subject order and no roles.
    let out = explain("/billing/run", &with_cert[..2]);
    assert!(out.contains("403 Forbidden: needs role"), "{out}");
    // Claims stand for a token: an mtls route does not take them.
    let claims = [
        std::ffi::OsStr::new("--claims"),
        std::ffi::OsStr::new(r#"{"sub":"x"}"#),
    ];
    let out = explain("/mtls/x", &claims);
    assert!(
        out.contains("401 Unauthorized: the route needs a client certificate"),
        "{out}"
    );
}

#[tokio::test]
async fn an_mtls_route_needs_client_auth_configured() {
    let pki = pki();
    std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
    let text = config_text(&pki, "http://127.0.0.1:9", "");
    let config = gatehouse::config::parse(
        &text,
        std::path::Path::new("t.yaml"),
        &gatehouse::config::Overrides::default(),
    )
    .unwrap();
    let error = gatehouse::server::start(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "route `billing` needs client certificates but the config has no `tls.client_auth`"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_resumed_session_is_checked_against_the_cas_in_use() {
    let f = Fixture::start(&[]).await;
    let cert = f.ca.issue(&["svc.test"], &[], None, false);
    // One client configuration: its session cache lets the next connection resume.
    let config = mtls_client_config(&f.pki.paths.ca_cert, Some(&cert));
    let addr = f.gh.https_addr.unwrap();
    let attempt = |config: std::sync::Arc<rustls::ClientConfig>| async move {
        let tls = tls_connect(addr, "localhost", config)
            .await
            .map_err(|e| e.to_string())?;
        let kind = tls.get_ref().1.handshake_kind();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let response = sender
            .send_request(get("/mtls/x"))
            .await
            .map_err(|e| e.to_string())?;
        let status = collect(response).await.status().as_u16();
        Ok::<_, String>((kind, status))
    };
    assert_eq!(
        attempt(config.clone()).await,
        Ok((Some(rustls::HandshakeKind::Full), 200))
    );
    assert_eq!(
        attempt(config.clone()).await,
        Ok((Some(rustls::HandshakeKind::Resumed), 200)),
        "the session resumes while its CA is trusted"
    );

    let next_ca = ClientCa::new("Next CA");
    let probe = next_ca.issue(&["probe.test"], &[], None, false);
    replace_file(
        &f.pki.dir.path().join("clients-ca.pem"),
        next_ca.pem.as_bytes(),
    );
    let (f, probe) = (&f, &probe);
    eventually("the new CA is in use", WAIT, || async move {
        f.get("/mtls/x", Some(probe)).await == Ok(200)
    })
    .await;
    let seen = f.app.seen().len();
    let result = attempt(config).await;
    assert!(
        result.is_err(),
        "a resumed session of the old CA: {result:?}"
    );
    assert_eq!(f.app.seen().len(), seen);
}
