//! Against panva's oidc-provider issuing opaque tokens; Gatehouse discovers its endpoint.

use futures_util::stream::{self, StreamExt};
use gatehouse::server::Running;

use super::*;
use crate::common::opaque_idp::{GATEHOUSE_SECRET, OpaqueIdp};

struct Fixture {
    _pki: Pki,
    app: Upstream,
    idp: OpaqueIdp,
    gh: Running,
    client: Client,
}

async fn fixture(cache_ttl: &str) -> Fixture {
    let pki = pki();
    write_policy(&pki);
    let app = ok_upstream().await;
    let idp = OpaqueIdp::start().await;
    let secret = pki.dir.path().join("introspection-secret");
    std::fs::write(&secret, GATEHOUSE_SECRET).unwrap();
    let extra = format!(
        "issuers:
  - issuer: {issuer}
    audiences: [orders-api]
    introspection:
      client_id: gatehouse
      client_secret: {{ file: {secret} }}
      cache_ttl: {cache_ttl}
identity:
  scopes_header: X-User-Scopes
",
        issuer = idp.issuer,
        secret = secret.display(),
    );
    let gh = start(&config_text(&pki, &app.url(), &extra)).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    Fixture {
        _pki: pki,
        app,
        idp,
        gh,
        client,
    }
}

impl Fixture {
    async fn status(&self, token: &str) -> u16 {
        self.client
            .h1(bearer("/orders/1", token))
            .await
            .status()
            .as_u16()
    }

    async fn introspections(&self, result: &str) -> f64 {
        let series = format!(
            "gatehouse_introspections_total{{issuer=\"{}\",result=\"{result}\"}}",
            self.idp.issuer
        );
        metric(self.gh.admin_addr, &series).await
    }
}

#[tokio::test]
async fn a_valid_opaque_token_reaches_the_app_with_its_identity() {
    let f = fixture("1m").await;
    let token = f.idp.token().await;
    let response = f.client.h1(bearer("/orders/1", &token)).await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    let seen = &f.app.seen()[0];
    // A client-credentials token has no `sub`: it acts as its client.
    assert_eq!(seen.header("x-user-id"), Some("orders-client"));
    assert_eq!(seen.header("x-user-roles"), Some("reporter"));
    assert_eq!(seen.header("x-user-scopes"), Some("orders:read"));
    assert_eq!(seen.header("authorization"), None);
    // A token the provider never issued is inactive.
    assert_eq!(
        f.status("made-up-token-of-forty-three-characters-xx").await,
        401
    );
    assert_eq!(f.introspections("inactive").await, 1.0);
}

#[tokio::test]
async fn revocation_at_the_provider_is_seen_after_the_cache_ttl() {
    let f = fixture("1s").await;
    let token = f.idp.token().await;
    assert_eq!(f.status(&token).await, 200);
    f.idp.revoke(&token).await;
    eventually("the revoked token is refused", WAIT, || async {
        f.status(&token).await == 401
    })
    .await;
    assert!(f.introspections("inactive").await >= 1.0);
}

#[tokio::test]
async fn the_provider_stopped_is_503_not_401() {
    let mut f = fixture("1m").await;
    let token = f.idp.token().await;
    f.idp.stop();
    let response = f.client.h1(bearer("/orders/1", &token)).await;
    assert_eq!(response.status(), 503, "{}", body_text(&response));
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(f.app.seen().is_empty());
}

#[tokio::test]
async fn a_thousand_requests_with_one_new_token_make_one_introspection() {
    let f = fixture("10m").await;
    let token = f.idp.token().await;
    let before = f.idp.introspections().await;
    let statuses: Vec<u16> = stream::iter(0..1000)
        .map(|_| f.status(&token))
        .buffer_unordered(50)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(f.idp.introspections().await - before, 1);
    assert_eq!(f.introspections("active").await, 1.0);
}
