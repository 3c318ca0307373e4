//! Valid tokens and what the upstream receives; the time, issuer and audience checks; claim
//! types; the `Authorization` header itself; 403s; the verified-token cache.

use super::*;

#[tokio::test]
async fn valid_rs256_es256_and_eddsa_tokens_pass_with_identity_headers() {
    let fx = Fixture::start(&[], "").await;
    for (signer, sub) in [(&fx.rsa, "alice"), (&fx.es, "bob"), (&fx.ed, "carol")] {
        let token = signer.sign(&fx.claims(sub, &["admin", "dev"])).unwrap();
        for path in ["/api/me", "/admin/users"] {
            let seen = fx.passes(with_token("GET", path, &token)).await;
            assert_eq!(seen.uri, path);
            assert_eq!(seen.header("x-user-id"), Some(sub), "{:?}", signer.alg());
            assert_eq!(seen.header("x-user-roles"), Some("admin,dev"));
            assert!(seen.header("authorization").is_none(), "the token leaked");
        }
    }
    // Over HTTP/2 too.
    let token = fx.ed.sign(&fx.claims("dave", &["dev"])).unwrap();
    let response = fx
        .client
        .h2(Request::get("https://localhost/api/me")
            .header("authorization", format!("Bearer {token}"))
            .body(empty())
            .unwrap())
        .await;
    assert_eq!(response.status(), 200);
    let seen = fx.app.seen().last().unwrap().clone();
    assert_eq!(seen.header("x-user-id"), Some("dave"));
    assert_eq!(seen.header("x-user-roles"), Some("dev"));
    assert!(seen.header("authorization").is_none());
    // A public route sends no identity, even with a valid token.
    let seen = fx.passes(with_token("GET", "/public/x", &token)).await;
    assert!(seen.header("x-user-id").is_none());
    assert!(seen.header("authorization").is_none());
}

#[tokio::test]
async fn expiry_issuer_audience_kid_tampering_and_size_are_checked() {
    // Headers up to 128 KiB, so that the 64 KB token reaches the token check.
    let fx = Fixture::start(&[], "limits:\n  max_header_bytes: 131072\n").await;
    let now = now();
    let issuer = fx.idp.issuer();
    let edit = |change: &dyn Fn(&mut Value)| {
        let mut claims = fx.claims("alice", &["admin"]);
        change(&mut claims);
        fx.rsa.sign(&claims).unwrap()
    };

    let refused: Vec<(&str, String, &str)> = vec![
        (
            "no exp",
            edit(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "the token has no expiry",
        ),
        (
            "expired beyond the leeway",
            edit(&|c| c["exp"] = json!(now - 120)),
            "the token has expired",
        ),
        (
            "exp a string",
            edit(&|c| c["exp"] = json!((now + 300).to_string())),
            "the token's claims are not usable",
        ),
        (
            "nbf in the future",
            edit(&|c| c["nbf"] = json!(now + 300)),
            "the token is not valid yet",
        ),
        (
            "iat in the future",
            edit(&|c| c["iat"] = json!(now + 300)),
            "the token is not valid yet",
        ),
        (
            "another issuer",
            edit(&|c| c["iss"] = json!("https://evil.example")),
            "the token's issuer is not accepted",
        ),
        (
            "the issuer with a trailing slash",
            edit(&|c| c["iss"] = json!(format!("{issuer}/"))),
            "the token's issuer is not accepted",
        ),
        (
            "no issuer",
            edit(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
            "the token's issuer is not accepted",
        ),
        (
            "another audience",
            edit(&|c| c["aud"] = json!("other-service")),
            "the token's audience is not accepted",
        ),
        (
            "other audiences",
            edit(&|c| c["aud"] = json!(["other-service", "another"])),
            "the token's audience is not accepted",
        ),
        (
            "no audience",
            edit(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            "the token's audience is not accepted",
        ),
        (
            "an unknown kid",
            fx.rsa
                .sign_with_header(
                    &json!({"alg": "RS256", "typ": "JWT", "kid": "no-such-key"}),
                    &fx.claims("alice", &["admin"]),
                )
                .unwrap(),
            "no key of the issuer matches the token",
        ),
        (
            "64 KB",
            edit(&|c| c["padding"] = json!("x".repeat(64 * 1024))),
            "the token is too large",
        ),
    ];
    for (what, token, reason) in refused {
        println!("{what}");
        fx.unauthorized(with_token("GET", "/api/me", &token), reason)
            .await;
    }

    // Tampering after signing: the payload re-encoded with a changed claim, signature kept.
    let valid = fx.token("alice", &["dev"]);
    let (header, _, signature) = parts(&valid);
    for change in [
        &(|c: &mut Value| c["roles"] = json!(["admin"])) as &dyn Fn(&mut Value),
        &|c: &mut Value| c["sub"] = json!("root"),
        &|c: &mut Value| c["exp"] = json!(now + 86_400),
    ] {
        let mut claims = payload_of(&valid);
        change(&mut claims);
        let token = format!("{header}.{}.{signature}", b64(claims.to_string()));
        fx.unauthorized(
            with_token("GET", "/admin/x", &token),
            "the token's signature is invalid",
        )
        .await;
    }

    // Within the 30 s leeway, and an audience list with one accepted value, pass.
    for (what, token) in [
        ("exp 10 s ago", edit(&|c| c["exp"] = json!(now - 10))),
        ("nbf in 10 s", edit(&|c| c["nbf"] = json!(now + 10))),
        ("iat in 10 s", edit(&|c| c["iat"] = json!(now + 10))),
        (
            "one matching audience",
            edit(&|c| c["aud"] = json!(["other-service", AUDIENCE])),
        ),
        ("the untouched token", valid.clone()),
    ] {
        println!("{what}");
        let seen = fx.passes(with_token("GET", "/api/me", &token)).await;
        assert_eq!(seen.header("x-user-id"), Some("alice"), "{what}");
    }
}

#[tokio::test]
async fn roles_of_the_wrong_type_are_refused() {
    let fx = Fixture::start(&[], "").await;
    for roles in [
        json!({"admin": true}),
        json!(42),
        json!(["admin", 1]),
        json!([["admin"]]),
        json!(true),
    ] {
        let mut claims = fx.claims("alice", &[]);
        claims["roles"] = roles;
        let token = fx.rsa.sign(&claims).unwrap();
        for path in ["/api/me", "/admin/x"] {
            fx.unauthorized(
                with_token("GET", path, &token),
                "the token's claims are not usable",
            )
            .await;
        }
    }
    // Subjects that are not non-empty strings are refused the same way.
    for sub in [json!(""), json!(7), json!(null)] {
        let mut claims = fx.claims("x", &["admin"]);
        claims["sub"] = sub;
        let token = fx.rsa.sign(&claims).unwrap();
        fx.unauthorized(
            with_token("GET", "/api/me", &token),
            "the token's claims are not usable",
        )
        .await;
    }
    // A single string is refused too unless the issuer opts in (see `identity`).
    let mut claims = fx.claims("alice", &[]);
    claims["roles"] = json!("admin");
    let token = fx.rsa.sign(&claims).unwrap();
    fx.unauthorized(
        with_token("GET", "/admin/x", &token),
        "the token's claims are not usable",
    )
    .await;
}

#[tokio::test]
async fn the_authorization_header_must_be_one_bearer_credential() {
    let fx = Fixture::start(&[], "").await;
    let token = fx.token("alice", &["admin"]);
    let other = fx.token("bob", &["admin"]);

    // Two headers, even both valid, or the same one twice.
    for second in [&other, &token] {
        let request = request("GET", "/api/me")
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", format!("Bearer {second}"))
            .body(empty())
            .unwrap();
        let response = fx.refused(request, 401).await;
        assert!(
            challenge(&response).contains("error=\"invalid_request\""),
            "{}",
            challenge(&response)
        );
    }
    // Another scheme is no credential at all on a bearer route.
    for value in ["Basic YWxpY2U6c2VjcmV0", "Digest username=\"alice\""] {
        let request = request("GET", "/api/me")
            .header("authorization", value)
            .body(empty())
            .unwrap();
        let response = fx.refused(request, 401).await;
        assert_eq!(challenge(&response), "Bearer realm=\"gatehouse\"");
    }
    // Malformed bearer credentials.
    for value in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {token} extra"),
        format!("Bearer {token}+"),
    ] {
        let request = request("GET", "/api/me")
            .header("authorization", value)
            .body(empty())
            .unwrap();
        fx.refused(request, 401).await;
    }
    // The scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let request = request("GET", "/api/me")
            .header("authorization", format!("{scheme} {token}"))
            .body(empty())
            .unwrap();
        let seen = fx.passes(request).await;
        assert_eq!(seen.header("x-user-id"), Some("alice"));
        assert!(seen.header("authorization").is_none());
    }
    // No credential on a bearer route: a bare challenge.
    let response = fx
        .refused(request("GET", "/api/me").body(empty()).unwrap(), 401)
        .await;
    assert_eq!(challenge(&response), "Bearer realm=\"gatehouse\"");
}

#[tokio::test]
async fn missing_roles_and_scopes_are_403() {
    let fx = Fixture::start(&[], "").await;
    let user = fx.token("alice", &["dev"]);
    let response = fx.refused(with_token("GET", "/admin/x", &user), 403).await;
    assert!(!response.headers().contains_key("www-authenticate"));
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["error"], "forbidden", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("admin"),
        "{body}"
    );

    // POST /orders needs the scope; GET falls through to the plain bearer route.
    let mut claims = fx.claims("alice", &["dev"]);
    claims["scope"] = json!("orders:read profile");
    let reader = fx.rsa.sign(&claims).unwrap();
    let response = fx
        .refused(with_token("POST", "/orders/1", &reader), 403)
        .await;
    let challenge = challenge(&response);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("orders:write"), "{challenge}");
    let seen = fx.passes(with_token("GET", "/orders/1", &reader)).await;
    assert_eq!(seen.method, "GET");

    claims["scope"] = json!("orders:read orders:write");
    claims["jti"] = json!("writer");
    let writer = fx.rsa.sign(&claims).unwrap();
    let seen = fx.passes(with_token("POST", "/orders/1", &writer)).await;
    assert_eq!(seen.method, "POST");
    // `scp` as an array works as well.
    let mut claims = fx.claims("alice", &[]);
    claims["scp"] = json!(["orders:write"]);
    let token = fx.rsa.sign(&claims).unwrap();
    fx.passes(with_token("POST", "/orders/2", &token)).await;
}

#[tokio::test]
async fn a_repeated_token_is_answered_from_the_cache() {
    let fx = Fixture::start(&[], "").await;
    const HITS: &str = "gatehouse_token_cache_total{result=\"hit\"}";
    let token = fx.token("alice", &["admin"]);
    fx.passes(with_token("GET", "/api/me", &token)).await;
    let hits = metric(fx.gh.admin_addr, HITS).await;
    let seen = fx.passes(with_token("GET", "/admin/x", &token)).await;
    assert_eq!(seen.header("x-user-id"), Some("alice"));
    assert_eq!(seen.header("x-user-roles"), Some("admin"));
    assert!(metric(fx.gh.admin_addr, HITS).await > hits);
    // A refused token is never cached: the same forgery is refused every time.
    let (header, payload, _) = parts(&token);
    let forged = format!("{header}.{payload}.{}", b64([0u8; 256]));
    for _ in 0..2 {
        fx.unauthorized(
            with_token("GET", "/api/me", &forged),
            "the token's signature is invalid",
        )
        .await;
    }
}
