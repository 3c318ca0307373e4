//! Login details found by trying it by hand (issue 11, item 8): `rd=` must be this origin
//! (scheme, host and port) or an allow-listed `host[:port]`; `signed_out` is a page to register
//! as the post-logout URI; sign-out before discovery says the provider's session may remain;
//! a form POST without a session is sent to the login with 303; and a session-only route's
//! 401 does not ask for a bearer token.

use http::Method;

use super::*;

/// `allowed_redirect_hosts` for [`rd_must_be_this_origin_or_an_allowed_host_and_port`].
const HOSTS: &str = "allowed_redirect_hosts: [.example.com, \"app.test:8443\", \"[::1]:9443\"]";

#[tokio::test]
async fn rd_must_be_this_origin_or_an_allowed_host_and_port() {
    let fx = Fixture::with(Options {
        login: vec![HOSTS.into()],
        ..Options::default()
    })
    .await;
    let mut browser = fx.browser();
    // The browser reaches Gatehouse as `https://localhost` (port 443); none of these is that
    // origin, nor an allowed host on its port.
    for rd in [
        "https://localhost:9999/app/x",
        "https://localhost:8443/app/x",
        "https://LOCALHOST:9999/app/x",
        "https://localhost./app/x",
        "https://x.example.com:8443/y",
        "https://x.example.com./y",
        "https://app.test/y",
        "https://app.test:443/y",
        "https://app.test:9443/y",
        "https://app.test.:8443/y",
        "https://[::1]/y",
        "https://[::1]:8443/y",
        "https://user@app.test:8443/y",
    ] {
        let visit = browser.visit(&start_url(rd)).await;
        assert_eq!(visit.landed(), "/", "rd={rd}: {:?}", visit.urls);
    }
    for (rd, landed) in [
        ("https://localhost:443/app/a", "/app/a"),
        ("https://LocalHost/app/b", "/app/b"),
        ("https://x.example.com:443/y", "https://x.example.com/y"),
        ("https://app.test:8443/y", "https://app.test:8443/y"),
        ("https://APP.test:08443/y", "https://app.test:8443/y"),
        ("https://[0::1]:9443/y", "https://[::1]:9443/y"),
    ] {
        let visit = browser.visit(&start_url(rd)).await;
        assert_eq!(visit.landed(), landed, "rd={rd}: {:?}", visit.urls);
    }
}

#[test]
fn an_allowed_redirect_host_that_is_not_a_host_and_port_is_a_config_error() {
    let pki = pki();
    let secret = pki.dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    let text = config_text(
        &pki,
        "http://127.0.0.1:1",
        &format!(
            "login:\n  issuer: https://idp.example.com\n  client_id: c\n  redirect_url: https://localhost/oauth2/callback\n  allowed_redirect_hosts: [ok.example.com, \"https://app.example.com\", \"app.example.com:99999\", \"app.example.com.\", \"user@app.example.com\", \"app.example.com/x\"]\nsession:\n  secrets: [{{ file: {} }}]\n",
            secret.display()
        ),
    );
    let overrides = gatehouse::config::Overrides::default();
    let parsed =
        gatehouse::config::parse(&text, std::path::Path::new("gatehouse.yaml"), &overrides);
    let Err(errors) = parsed else {
        panic!("the config is accepted");
    };
    let errors = errors.to_string();
    for i in 1..=5 {
        assert!(
            errors.contains(&format!("login.allowed_redirect_hosts[{i}]")),
            "entry {i}: {errors}"
        );
    }
    assert!(
        !errors.contains("login.allowed_redirect_hosts[0]"),
        "{errors}"
    );
}

#[tokio::test]
async fn signed_out_is_a_page_to_register_as_the_post_logout_uri() {
    let fx = Fixture::with(Options {
        login: vec!["post_logout_redirect_url: https://localhost/oauth2/signed_out".into()],
        ..Options::default()
    })
    .await;
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    let response = browser.navigate("/oauth2/sign_out").await;
    let to = location(&response).unwrap().to_owned();
    assert!(to.contains("post_logout_redirect_uri="), "{to}");

    // The provider ends its session and sends the browser to the page.
    let visit = browser.visit(&to).await;
    assert_eq!(visit.landed(), "/oauth2/signed_out", "{:?}", visit.urls);
    assert_eq!(visit.status(), 200, "{}", visit.body());
    assert!(content_type(&visit.response).starts_with("text/html"));
    assert!(visit.body().contains("signed out"), "{}", visit.body());
    assert!(
        visit.body().contains("href=\"/oauth2/start?rd=%2F\""),
        "{}",
        visit.body()
    );
    assert_eq!(fx.idp.logouts().len(), 1);
    assert!(fx.app.seen().len() == 1, "the page is Gatehouse's own");

    let mut post = browser.request("/oauth2/signed_out", &NAVIGATION);
    *post.method_mut() = Method::POST;
    assert_eq!(browser.send(post).await.status(), 405);
}

#[tokio::test]
async fn sign_out_before_discovery_says_the_provider_session_may_remain() {
    let fx = Fixture::launch(Options {
        discovery_down: true,
        ..Options::default()
    })
    .await;
    let mut browser = fx.browser();
    let now = now();
    let data = SessionData {
        id: "0123456789abcdef0123456789abcdef".into(),
        subject: "alice".into(),
        email: None,
        roles: vec!["dev".into()],
        expires: now + 300,
        ends: now + 3600,
        refresh_token: None,
        id_token: Some("an.id.token".into()),
        claims: serde_json::Map::new(),
        access_token: None,
        sid: None,
        provider: None,
    };
    browser.set_cookie(SESSION, &fx.sealer(&["a"]).seal(SESSION, &data).unwrap());

    let response = browser
        .navigate(&format!("/oauth2/sign_out?rd={}", encode("/bye")))
        .await;
    let body = body_text(&response);
    assert_eq!(response.status(), 200, "{body}");
    assert!(location(&response).is_none(), "redirected: {body}");
    assert!(content_type(&response).starts_with("text/html"));
    assert!(body.contains("may still be open"), "{body}");
    assert_eq!(
        set_cookies(&response),
        [format!(
            "{SESSION}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
        )]
    );
    assert!(session_cookies(&browser).is_empty());
    assert!(fx.idp.logouts().is_empty());
}

/// `browser.request` with another method.
fn with_method(
    browser: &Browser,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Request<BoxBody> {
    let mut request = browser.request(path, headers);
    *request.method_mut() = method;
    request
}

#[tokio::test]
async fn a_form_post_without_a_session_is_sent_to_log_in_with_303() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    let old_browser = [("accept", "text/html,application/xhtml+xml")];
    for (method, path, headers) in [
        (Method::POST, "/app/save?draft=1", NAVIGATION.to_vec()),
        (Method::POST, "/app/save", old_browser.to_vec()),
        (Method::PUT, "/app/save", NAVIGATION.to_vec()),
        (Method::POST, "/api/items", NAVIGATION.to_vec()),
        // `on_unauthenticated: redirect`: even a script, and still 303 for a POST.
        (Method::POST, "/forced/page", FETCH.to_vec()),
    ] {
        let what = format!("{method} {path} {headers:?}");
        let response = browser
            .send(with_method(&browser, method, path, &headers))
            .await;
        assert_eq!(response.status(), 303, "{what}: {}", body_text(&response));
        assert_eq!(
            location(&response),
            Some(start_url(path).as_str()),
            "{what}"
        );
    }
    // Scripts still get JSON; GET and HEAD navigations keep 302.
    for (method, headers) in [
        (Method::POST, FETCH.to_vec()),
        (
            Method::POST,
            vec![("accept", "text/html"), ("sec-fetch-mode", "cors")],
        ),
        (
            Method::POST,
            vec![
                ("accept", "text/html"),
                ("x-requested-with", "XMLHttpRequest"),
            ],
        ),
        (Method::POST, vec![("accept", "*/*")]),
    ] {
        let response = browser
            .send(with_method(&browser, method, "/app/save", &headers))
            .await;
        assert_401_json(&response, &format!("{headers:?}"));
    }
    let head = browser
        .send(with_method(
            &browser,
            Method::HEAD,
            "/app/save",
            &NAVIGATION,
        ))
        .await;
    assert_eq!(head.status(), 302);
    assert_login_redirect(&browser.navigate("/app/save").await, "/app/save", "GET");

    // The browser follows the 303 with a GET and comes back to the path after login.
    let visit = browser.visit(&start_url("/app/save?draft=1")).await;
    assert_eq!(visit.landed(), "/app/save?draft=1", "{:?}", visit.urls);
    assert_eq!(fx.last_seen().method, "GET");
}

#[tokio::test]
async fn a_session_only_401_does_not_ask_for_a_bearer_token() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    let challenge = |r: &Response<Bytes>| {
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for response in [
        browser.fetch("/app/data").await,
        browser.navigate("/denied/page").await,
    ] {
        assert_401_json(&response, "session route");
        assert_eq!(challenge(&response), None);
    }
    // `auth: any` takes a bearer token, and says so.
    let response = browser.fetch("/api/items").await;
    assert_401_json(&response, "any route");
    assert_eq!(
        challenge(&response).as_deref(),
        Some("Bearer realm=\"gatehouse\"")
    );
    let response = browser.fetch("/oauth2/userinfo").await;
    assert_eq!(
        challenge(&response).as_deref(),
        Some("Bearer realm=\"gatehouse\"")
    );
}
