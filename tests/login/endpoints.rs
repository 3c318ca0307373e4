//! The endpoints under `/oauth2` other than the callback: `start` and `sign_out` with hostile
//! `rd=` values, sign-out at the provider, `userinfo` and `auth`; and the HTML 403.

use super::*;

/// `rd=` values that must never become a redirect, as a link would carry them (encoded).
const HOSTILE: [&str; 16] = [
    "//evil.com",
    "///evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "https:evil.com",
    "https:/evil.com",
    "https://evil.com",
    "http://evil.com",
    "https://badexample.com",
    "https://example.com.evil.com",
    "https://app.example.com@evil.com",
    "https://evil.com\\@app.example.com",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.com",
    "HTTPS://evil.com",
];

/// Whitespace and control tricks, written into the query exactly like this.
const HOSTILE_RAW: [&str; 10] = [
    "%09//evil.com",
    "/%09/evil.com",
    "%20//evil.com",
    "+//evil.com",
    "/%0a/evil.com",
    "%0d%0a//evil.com",
    "//evil.com%0a",
    "https://evil.com%09",
    "https:%2F%2Fevil.com",
    "%2F%2Fevil.com",
];

#[tokio::test]
async fn login_never_redirects_off_site() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    let encoded = HOSTILE.iter().map(|rd| encode(rd));
    let raw = HOSTILE_RAW.iter().map(|rd| rd.to_string());
    for rd in encoded.chain(raw) {
        let visit = browser.visit(&format!("/oauth2/start?rd={rd}")).await;
        assert_eq!(visit.landed(), "/", "rd={rd}: {:?}", visit.urls);
        assert_eq!(visit.status(), 200, "rd={rd}");
        assert!(
            visit
                .urls
                .iter()
                .all(|u| !u.as_str().contains("evil.com") || u.path() == "/oauth2/start"),
            "rd={rd}: {:?}",
            visit.urls
        );
    }
    assert_eq!(
        fx.idp.authorizations().len(),
        HOSTILE.len() + HOSTILE_RAW.len()
    );

    // Allowed: a path here, this host, a subdomain of an allowed domain.
    for (rd, landed) in [
        ("/app/z?k=v", "/app/z?k=v"),
        ("https://localhost/app/same-origin", "/app/same-origin"),
        ("https://x.example.com/y", "https://x.example.com/y"),
    ] {
        let visit = browser.visit(&start_url(rd)).await;
        assert_eq!(visit.landed(), landed, "rd={rd}: {:?}", visit.urls);
    }
}

#[tokio::test]
async fn sign_out_without_provider_logout_stays_on_site() {
    let fx = Fixture::with(Options {
        end_session: false,
        ..Options::default()
    })
    .await;
    let mut browser = fx.browser();
    for (rd, expected) in [
        (encode("//evil.com"), "/"),
        (encode("/\\evil.com"), "/"),
        (encode("https://evil.com"), "/"),
        (encode("https://app.example.com@evil.com"), "/"),
        ("%09//evil.com".into(), "/"),
        (encode("/bye"), "/bye"),
        (
            encode("https://x.example.com/out"),
            "https://x.example.com/out",
        ),
    ] {
        fx.login(&mut browser, "/app/x").await;
        let response = browser.navigate(&format!("/oauth2/sign_out?rd={rd}")).await;
        assert_eq!(response.status(), 302);
        assert_eq!(location(&response), Some(expected), "rd={rd}");
        assert!(session_cookies(&browser).is_empty(), "rd={rd}");
    }
    assert!(fx.idp.logouts().is_empty());
}

#[tokio::test]
async fn sign_out_clears_the_session_and_ends_it_at_the_provider() {
    let fx = Fixture::with(Options {
        login: vec!["post_logout_redirect_url: https://localhost/signed-out".into()],
        ..Options::default()
    })
    .await;
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    let id_token = fx.session(&browser).id_token.unwrap();

    let response = browser
        .navigate(&format!("/oauth2/sign_out?rd={}", encode("//evil.com")))
        .await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        set_cookies(&response),
        [format!(
            "{SESSION}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
        )]
    );
    assert!(session_cookies(&browser).is_empty());
    let to = oauth2::url::Url::parse(location(&response).unwrap()).unwrap();
    assert_eq!(
        format!("{}://{}{}", to.scheme(), to.authority(), to.path()),
        format!("{}/logout", fx.idp.issuer())
    );
    let query: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(query.get("id_token_hint"), Some(&id_token));
    assert_eq!(query.get("client_id").map(String::as_str), Some(CLIENT_ID));
    assert_eq!(
        query.get("post_logout_redirect_uri").map(String::as_str),
        Some("https://localhost/signed-out")
    );

    // The browser follows: the provider ends its session and sends it back here.
    let visit = browser.visit(to.as_str()).await;
    assert_eq!(visit.landed(), "/signed-out");
    assert_eq!(visit.status(), 200);
    assert_eq!(fx.idp.logouts().len(), 1);

    assert_401_json(&browser.fetch("/api/x").await, "after sign-out");
    assert_login_redirect(
        &browser.navigate("/app/x").await,
        "/app/x",
        "after sign-out",
    );

    // Signing out a chunked session clears every chunk.
    let roles: Vec<String> = (0..150).map(|i| format!("team-{i:03}-reader")).collect();
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    fx.idp.set_user(User::new("carol", &roles));
    fx.login(&mut browser, "/app/x").await;
    let chunks = session_cookies(&browser);
    assert!(chunks.len() >= 2);
    let response = browser.navigate("/oauth2/sign_out").await;
    assert_eq!(set_cookies(&response).len(), chunks.len());
    assert!(session_cookies(&browser).is_empty());
    // Without a session there is no hint, and still no open redirect.
    let response = browser.navigate("/oauth2/sign_out").await;
    let to = location(&response).unwrap();
    assert!(
        to.starts_with(&format!("{}/logout?", fx.idp.issuer())),
        "{to}"
    );
    assert!(!to.contains("id_token_hint"), "{to}");
}

#[tokio::test]
async fn userinfo_and_auth_answer_for_a_session_or_a_bearer_token() {
    let fx = Fixture::with(Options {
        bearer_audience: Some("api"),
        extra: "trusted_proxies: [127.0.0.1/32]\n",
        ..Options::default()
    })
    .await;
    let mut browser = fx.browser();
    assert_401_json(&browser.fetch("/oauth2/userinfo").await, "userinfo");
    assert_401_json(&ask_forward_auth(&mut browser, "/app/x").await, "auth");

    fx.login(&mut browser, "/app/x").await;
    let response = browser.fetch("/oauth2/userinfo").await;
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("application/json"));
    let info = json_body(&response);
    assert_eq!(info["user"], "alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["groups"], serde_json::json!(["dev"]));
    assert_eq!(info["issuer"], fx.idp.issuer());

    let response = ask_forward_auth(&mut browser, "/app/x").await;
    assert_eq!(response.status(), 202);
    let header = |r: &Response<Bytes>, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header(&response, "x-auth-request-user").as_deref(),
        Some("alice")
    );
    assert_eq!(
        header(&response, "x-auth-request-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        header(&response, "x-auth-request-groups").as_deref(),
        Some("dev")
    );
    assert!(
        fx.app.seen().len() == 1,
        "only the landing page went upstream"
    );

    // A bearer token of the same issuer, from a client without cookies.
    let now = now();
    let token = fx.idp.sign(&serde_json::json!({
        "iss": fx.idp.issuer(), "aud": "api", "sub": "svc", "roles": ["ops"],
        "iat": now, "exp": now + 300,
    }));
    let client = fx.client();
    let bearer = |path: &str, token: &str| {
        http::Request::get(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .header("x-forwarded-uri", "/api/orders")
            .body(empty())
            .unwrap()
    };
    let response = client.h1(bearer("/oauth2/auth", &token)).await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        header(&response, "x-auth-request-user").as_deref(),
        Some("svc")
    );
    assert_eq!(
        header(&response, "x-auth-request-groups").as_deref(),
        Some("ops")
    );
    let response = client.h1(bearer("/oauth2/userinfo", &token)).await;
    assert_eq!(json_body(&response)["user"], "svc");
    let response = client.h1(bearer("/oauth2/auth", "not.a.token")).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_signed_in_browser_without_the_role_gets_an_html_403() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    let seen = fx.app.seen().len();

    let response = browser.navigate("/admin/panel").await;
    let body = body_text(&response);
    assert_eq!(response.status(), 403, "{body}");
    assert!(content_type(&response).starts_with("text/html"));
    assert!(body.contains("<strong>alice</strong>"), "{body}");
    assert!(body.contains("(roles: dev)"), "{body}");
    assert!(
        body.contains("needs <strong>role one of admin</strong>"),
        "{body}"
    );
    assert!(
        body.contains("<a href=\"/oauth2/sign_out\">sign out</a>"),
        "{body}"
    );

    let response = browser.fetch("/admin/panel").await;
    assert_eq!(response.status(), 403);
    assert!(content_type(&response).starts_with("application/json"));
    assert_eq!(json_body(&response)["error"], "forbidden");
    assert_eq!(
        json_body(&response)["message"],
        "this route needs role one of admin"
    );
    assert_eq!(fx.app.seen().len(), seen, "nothing reached the upstream");

    // What the provider says about the user is escaped on the page.
    fx.idp
        .set_user(User::new("<img src=x onerror=alert(1)>", &["<b>dev</b>"]));
    let mut other = fx.browser();
    other.visit(&start_url("/app/x")).await;
    let body = body_text(&other.navigate("/admin/panel").await);
    assert!(!body.contains("<img") && !body.contains("<b>"), "{body}");
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{body}"
    );

    // With the role, the page passes.
    fx.idp.set_user(User::new("bob", &["admin"]));
    let mut admin = fx.browser();
    fx.login(&mut admin, "/admin/panel").await;
    assert_eq!(fx.last_seen().header("x-user-id"), Some("bob"));
}

/// OAuth 2.0 parameters are sent once (RFC 6749 §3.1): a repeated `rd`, `state` or `code` is
/// refused with Gatehouse's 400 rather than one of them picked, and starts no login.
#[tokio::test]
async fn repeated_query_parameters_are_refused() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    for path in [
        "/oauth2/start?rd=/a&rd=//evil.com",
        "/oauth2/callback?state=x&code=c&state=y",
        "/oauth2/callback?state=x&code=c&code=d",
        "/oauth2/sign_out?rd=/a&rd=//evil.com",
    ] {
        let response = browser.navigate(path).await;
        assert_eq!(response.status(), 400, "{path}: {}", body_text(&response));
        assert!(location(&response).is_none(), "{path}: redirected");
        assert_eq!(json_body(&response)["error"], "bad_request", "{path}");
    }
    assert!(fx.idp.authorizations().is_empty());
    // Sent once, the same parameter starts a login as always.
    let visit = browser.visit(&start_url("/app/z")).await;
    assert_eq!(visit.landed(), "/app/z", "{:?}", visit.urls);
}
