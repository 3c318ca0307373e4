//! A real OpenID provider that issues opaque access tokens: panva's oidc-provider (npm, in
//! `tests/e2e/node_modules`), run by node from `tests/e2e/opaque-idp.mjs`. The test gets
//! tokens with the client credentials grant, revokes them, and reads how many introspection
//! requests the provider received. Killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// The secret of the client that asks for tokens.
const ORDERS_SECRET: &str = "orders-client-secret-for-tests-only-0123456789";
/// The secret Gatehouse introspects with.
pub const GATEHOUSE_SECRET: &str = "gatehouse-introspection-secret-0123456789";

pub struct OpaqueIdp {
    child: Child,
    pub issuer: String,
    http: reqwest::Client,
}

impl OpaqueIdp {
    pub async fn start() -> Self {
        let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
        assert!(
            e2e.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed: run `npm --prefix tests/e2e ci` (scripts/test does)"
        );
        let mut child = Command::new("node")
            .arg(e2e.join("opaque-idp.mjs"))
            .current_dir(&e2e)
            .env("ORDERS_CLIENT_SECRET", ORDERS_SECRET)
            .env("GATEHOUSE_CLIENT_SECRET", GATEHOUSE_SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Read to the end: a closed pipe would kill node at its next line of output.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("oidc-provider did not start");
        let started: Value = serde_json::from_str(&line).expect("a JSON line with the issuer");
        Self {
            child,
            issuer: started["issuer"].as_str().unwrap().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn orders_client(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("orders-client:{ORDERS_SECRET}"))
        )
    }

    /// A new opaque access token (client credentials, scope `orders:read`).
    pub async fn token(&self) -> String {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .header("authorization", self.orders_client())
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=orders%3Aread")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(token.split('.').count(), 1, "not opaque: {token}");
        token
    }

    /// Revokes `token` at the provider (RFC 7009).
    pub async fn revoke(&self, token: &str) {
        let response = self
            .http
            .post(format!("{}/token/revocation", self.issuer))
            .header("authorization", self.orders_client())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&token_type_hint=access_token"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// Introspection requests the provider has received so far.
    pub async fn introspections(&self) -> u64 {
        let response = self
            .http
            .get(format!("{}/__test/introspections", self.issuer))
            .send()
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        body["count"].as_u64().unwrap()
    }

    /// Stops the provider: from now on its port refuses connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OpaqueIdp {
    fn drop(&mut self) {
        self.stop();
    }
}
