//! The login round trip; what a navigation gets compared with a script or an image; every way
//! a callback can go wrong; several logins at once; readiness.

use super::*;

#[tokio::test]
async fn a_navigation_logs_in_and_lands_on_the_original_url() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    browser.set_cookie("theme", "dark");

    let first = browser.navigate("/app/page?x=1").await;
    assert_login_redirect(&first, "/app/page?x=1", "first navigation");
    assert!(fx.app.seen().is_empty());

    let visit = fx.login(&mut browser, "/app/page?x=1").await;
    let paths: Vec<&str> = visit.urls.iter().map(|u| u.path()).collect();
    assert_eq!(
        paths,
        [
            "/app/page",
            "/oauth2/start",
            "/authorize",
            "/oauth2/callback",
            "/app/page"
        ]
    );

    // What the provider was asked.
    let asked = fx.idp.authorizations();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].client_id, CLIENT_ID);
    assert_eq!(asked[0].redirect_uri, REDIRECT_URL);
    assert_eq!(asked[0].code_challenge_method, "S256");
    assert_eq!(asked[0].code_challenge.len(), 43, "BASE64URL(SHA-256)");
    assert!(asked[0].nonce.len() >= 16 && asked[0].state.len() >= 32);
    let scopes: Vec<&str> = asked[0].scope.split(' ').collect();
    for scope in ["openid", "profile", "email"] {
        assert!(scopes.contains(&scope), "{scopes:?}");
    }
    assert_eq!(fx.idp.code_exchanges(), 1);

    // The flow cookie was host-only, HttpOnly and short-lived, and is gone now.
    let flow = browser
        .set_cookie_log
        .iter()
        .find(|l| l.starts_with(FLOW))
        .unwrap();
    assert!(
        flow.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600"),
        "{flow}"
    );
    assert_eq!(flow_cookies(&browser), 0);

    // The session cookie.
    assert_eq!(session_cookies(&browser), [SESSION]);
    let line = &browser.cookie(SESSION).unwrap().line;
    let attributes: Vec<&str> = line.split("; ").skip(1).collect();
    assert_eq!(
        attributes[..4],
        ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"],
        "{line}"
    );
    let max_age: u64 = attributes[4]
        .strip_prefix("Max-Age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((12 * 3600 - 60..=12 * 3600).contains(&max_age), "{line}");
    assert!(!line.to_ascii_lowercase().contains("domain"), "{line}");
    let session = fx.session(&browser);
    assert_eq!(session.subject, "alice");
    assert_eq!(session.roles, ["dev"]);
    assert_eq!(session.email.as_deref(), Some("alice@example.com"));
    assert!(session.refresh_token.is_some() && session.id_token.is_some());

    // The upstream saw the landing request: identity in, our cookies out, the app's kept.
    let seen = fx.app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/app/page?x=1");
    assert_eq!(seen[0].header("x-user-id"), Some("alice"));
    assert_eq!(seen[0].header("x-user-roles"), Some("dev"));
    assert_eq!(seen[0].header("cookie"), Some("theme=dark"));

    // The next request rides on the session: the provider hears nothing.
    let response = browser.navigate("/app/other").await;
    assert_eq!(response.status(), 200);
    assert!(set_cookies(&response).is_empty(), "nothing to refresh");
    assert_eq!(fx.idp.authorizations().len(), 1);
    assert_eq!(fx.idp.code_exchanges(), 1);
    let seen = fx.last_seen();
    assert_eq!(seen.header("x-user-id"), Some("alice"));
    assert_eq!(seen.header("cookie"), Some("theme=dark"));
}

#[tokio::test]
async fn flow_cookies_never_reach_the_upstream() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    browser.set_cookie("theme", "dark");
    browser.set_cookie("z_app", "1");
    browser.until_callback("/app/x").await;
    assert_eq!(flow_cookies(&browser), 1);
    let response = browser.navigate("/public/page").await;
    assert_eq!(response.status(), 200);
    assert_eq!(fx.last_seen().header("cookie"), Some("theme=dark; z_app=1"));
    // Only our cookies: no Cookie header at all.
    let mut ours = fx.browser();
    ours.until_callback("/app/x").await;
    ours.navigate("/public/page").await;
    assert_eq!(fx.last_seen().header("cookie"), None);
}

#[tokio::test]
async fn scripts_and_images_get_401_and_only_navigations_are_redirected() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    let image = [
        ("accept", "image/avif,image/webp,*/*"),
        ("sec-fetch-mode", "no-cors"),
        ("sec-fetch-dest", "image"),
    ];
    let refused: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/app/data", FETCH.to_vec()),
        ("/app/data", vec![("accept", "application/json")]),
        (
            "/app/data",
            vec![
                ("accept", "text/html"),
                ("x-requested-with", "XMLHttpRequest"),
            ],
        ),
        (
            "/app/data",
            vec![("accept", "text/html"), ("sec-fetch-mode", "cors")],
        ),
        ("/app/data", vec![]),
        ("/app/favicon.ico", image.to_vec()),
        ("/api/items", FETCH.to_vec()),
        // `on_unauthenticated: deny`: even a navigation.
        ("/denied/page", NAVIGATION.to_vec()),
    ];
    for (path, headers) in &refused {
        let response = browser.send(browser.request(path, headers)).await;
        assert_401_json(&response, &format!("{path} {headers:?}"));
        assert!(set_cookies(&response).is_empty());
    }
    let redirected: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/app/data?q=1", NAVIGATION.to_vec()),
        // Older browsers send no Sec-Fetch-Mode.
        ("/app/data", vec![("accept", "text/html")]),
        ("/api/items", NAVIGATION.to_vec()),
        // `on_unauthenticated: redirect`: even a script.
        ("/forced/page", FETCH.to_vec()),
        ("/forced/page", NAVIGATION.to_vec()),
    ];
    for (path, headers) in &redirected {
        let response = browser.send(browser.request(path, headers)).await;
        assert_login_redirect(&response, path, &format!("{path} {headers:?}"));
    }
    // Only a navigation starts a login: a script cannot make flows.
    let response = browser
        .send(browser.request(&start_url("/app/x"), &FETCH))
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(flow_cookies(&browser), 0);
    assert!(fx.app.seen().is_empty());
    assert!(fx.idp.authorizations().is_empty());
}

/// `url` with its `state` parameter replaced by `change(state)`.
fn with_state(url: &oauth2::url::Url, change: impl Fn(&str) -> String) -> oauth2::url::Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                change(&v)
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut changed = url.clone();
    changed.query_pairs_mut().clear().extend_pairs(pairs);
    changed
}

/// Checks a login error page and that the browser has no session.
pub(super) fn assert_error_page(
    response: &Response<Bytes>,
    browser: &Browser,
    status: u16,
    text: &str,
) {
    let body = body_text(response);
    assert_eq!(response.status(), status, "{body}");
    assert!(content_type(response).starts_with("text/html"));
    assert!(body.contains(text), "expected `{text}` in {body}");
    assert!(body.contains("href=\"/oauth2/start?rd=%2F\""), "{body}");
    assert!(
        set_cookies(response)
            .iter()
            .all(|c| !c.starts_with(SESSION) || c.starts_with(FLOW)),
        "a session was set: {:?}",
        set_cookies(response)
    );
    assert!(session_cookies(browser).is_empty());
}

#[tokio::test]
async fn a_tampered_or_unknown_state_is_refused() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();

    // The state's secret part altered: not this browser's login.
    let callback = browser.until_callback("/app/x").await;
    let flip = |s: &str| {
        let last = if s.ends_with('0') { "1" } else { "0" };
        format!("{}{last}", &s[..s.len() - 1])
    };
    let response = browser.open(&with_state(&callback, flip)).await;
    assert_error_page(&response, &browser, 400, "not valid here");
    assert_eq!(flow_cookies(&browser), 0, "the flow is spent");
    // Nor does the untouched answer work after that.
    let response = browser.open(&callback).await;
    assert_error_page(&response, &browser, 400, "expired");

    // The flow cookie is gone (another browser, or it expired).
    let callback = browser.until_callback("/app/x").await;
    for (name, _) in browser.cookies_starting_with(FLOW) {
        browser.remove_cookie(&name);
    }
    let response = browser.open(&callback).await;
    assert_error_page(&response, &browser, 400, "This sign-in has expired");

    // Garbage and missing states.
    for state in ["", "x", "not.hex", "0123456789abcdeg.x"] {
        let response = browser.open(&with_state(&callback, |_| state.into())).await;
        assert_error_page(&response, &browser, 400, "not valid here");
    }
    assert_eq!(fx.idp.code_exchanges(), 0, "no code was ever exchanged");
    assert_401_json(&browser.fetch("/app/x").await, "after the failures");
    assert!(fx.app.seen().is_empty());
}

#[tokio::test]
async fn a_wrong_nonce_or_audience_in_the_id_token_is_rejected() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    fx.idp.wrong_nonce(true);
    let visit = browser.visit("/app/x").await;
    assert_eq!(visit.urls.last().unwrap().path(), "/oauth2/callback");
    assert_error_page(&visit.response, &browser, 502, "could not be completed");
    fx.idp.wrong_nonce(false);
    fx.idp.wrong_audience(true);
    let visit = browser.visit("/app/x").await;
    assert_error_page(&visit.response, &browser, 502, "could not be completed");
    assert_eq!(fx.idp.code_exchanges(), 2);
    assert_eq!(flow_cookies(&browser), 0);
    assert!(fx.app.seen().is_empty());
    // A correct answer works.
    fx.idp.wrong_audience(false);
    fx.login(&mut browser, "/app/x").await;
}

#[tokio::test]
async fn a_replayed_code_makes_no_new_session() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    let callback = browser.until_callback("/app/x").await;
    let (flow_name, flow) = browser.cookies_starting_with(FLOW).pop().unwrap();
    let visit = browser.visit(callback.as_str()).await;
    assert_eq!(visit.landed(), "/app/x");
    let session = session_value(&browser).unwrap();

    // The same answer again, with the flow cookie put back: the provider refuses the code.
    browser.set_cookie(&flow_name, &flow.value);
    let response = browser.open(&callback).await;
    assert_eq!(response.status(), 502, "{}", body_text(&response));
    assert!(body_text(&response).contains("could not be completed"));
    assert_eq!(
        set_cookies(&response),
        [format!(
            "{flow_name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
        )],
        "only the flow is cleared"
    );
    assert_eq!(fx.idp.code_exchanges(), 2);
    assert_eq!(
        session_value(&browser).unwrap(),
        session,
        "the session is untouched"
    );

    // Another browser replaying it has no flow: refused before the provider is asked.
    let mut other = fx.browser();
    let response = other.open(&callback).await;
    assert_error_page(&response, &other, 400, "expired");
    assert_eq!(fx.idp.code_exchanges(), 2);
}

#[tokio::test]
async fn a_code_from_another_login_fails_pkce() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    let first = browser.until_callback("/app/first").await;
    let second = browser.until_callback("/app/second").await;
    // The first login's code with the second login's state: the second flow's verifier does
    // not match the first code's challenge.
    let param = |url: &oauth2::url::Url, name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let mut injected = second.clone();
    injected
        .query_pairs_mut()
        .clear()
        .append_pair("code", &param(&first, "code"))
        .append_pair("state", &param(&second, "state"));
    let response = browser.open(&injected).await;
    assert_error_page(&response, &browser, 502, "could not be completed");
    assert_eq!(fx.idp.code_exchanges(), 1);
    // The provider spent the code: the first login cannot finish either.
    let response = browser.open(&first).await;
    assert_error_page(&response, &browser, 502, "could not be completed");
}

#[tokio::test]
async fn a_public_client_logs_in_with_pkce_alone() {
    let fx = Fixture::with(Options {
        public_client: true,
        ..Options::default()
    })
    .await;
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    assert_eq!(fx.last_seen().header("x-user-id"), Some("alice"));
}

#[tokio::test]
async fn provider_errors_show_an_error_page_without_a_session() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();

    // A token endpoint that answers 5xx is down: 503 (try again), as when it cannot be
    // reached, never 401 or the 502 of an answer that could not be verified.
    for status in [
        http::StatusCode::INTERNAL_SERVER_ERROR,
        http::StatusCode::SERVICE_UNAVAILABLE,
    ] {
        fx.idp.fail_token_endpoint(Some(status));
        let visit = browser.visit("/app/x").await;
        assert_eq!(visit.urls.len(), 4, "{:?}", visit.urls);
        assert_error_page(&visit.response, &browser, 503, "cannot be reached");
    }
    fx.idp.fail_token_endpoint(None);

    fx.idp.deny_authorization(Some("access_denied"));
    let visit = browser.visit("/app/x").await;
    assert_error_page(&visit.response, &browser, 403, "did not sign you in");
    assert_eq!(fx.idp.code_exchanges(), 2, "only the failed exchanges");
    assert_eq!(flow_cookies(&browser), 0);
    assert!(fx.app.seen().is_empty());

    fx.idp.deny_authorization(None);
    fx.login(&mut browser, "/app/x").await;
}

#[tokio::test]
async fn two_tabs_finishing_in_the_other_order_both_land() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    let first = browser.until_callback("/app/first").await;
    let second = browser.until_callback("/app/second?tab=2").await;
    assert_eq!(flow_cookies(&browser), 2);
    let visit = browser.visit(second.as_str()).await;
    assert_eq!(visit.landed(), "/app/second?tab=2");
    assert_eq!(visit.status(), 200);
    let visit = browser.visit(first.as_str()).await;
    assert_eq!(visit.landed(), "/app/first");
    assert_eq!(visit.status(), 200);
    assert_eq!(flow_cookies(&browser), 0);
    let uris: Vec<String> = fx.app.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(uris, ["/app/second?tab=2", "/app/first"]);
}

#[tokio::test]
async fn at_most_four_logins_are_kept_and_the_oldest_go_first() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    let mut callbacks = Vec::new();
    for i in 0..6 {
        callbacks.push(browser.until_callback(&format!("/app/{i}")).await);
        assert_eq!(
            flow_cookies(&browser),
            (i + 1).min(4),
            "after {} starts",
            i + 1
        );
    }
    // The four newest finish, newest first; the two oldest were dropped.
    for i in (2..6).rev() {
        let visit = browser.visit(callbacks[i].as_str()).await;
        assert_eq!(visit.landed(), format!("/app/{i}"), "login {i}");
    }
    for callback in &callbacks[..2] {
        let response = browser.open(callback).await;
        assert_eq!(response.status(), 400);
        assert!(body_text(&response).contains("expired"));
    }
    assert_eq!(flow_cookies(&browser), 0);
}

#[tokio::test]
async fn readiness_waits_for_the_provider_and_logins_wait_too() {
    let fx = Fixture::launch(Options {
        discovery_down: true,
        ..Options::default()
    })
    .await;
    let (status, body) = admin_get(fx.gh.admin_addr, "/readyz").await;
    assert_eq!(status, 503, "ready without the provider: {body}");
    assert!(body.contains("login provider"), "{body}");
    let mut browser = fx.browser();
    let response = browser.navigate(&start_url("/app/x")).await;
    assert_eq!(response.status(), 503);
    assert!(body_text(&response).contains("unavailable"));
    assert_eq!(flow_cookies(&browser), 0);

    fx.idp.discovery_down(false);
    fx.wait_ready().await;
    fx.login(&mut browser, "/app/x").await;
}
