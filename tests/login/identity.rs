//! The identity rules of bearer tokens hold for browser sessions too: an ID token whose
//! identity the app could read two ways makes no session, a session cookie carrying such an
//! identity counts as none, and `/oauth2/auth` refuses what its comma-joined groups header
//! cannot carry.

use super::flow::assert_error_page;
use super::session::assert_signed_out;
use super::*;

#[tokio::test]
async fn an_id_token_with_a_comma_role_or_a_control_character_makes_no_session() {
    let fx = Fixture::with(Options {
        bearer_audience: Some("api"),
        extra: "trusted_proxies: [127.0.0.1/32]\n",
        ..Options::default()
    })
    .await;
    for user in [
        User::new("alice", &["reader,admin"]),
        User::new("alice", &[" admin"]),
        User::new("alice", &["dev\u{7f}"]),
        User::new("alice\r\nx-admin: 1", &["dev"]),
    ] {
        println!("{user:?}");
        fx.idp.set_user(user);
        let mut browser = fx.browser();
        let visit = browser.visit("/app/x").await;
        assert_eq!(visit.urls.last().unwrap().path(), "/oauth2/callback");
        assert_error_page(&visit.response, &browser, 502, "could not be completed");
        assert!(fx.app.seen().is_empty());
    }
    // The same identity as a bearer token of the issuer is refused by `/oauth2/auth`.
    let now = now();
    let token = fx.idp.sign(&serde_json::json!({
        "iss": fx.idp.issuer(), "aud": "api", "sub": "svc", "roles": ["reader,admin"],
        "iat": now, "exp": now + 300,
    }));
    for path in ["/oauth2/auth", "/oauth2/userinfo", "/api/x"] {
        let request = http::Request::get(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .header("x-forwarded-uri", "/api/x")
            .body(empty())
            .unwrap();
        let response = fx.client().h1(request).await;
        assert_eq!(response.status(), 401, "{path}");
    }
    assert!(fx.app.seen().is_empty());
    // A plain identity still signs in.
    fx.idp.set_user(User::new("alice", &["dev"]));
    fx.login(&mut fx.browser(), "/app/x").await;
}

/// A change to a session's data.
type Edit = fn(&mut SessionData);

#[tokio::test]
async fn a_session_is_checked_again_when_it_is_restored() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    let good = fx.session(&browser);
    // Sessions sealed with our own key (e.g. before `identity.list_format` went back to csv).
    let edits: [(&str, Edit); 3] = [
        ("a comma role", |d| d.roles = vec!["reader,admin".into()]),
        ("a control character in the subject", |d| {
            d.subject = "alice\u{0}".into()
        }),
        ("a control character in the email", |d| {
            d.email = Some("alice\r\n@example.com".into())
        }),
    ];
    for (what, edit) in edits {
        let mut data = good.clone();
        edit(&mut data);
        let sealed = fx.sealer(&["a"]).seal(SESSION, &data).unwrap();
        browser.set_cookie(SESSION, &sealed);
        assert_signed_out(&fx, &mut browser, what).await;
    }
    // The untouched session still works.
    let sealed = fx.sealer(&["a"]).seal(SESSION, &good).unwrap();
    browser.set_cookie(SESSION, &sealed);
    assert_eq!(browser.navigate("/app/x").await.status(), 200);
}

#[tokio::test]
async fn with_json_lists_a_comma_role_signs_in_but_forward_auth_refuses_it() {
    let fx = Fixture::with(Options {
        extra: "identity:\n  list_format: json\ntrusted_proxies: [127.0.0.1/32]\n",
        ..Options::default()
    })
    .await;
    fx.idp
        .set_user(User::new("alice", &["reader,admin", "dev"]));
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    assert_eq!(
        fx.last_seen().header("x-user-roles"),
        Some(r#"["reader,admin","dev"]"#)
    );
    let response = browser.fetch("/oauth2/userinfo").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json_body(&response)["groups"],
        serde_json::json!(["reader,admin", "dev"])
    );
    // `X-Auth-Request-Groups` is comma-joined, as oauth2-proxy sends it: it cannot say this.
    let response = ask_forward_auth(&mut browser, "/app/x").await;
    assert_401_json_invalid(&response);
    assert!(response.headers().get("x-auth-request-user").is_none());
    // Without such a role the answer is the usual one.
    fx.idp.set_user(User::new("bob", &["a", "b"]));
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    let response = ask_forward_auth(&mut browser, "/app/x").await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-auth-request-groups"], "a,b");
}

fn assert_401_json_invalid(response: &Response<Bytes>) {
    assert_eq!(response.status(), 401, "{}", body_text(response));
    assert!(location(response).is_none());
    assert_eq!(json_body(response)["error"], "invalid_token");
}
