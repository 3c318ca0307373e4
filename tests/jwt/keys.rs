//! The issuer's keys over time: rotation, floods of unknown `kid`s, and the IdP failing after
//! and before Gatehouse started. Each test has its own IdP, so its fetch counts are exact.

use futures_util::future::join_all;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::*;

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_more_fetch() {
    // Default settings: `unknown_kid_interval` is 10 s, and the first set was fetched just now.
    let fx = Fixture::start(&[], "").await;
    let loaded = fx.idp.jwks_fetches();
    assert_eq!(loaded, 1, "one fetch at start");

    let rotated = Signer::generate(Algorithm::ES256, "ec-2").unwrap();
    fx.idp.add_key(&rotated);
    let token = rotated.sign(&fx.claims("alice", &["admin"])).unwrap();
    // The unknown kid causes one fetch, which finds the new key: the first try passes.
    let seen = fx.passes(with_token("GET", "/admin/x", &token)).await;
    assert_eq!(seen.header("x-user-id"), Some("alice"));
    assert_eq!(fx.idp.jwks_fetches(), loaded + 1, "exactly one more fetch");

    // Old and new keys both work now, without further fetches.
    let old = fx.es.sign(&fx.claims("bob", &[])).unwrap();
    fx.passes(with_token("GET", "/api/me", &old)).await;
    let new = rotated.sign(&fx.claims("carol", &[])).unwrap();
    fx.passes(with_token("GET", "/api/me", &new)).await;
    assert_eq!(fx.idp.jwks_fetches(), loaded + 1);
}

#[tokio::test]
async fn a_withdrawn_key_stops_admitting_the_tokens_it_signed_even_when_they_are_cached() {
    // Key sets live a second, so background refreshes pick up the withdrawal on their own.
    let fx = Fixture::start(&["jwks: { min_ttl: 1s, max_ttl: 1s }"], "").await;
    let rotated = Signer::generate(Algorithm::ES256, "ec-2").unwrap();
    fx.idp.add_key(&rotated);
    let token = rotated.sign(&fx.claims("mallory", &["admin"])).unwrap();
    let kept = fx.token("alice", &["admin"]);
    // Verified once, then remembered: by the shared cache (a new connection per request)
    // and by the connection (the same HTTP/2 connection again).
    let mut h2 = h2_connection(&fx.client).await;
    let on_h2 = |token: &str| {
        Request::get("https://localhost/admin/x")
            .header("authorization", format!("Bearer {token}"))
            .body(empty())
            .unwrap()
    };
    for _ in 0..2 {
        fx.passes(with_token("GET", "/admin/x", &token)).await;
        let response = collect(h2.send_request(on_h2(&token)).await.unwrap()).await;
        assert_eq!(response.status(), 200, "{}", body_text(&response));
    }
    fx.passes(with_token("GET", "/admin/x", &kept)).await;

    fx.idp.remove_key(rotated.kid());
    let fetched = fx.idp.jwks_fetches();
    eventually("a key set without ec-2 is fetched", WAIT, || async {
        fx.idp.jwks_fetches() >= fetched + 2
    })
    .await;
    let before = fx.app.seen().len();
    fx.unauthorized(
        with_token("GET", "/admin/x", &token),
        "no key of the issuer matches the token",
    )
    .await;
    let response = collect(h2.send_request(on_h2(&token)).await.unwrap()).await;
    assert_eq!(
        (
            response.status().as_u16(),
            challenge(&response).contains("no key of the issuer")
        ),
        (401, true),
        "the connection's remembered token: {}",
        challenge(&response)
    );
    assert_eq!(
        fx.app.seen().len(),
        before,
        "a withdrawn key's token reached the app"
    );
    // Tokens of the keys that stay pass, and pass from the cache again after one check.
    for _ in 0..2 {
        fx.passes(with_token("GET", "/admin/x", &kept)).await;
        let response = collect(h2.send_request(on_h2(&kept)).await.unwrap()).await;
        assert_eq!(response.status(), 200, "{}", body_text(&response));
    }
}

/// An HTTP/2 connection to Gatehouse for many concurrent requests.
async fn h2_connection(client: &Client) -> SendRequest<BoxBody> {
    let tls = tls_connect(
        client.addr,
        &client.server_name,
        client_config(&client.ca, &[b"h2"]),
    )
    .await
    .unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_a_handful_of_fetches() {
    let fx = Fixture::start(&["jwks: { unknown_kid_interval: 10s }"], "").await;
    let loaded = fx.idp.jwks_fetches();
    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 250;
    const BATCH: usize = 25;

    let claims = fx.claims("mallory", &["admin"]);
    let tokens: Vec<String> = (0..CONNECTIONS * PER_CONNECTION)
        .map(|_| {
            let kid = uuid::Uuid::new_v4().to_string();
            let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
            fx.es.sign_with_header(&header, &claims).unwrap()
        })
        .collect();
    let mut senders = Vec::new();
    for _ in 0..CONNECTIONS {
        senders.push(h2_connection(&fx.client).await);
    }
    let workers =
        senders
            .into_iter()
            .zip(tokens.chunks(PER_CONNECTION))
            .map(|(sender, tokens)| async move {
                let mut statuses = Vec::new();
                for batch in tokens.chunks(BATCH) {
                    let requests = batch.iter().map(|token| {
                        let mut sender = sender.clone();
                        let request = Request::get("https://localhost/api/me")
                            .header("authorization", format!("Bearer {token}"))
                            .body(empty())
                            .unwrap();
                        async move {
                            let response =
                                collect(sender.send_request(request).await.unwrap()).await;
                            (response.status().as_u16(), challenge(&response))
                        }
                    });
                    statuses.extend(join_all(requests).await);
                }
                statuses
            });
    let answers: Vec<(u16, String)> = tokio::time::timeout(WAIT, join_all(workers))
        .await
        .expect("the flood was not answered in time")
        .into_iter()
        .flatten()
        .collect();

    assert_eq!(answers.len(), CONNECTIONS * PER_CONNECTION);
    for (status, challenge) in &answers {
        assert_eq!(*status, 401);
        assert!(
            challenge.contains("no key of the issuer matches the token"),
            "{challenge}"
        );
    }
    assert!(
        fx.app.seen().is_empty(),
        "a flood request reached the upstream"
    );
    let extra = fx.idp.jwks_fetches() - loaded;
    assert!(extra <= 3, "{extra} JWKS fetches for one flood");
    // The issuer still works.
    fx.passes(with_token("GET", "/api/me", &fx.token("alice", &[])))
        .await;
}

#[tokio::test]
async fn keys_keep_serving_while_the_idp_fails_after_start() {
    // The IdP asks for an hour of caching; max_ttl clamps it to a second, so background
    // refreshes run (and fail) while the test watches.
    let fx = Fixture::start(&["jwks: { min_ttl: 1s, max_ttl: 1s, max_stale: 1h }"], "").await;
    fx.idp.set_max_age(Some(3600));
    let admin = fx.gh.admin_addr;
    let (ok, error) = (fetch_series(&fx.idp, "ok"), fetch_series(&fx.idp, "error"));
    let refreshed = metric(admin, &ok).await;
    eventually("a background refresh succeeds", WAIT, || async {
        metric(admin, &ok).await > refreshed
    })
    .await;
    let fresh = |n: usize| {
        fx.rsa
            .sign(&fx.claims(&format!("user-{n}"), &["admin"]))
            .unwrap()
    };
    fx.passes(with_token("GET", "/admin/x", &fresh(0))).await;

    // 500s: refreshes fail. Three in a row take at least 0.75 + 0.25 + 0.5 s, so the set is
    // past its one-second TTL by then, and tokens still pass.
    fx.idp.fail_with(StatusCode::INTERNAL_SERVER_ERROR);
    let errors = metric(admin, &error).await;
    eventually("three refreshes fail", WAIT, || async {
        metric(admin, &error).await >= errors + 3.0
    })
    .await;
    for n in 1..=3 {
        let seen = fx.passes(with_token("GET", "/admin/x", &fresh(n))).await;
        assert_eq!(seen.header("x-user-id"), Some(format!("user-{n}").as_str()));
    }

    // Unreachable: connections refused. Still served from the cached keys.
    fx.idp.stop();
    let errors = metric(admin, &error).await;
    eventually("a refresh fails against a closed port", WAIT, || async {
        metric(admin, &error).await > errors
    })
    .await;
    for n in 4..=6 {
        fx.passes(with_token("GET", "/api/me", &fresh(n))).await;
    }
    // Forgeries are still refused: stale keys are still the only keys.
    let (header, payload, _) = parts(&fresh(7));
    let forged = format!("{header}.{payload}.{}", b64([0u8; 256]));
    fx.unauthorized(
        with_token("GET", "/admin/x", &forged),
        "the token's signature is invalid",
    )
    .await;
    let (status, _) = admin_get(admin, "/readyz").await;
    assert_eq!(status, 200, "stale keys within max_stale keep readiness");
}

#[tokio::test]
async fn an_idp_down_at_start_means_503_until_it_answers() {
    let fx = Fixture::launch(&[], "", Some(StatusCode::SERVICE_UNAVAILABLE)).await;
    let admin = fx.gh.admin_addr;
    let issuer = fx.idp.issuer();
    let error = fetch_series(&fx.idp, "error");
    eventually("the first fetch fails", WAIT, || async {
        metric(admin, &error).await >= 1.0
    })
    .await;
    let (status, body) = admin_get(admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&format!("keys of {issuer}")), "{body}");

    let token = fx.token("alice", &["admin"]);
    for path in ["/api/me", "/admin/x"] {
        let response = fx.refused(with_token("GET", path, &token), 503).await;
        assert!(body_text(&response).contains("keys_unavailable"));
        assert!(!response.headers().contains_key("www-authenticate"));
    }
    // Routes that need no token are served meanwhile; a missing token is still a 401.
    fx.passes(request("GET", "/public/x").body(empty()).unwrap())
        .await;
    fx.refused(request("GET", "/api/me").body(empty()).unwrap(), 401)
        .await;

    fx.idp.recover();
    eventually("/readyz turns 200", WAIT, || async {
        admin_get(admin, "/readyz").await.0 == 200
    })
    .await;
    let seen = fx.passes(with_token("GET", "/admin/x", &token)).await;
    assert_eq!(seen.header("x-user-id"), Some("alice"));
}
