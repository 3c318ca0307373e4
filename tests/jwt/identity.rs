//! Identity values that the app could read two ways are refused: list items holding the
//! separator, control characters in anything that becomes a header, roles of the wrong type,
//! and tokens whose header or claims name a member twice.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};

use super::*;

const CLAIMS_REFUSED: &str = "the token's claims are not usable";

/// Signs exactly `header` and `claims` (JSON text, not re-serialized) with the fixture's
/// EdDSA key, so that a test can send what `serde_json::Value` cannot hold.
fn sign_raw(fx: &Fixture, header: &str, claims: &str) -> String {
    let key = Ed25519KeyPair::from_pkcs8(fx.ed.pkcs8()).unwrap();
    assert!(!key.public_key().as_ref().is_empty());
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(signature.as_ref()))
}

/// The fixture's claims for `sub` as JSON text without the closing brace, to append to.
fn open_claims(fx: &Fixture, sub: &str) -> String {
    let mut claims = fx.claims(sub, &[]);
    claims.as_object_mut().unwrap().remove("roles");
    let mut text = claims.to_string();
    assert_eq!(text.pop(), Some('}'));
    text
}

fn ed_header() -> String {
    r#"{"alg":"EdDSA","typ":"JWT","kid":"ed-1"}"#.to_owned()
}

#[tokio::test]
async fn a_role_holding_a_comma_never_reaches_the_app_as_two_roles() {
    let fx = Fixture::start(&[], "").await;
    for roles in [
        &["reader,admin"][..],
        &["dev", " admin"],
        &["admin "],
        &[""],
    ] {
        let token = fx.token("alice", roles);
        for path in ["/api/me", "/admin/x"] {
            fx.unauthorized(with_token("GET", path, &token), CLAIMS_REFUSED)
                .await;
        }
    }
    // Scopes are space-joined: a scope with a space or a comma inside is refused too.
    for scp in [json!(["orders:read orders:write"]), json!(["a,b"])] {
        let mut claims = fx.claims("alice", &["dev"]);
        claims["scp"] = scp;
        let token = fx.rsa.sign(&claims).unwrap();
        fx.unauthorized(with_token("GET", "/api/me", &token), CLAIMS_REFUSED)
            .await;
    }
    // Plain roles still pass.
    let seen = fx
        .passes(with_token(
            "GET",
            "/admin/x",
            &fx.token("alice", &["admin", "dev"]),
        ))
        .await;
    assert_eq!(seen.header("x-user-roles"), Some("admin,dev"));
}

#[tokio::test]
async fn with_list_format_json_the_app_gets_a_json_array() {
    let fx = Fixture::start(
        &[],
        "identity:\n  list_format: json\n  scopes_header: X-User-Scopes\n",
    )
    .await;
    let mut claims = fx.claims("alice", &["reader,admin", " dev"]);
    claims["scope"] = json!("orders:read orders:write");
    let token = fx.rsa.sign(&claims).unwrap();
    let seen = fx.passes(with_token("GET", "/api/me", &token)).await;
    assert_eq!(
        seen.header("x-user-roles"),
        Some(r#"["reader,admin"," dev"]"#)
    );
    assert_eq!(
        seen.header("x-user-scopes"),
        Some(r#"["orders:read","orders:write"]"#)
    );
    // Policy sees the role as one role: `admin` is not among them.
    fx.refused(with_token("GET", "/admin/x", &token), 403).await;
    let seen = fx
        .passes(with_token("GET", "/api/me", &fx.token("bob", &[])))
        .await;
    assert_eq!(seen.header("x-user-roles"), Some("[]"));
    // Control characters are refused under any format.
    let token = fx.token("alice", &["admin\u{7f}"]);
    fx.unauthorized(with_token("GET", "/api/me", &token), CLAIMS_REFUSED)
        .await;
}

#[tokio::test]
async fn json_lists_still_refuse_commas_in_oauth2_proxy_groups() {
    let fx = Fixture::start(
        &[],
        "identity:\n  list_format: json\n  oauth2_proxy_headers: true\n",
    )
    .await;
    let token = fx.token("alice", &["reader,admin"]);
    fx.unauthorized(with_token("GET", "/api/me", &token), CLAIMS_REFUSED)
        .await;
    let seen = fx
        .passes(with_token(
            "GET",
            "/api/me",
            &fx.token("alice", &["a", "b"]),
        ))
        .await;
    assert_eq!(seen.header("x-user-roles"), Some(r#"["a","b"]"#));
    assert_eq!(seen.header("x-forwarded-groups"), Some("a,b"));
}

#[tokio::test]
async fn control_characters_in_identity_claims_are_401_not_a_missing_header() {
    let fx = Fixture::start(&[], "identity:\n  email_header: X-User-Email\n").await;
    for bad in [
        "alice\r\nx-admin: 1",
        "alice\u{0}",
        "alice\u{7f}",
        "al\u{85}ice",
        "a\tb",
    ] {
        println!("{bad:?}");
        let mut sub = fx.claims(bad, &["dev"]);
        fx.unauthorized(
            with_token("GET", "/api/me", &fx.rsa.sign(&sub).unwrap()),
            CLAIMS_REFUSED,
        )
        .await;
        sub["sub"] = json!("alice");
        sub["email"] = json!(format!("{bad}@example.com"));
        fx.unauthorized(
            with_token("GET", "/api/me", &fx.rsa.sign(&sub).unwrap()),
            CLAIMS_REFUSED,
        )
        .await;
        let role = fx.token("alice", &["dev", bad]);
        fx.unauthorized(with_token("GET", "/api/me", &role), CLAIMS_REFUSED)
            .await;
    }
    // An email of the wrong type is refused, not dropped.
    let mut claims = fx.claims("alice", &["dev"]);
    claims["email"] = json!(["alice@example.com"]);
    fx.unauthorized(
        with_token("GET", "/api/me", &fx.rsa.sign(&claims).unwrap()),
        CLAIMS_REFUSED,
    )
    .await;
    // Non-ASCII text that is no control character passes.
    let mut claims = fx.claims("zoë", &["dev"]);
    claims["email"] = json!("zoë@example.com");
    let seen = fx
        .passes(with_token("GET", "/api/me", &fx.rsa.sign(&claims).unwrap()))
        .await;
    assert_eq!(seen.headers["x-user-id"].as_bytes(), "zoë".as_bytes());
}

#[tokio::test]
async fn roles_as_one_string_are_refused_unless_the_issuer_opts_in() {
    let fx = Fixture::start(&[], "").await;
    let single = |fx: &Fixture, roles: &str| {
        let mut claims = fx.claims("alice", &[]);
        claims["roles"] = json!(roles);
        fx.rsa.sign(&claims).unwrap()
    };
    for path in ["/api/me", "/admin/x"] {
        fx.unauthorized(
            with_token("GET", path, &single(&fx, "admin")),
            CLAIMS_REFUSED,
        )
        .await;
    }

    let fx = Fixture::start(&["claims: { roles_string: single }"], "").await;
    let seen = fx
        .passes(with_token("GET", "/admin/x", &single(&fx, "admin")))
        .await;
    assert_eq!(seen.header("x-user-roles"), Some("admin"));
    // `single` keeps the string whole, so the csv rules still apply to it.
    let seen = fx
        .passes(with_token("GET", "/api/me", &single(&fx, "Domain Admins")))
        .await;
    assert_eq!(seen.header("x-user-roles"), Some("Domain Admins"));
    fx.unauthorized(
        with_token("GET", "/api/me", &single(&fx, "admin,dev")),
        CLAIMS_REFUSED,
    )
    .await;

    let fx = Fixture::start(&["claims: { roles_string: split }"], "").await;
    let seen = fx
        .passes(with_token("GET", "/admin/x", &single(&fx, "admin dev")))
        .await;
    assert_eq!(seen.header("x-user-roles"), Some("admin,dev"));
    let seen = fx
        .passes(with_token("GET", "/admin/x", &single(&fx, " admin,, dev ")))
        .await;
    assert_eq!(seen.header("x-user-roles"), Some("admin,dev"));
    // Arrays are what they always were; other types stay refused.
    let seen = fx
        .passes(with_token(
            "GET",
            "/admin/x",
            &fx.token("alice", &["admin"]),
        ))
        .await;
    assert_eq!(seen.header("x-user-roles"), Some("admin"));
    let mut claims = fx.claims("alice", &[]);
    claims["roles"] = json!(7);
    fx.unauthorized(
        with_token("GET", "/api/me", &fx.rsa.sign(&claims).unwrap()),
        CLAIMS_REFUSED,
    )
    .await;
}

#[tokio::test]
async fn a_member_named_twice_in_the_claims_or_the_header_is_refused() {
    let fx = Fixture::start(&[], "").await;
    let open = open_claims(&fx, "alice");
    let header = ed_header();
    // The hand-built form of a good token passes, so the refusals below are about the names.
    let good = sign_raw(&fx, &header, &format!(r#"{open},"roles":["admin"]}}"#));
    let seen = fx.passes(with_token("GET", "/admin/x", &good)).await;
    assert_eq!(seen.header("x-user-roles"), Some("admin"));

    let claims = [
        format!(r#"{open},"roles":["reader"],"roles":["admin"]}}"#),
        format!(r#"{open},"roles":["reader"],"rol\u0065s":["admin"]}}"#),
        format!(r#"{open},"sub":"root"}}"#),
        format!(r#"{open},"realm_access":{{"roles":["x"],"roles":["admin"]}}}}"#),
        format!(r#"{open},"orgs":[{{"id":1,"id":2}}]}}"#),
    ];
    for claims in &claims {
        println!("{claims}");
        let token = sign_raw(&fx, &header, claims);
        for path in ["/api/me", "/admin/x"] {
            fx.unauthorized(with_token("GET", path, &token), "the token is malformed")
                .await;
        }
    }
    let body = format!(r#"{open},"roles":["admin"]}}"#);
    for header in [
        r#"{"alg":"EdDSA","typ":"JWT","kid":"ed-1","alg":"none"}"#,
        r#"{"alg":"EdDSA","typ":"JWT","kid":"ed-1","kid":"rsa-1"}"#,
        r#"{"alg":"EdDSA","typ":"JWT","kid":"ed-1","k\u0069d":"ed-1"}"#,
        r#"{"alg":"EdDSA","typ":"JWT","kid":"ed-1","x":{"a":1,"a":1}}"#,
    ] {
        println!("{header}");
        let token = sign_raw(&fx, header, &body);
        fx.unauthorized(
            with_token("GET", "/admin/x", &token),
            "the token is malformed",
        )
        .await;
    }
}
