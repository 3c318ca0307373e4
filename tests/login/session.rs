//! The session cookie over its life: tampering, expiry, secret rotation, chunking, refresh
//! (once, however many requests ask) and fixation.

use futures_util::future::join_all;
use http::StatusCode;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::*;

/// Checks that `browser`'s session is over: a navigation goes to the login, the cookies are
/// cleared, and a script then gets 401.
pub(super) async fn assert_signed_out(fx: &Fixture, browser: &mut Browser, what: &str) {
    let before = fx.app.seen().len();
    let names = session_cookies(browser);
    assert!(!names.is_empty(), "{what}: no session to end");
    let response = browser.navigate("/app/x").await;
    assert_login_redirect(&response, "/app/x", what);
    for name in names {
        let cleared = format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
        assert!(
            set_cookies(&response).contains(&cleared),
            "{what}: {name} not cleared: {:?}",
            set_cookies(&response)
        );
    }
    assert!(session_cookies(browser).is_empty(), "{what}");
    assert_401_json(&browser.fetch("/api/x").await, what);
    assert_eq!(fx.app.seen().len(), before, "{what}: reached the upstream");
}

#[tokio::test]
async fn a_tampered_session_cookie_counts_as_none() {
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    let sealed = session_value(&browser).unwrap();
    let swap = |c: u8| if c == b'A' { 'B' } else { 'A' };
    for at in [3, sealed.len() / 2, sealed.len() - 1] {
        let mut tampered = sealed.clone().into_bytes();
        tampered[at] = swap(tampered[at]) as u8;
        let tampered = String::from_utf8(tampered).unwrap();
        browser.set_cookie(SESSION, &tampered);
        assert_signed_out(&fx, &mut browser, &format!("byte {at} flipped")).await;
        // A script with the tampered cookie gets 401, not a redirect.
        browser.set_cookie(SESSION, &tampered);
        assert_401_json(&browser.fetch("/app/x").await, "fetch");
    }
    // A flow cookie is sealed for its own name: it does not open as a session.
    browser.until_callback("/app/x").await;
    let (_, flow) = browser.cookies_starting_with(FLOW).pop().unwrap();
    browser.set_cookie(SESSION, &flow.value);
    assert_signed_out(&fx, &mut browser, "a flow cookie as the session").await;
    // The untouched cookie still works.
    browser.set_cookie(SESSION, &sealed);
    assert_eq!(browser.navigate("/app/x").await.status(), 200);
}

#[tokio::test]
async fn an_expired_session_sends_the_browser_to_log_in_again() {
    let fx = Fixture::with(Options {
        session: vec!["lifetime: 3s".into()],
        ..Options::default()
    })
    .await;
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    let line = &browser.cookie(SESSION).unwrap().line;
    let max_age: u64 = line.rsplit("Max-Age=").next().unwrap().parse().unwrap();
    assert!(max_age <= 3, "{line}");
    let session = fx.session(&browser);
    assert!(session.ends <= now() + 3);
    // The jar keeps the cookie past its Max-Age: Gatehouse itself must refuse it.
    wait_until(session.ends).await;
    assert_signed_out(&fx, &mut browser, "expired").await;
    assert_eq!(
        fx.idp.refreshes(),
        0,
        "the end of a session is not refreshed away"
    );
    fx.login(&mut browser, "/app/x").await;
    assert_eq!(fx.idp.authorizations().len(), 2);
}

#[tokio::test]
async fn sessions_survive_a_secret_rotation_and_new_ones_use_the_new_secret() {
    let mut fx = Fixture::start().await;
    let mut old = fx.browser();
    fx.login(&mut old, "/app/x").await;
    assert!(fx.session_with(&old, &["a"]).is_some());

    // Rotate: B seals, A still opens.
    fx.restart(&["b", "a"]).await;
    old.gatehouse = fx.client();
    let response = old.navigate("/app/still").await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(fx.last_seen().header("x-user-id"), Some("alice"));
    assert_eq!(fx.idp.authorizations().len(), 1, "no new login");

    let mut new = fx.browser();
    fx.login(&mut new, "/app/y").await;
    assert!(fx.session_with(&new, &["a"]).is_none(), "sealed with A");
    assert!(fx.session_with(&new, &["b"]).is_some(), "not sealed with B");

    // Back to A alone: the new session does not open, the old one does.
    fx.restart(&["a"]).await;
    new.gatehouse = fx.client();
    old.gatehouse = fx.client();
    assert_signed_out(&fx, &mut new, "sealed with B, opened with A only").await;
    assert_eq!(old.navigate("/app/still").await.status(), 200);
}

#[tokio::test]
async fn a_large_session_is_split_into_chunks_under_4096_bytes() {
    let fx = Fixture::start().await;
    let roles: Vec<String> = (0..150).map(|i| format!("team-{i:03}-reader")).collect();
    let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
    fx.idp.set_user(User::new("carol", &role_refs));
    let mut browser = fx.browser();
    // Landing on the page is the first request that uses the chunked session.
    fx.login(&mut browser, "/app/big").await;
    let names = session_cookies(&browser);
    assert!(names.len() >= 2, "{names:?}");
    let expected: Vec<String> = (0..names.len()).map(|i| format!("{SESSION}_{i}")).collect();
    assert_eq!(names, expected, "chunks only, no unchunked cookie");
    for line in browser
        .set_cookie_log
        .iter()
        .filter(|l| l.starts_with(SESSION))
    {
        assert!(line.len() < 4096, "{} bytes: {}", line.len(), &line[..40]);
        assert!(line.contains("; Path=/; Secure; HttpOnly; SameSite=Lax;"));
    }
    assert_eq!(fx.session(&browser).roles, roles);
    let seen = fx.last_seen();
    assert_eq!(seen.header("x-user-id"), Some("carol"));
    assert_eq!(seen.header("x-user-roles"), Some(roles.join(",").as_str()));
    assert_eq!(browser.navigate("/app/again").await.status(), 200);
    assert_eq!(
        fx.last_seen().header("cookie"),
        None,
        "no chunk went upstream"
    );

    // Signing in again with a small session replaces every chunk with one cookie.
    fx.idp.set_user(User::new("carol", &["dev"]));
    let visit = browser.visit(&start_url("/app/small")).await;
    assert_eq!(visit.landed(), "/app/small");
    assert_eq!(session_cookies(&browser), [SESSION]);
    assert_eq!(fx.last_seen().header("x-user-roles"), Some("dev"));

    // A chunk missing or out of place: no session.
    fx.idp.set_user(User::new("carol", &role_refs));
    browser.visit(&start_url("/app/big")).await;
    assert!(session_cookies(&browser).len() >= 2);
    let last = session_cookies(&browser).pop().unwrap();
    let saved = browser.cookie(&last).unwrap().value.clone();
    browser.remove_cookie(&last);
    assert_signed_out(&fx, &mut browser, "a chunk missing").await;
    browser.set_cookie(&last, &saved);
    assert_eq!(
        browser.fetch("/app/x").await.status(),
        401,
        "only the last chunk"
    );
}

/// An HTTP/2 connection to Gatehouse, for concurrent streams.
pub(super) async fn h2_sender(client: &Client) -> SendRequest<BoxBody> {
    let config = client_config(&client.ca, &[b"h2"]);
    let tls = tls_connect(client.addr, &client.server_name, config)
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
async fn concurrent_requests_with_an_expired_token_refresh_once() {
    let fx = Fixture::start().await;
    fx.idp.set_expires_in(Some(1));
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    // The landing request may already have refreshed: start from whatever the jar holds.
    let before = fx.session(&browser);
    wait_until(before.expires).await;
    let refreshes = fx.idp.refreshes();
    let seen = fx.app.seen().len();

    // Twenty streams on one HTTP/2 connection, sent at once. The provider holds the refresh
    // until it has arrived, so the other requests pile up behind it.
    const REQUESTS: usize = 20;
    let sender = h2_sender(&browser.gatehouse).await;
    let cookie = browser.cookie_header().unwrap();
    fx.idp.hold_refreshes();
    let burst = tokio::spawn(join_all((0..REQUESTS).map(move |i| {
        let mut sender = sender.clone();
        let mut request = http::Request::get(format!("https://localhost/app/burst/{i}"))
            .header("cookie", cookie.as_str());
        for (name, value) in FETCH {
            request = request.header(name, value);
        }
        let request = request.body(empty()).unwrap();
        async move { collect(sender.send_request(request).await.unwrap()).await }
    })));
    let idp = &fx.idp;
    eventually("the refresh reaches the provider", WAIT, || {
        let asked = idp.refreshes() > refreshes;
        async move { asked }
    })
    .await;
    idp.release_refreshes();
    let responses = tokio::time::timeout(WAIT, burst).await.unwrap().unwrap();
    assert_eq!(fx.idp.refreshes(), refreshes + 1, "exactly one refresh");
    let sealer = fx.sealer(&["a"]);
    let mut refreshed = Vec::new();
    for response in &responses {
        assert_eq!(response.status(), 200, "{}", body_text(response));
        let cookies = set_cookies(response);
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let value = cookies[0]
            .strip_prefix(&format!("{SESSION}="))
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        refreshed.push(sealer.open::<SessionData>(SESSION, value).unwrap());
    }
    let after = &refreshed[0];
    assert!(refreshed.iter().all(|s| s == after), "one refresh result");
    assert_eq!(after.id, before.id, "the same session");
    assert_ne!(after.refresh_token, before.refresh_token, "rotated");
    assert!(after.expires > before.expires);
    let burst = &fx.app.seen()[seen..];
    assert_eq!(burst.len(), REQUESTS);
    assert!(burst.iter().all(|s| s.header("x-user-id") == Some("alice")));
    browser.apply(&responses[0]);

    // The provider revokes the refresh token: at the next expiry the session ends cleanly.
    fx.idp.revoke_refresh_tokens();
    wait_until(fx.session(&browser).expires).await;
    let refreshes = fx.idp.refreshes();
    assert_signed_out(&fx, &mut browser, "the refresh was refused").await;
    assert_eq!(fx.idp.refreshes(), refreshes + 1);
}

#[tokio::test]
async fn logging_in_over_a_planted_session_makes_a_new_one() {
    let fx = Fixture::start().await;
    fx.idp.set_user(User::new("mallory", &["admin"]));
    let mut attacker = fx.browser();
    fx.login(&mut attacker, "/app/mine").await;
    let planted = session_value(&attacker).unwrap();
    let mallory = fx.session(&attacker);

    fx.idp.set_user(User::new("alice", &["dev"]));
    let mut victim = fx.browser();
    victim.set_cookie(SESSION, &planted);
    let visit = victim.visit(&start_url("/app/home")).await;
    assert_eq!(visit.landed(), "/app/home");
    assert_eq!(visit.status(), 200);
    assert_ne!(session_value(&victim).unwrap(), planted);
    let session = fx.session(&victim);
    assert_ne!(session.id, mallory.id, "a new session id");
    assert_eq!(session.subject, "alice");
    let seen = fx.last_seen();
    assert_eq!(seen.header("x-user-id"), Some("alice"));
    assert_eq!(seen.header("x-user-roles"), Some("dev"));
    // The attacker's own session is still the attacker's, not the victim's.
    assert_eq!(attacker.navigate("/app/mine").await.status(), 200);
    assert_eq!(fx.last_seen().header("x-user-id"), Some("mallory"));
}

#[tokio::test]
async fn a_provider_that_is_down_at_refresh_keeps_the_cookie_session() {
    let fx = Fixture::start().await;
    fx.idp.set_expires_in(Some(1));
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    wait_until(fx.session(&browser).expires + 1).await;
    let refreshes = fx.idp.refreshes();
    fx.idp
        .fail_token_endpoint(Some(http::StatusCode::BAD_GATEWAY));
    let response = browser.navigate("/app/while-down").await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert!(
        set_cookies(&response).is_empty(),
        "nothing cleared, nothing new"
    );
    assert_eq!(fx.last_seen().header("x-user-id"), Some("alice"));
    assert_eq!(fx.idp.refreshes(), refreshes + 1, "tried once");
    // Until the retry, requests are served without asking the provider again.
    assert_eq!(browser.fetch("/app/again").await.status(), 200);
    assert_eq!(fx.idp.refreshes(), refreshes + 1);
}

#[tokio::test]
async fn secrets_rotate_without_a_restart() {
    let fx = Fixture::with(Options {
        secrets: vec!["a", "b"],
        ..Options::default()
    })
    .await;
    let mut old = fx.browser();
    fx.login(&mut old, "/app/x").await;
    let dir = fx.pki.dir.path();
    let first = std::fs::read_to_string(dir.join("secret-a")).unwrap();
    assert!(fx.session_with(&old, &["a"]).is_some());

    // The operator moves the current secret to the second file and writes a new first one;
    // the provider's client secret rotates too. Nothing restarts.
    std::fs::write(dir.join("secret-b"), &first).unwrap();
    std::fs::write(
        dir.join("secret-a"),
        format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
    )
    .unwrap();
    let rotated = "the client secret after rotation";
    fx.idp.set_client_secret(rotated);
    std::fs::write(dir.join("client-secret"), rotated).unwrap();

    // New logins soon seal with the new secret and authenticate with the new client secret.
    let fx = &fx;
    eventually(
        "new sessions are sealed with the new secret",
        WAIT,
        || async move {
            let mut new = fx.browser();
            let visit = new.visit("/app/y").await;
            visit.status() == 200 && fx.session_with(&new, &["a"]).is_some()
        },
    )
    .await;
    // The session sealed before still opens (with the second secret), without a new login.
    let logins = fx.idp.code_exchanges();
    assert_eq!(old.navigate("/app/still").await.status(), 200);
    assert_eq!(fx.idp.code_exchanges(), logins);
    assert!(fx.session_with(&old, &["a"]).is_none() && fx.session_with(&old, &["b"]).is_some());
}

#[tokio::test]
async fn a_secret_file_removed_or_broken_keeps_the_last_good_secret_and_counts_an_error() {
    const ERRORS: &str = "gatehouse_reloads_total{kind=\"secrets\",result=\"error\"}";
    let fx = Fixture::start().await;
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    let path = fx.pki.dir.path().join("secret-a");
    let good = std::fs::read_to_string(&path).unwrap();
    let admin = fx.gh.admin_addr;
    let mut errors = metric(admin, ERRORS).await;
    // Removed, then back as a secret too short to seal with: each a failed reload.
    for broken in [None, Some("short")] {
        match broken {
            None => std::fs::remove_file(&path).unwrap(),
            Some(text) => std::fs::write(&path, text).unwrap(),
        }
        let before = errors;
        eventually("the failed reload is counted", WAIT, || async move {
            metric(admin, ERRORS).await > before
        })
        .await;
        errors = metric(admin, ERRORS).await;
        // The last good secret still opens the session and seals new ones.
        assert_eq!(browser.fetch("/app/still").await.status(), 200);
        let mut new = fx.browser();
        fx.login(&mut new, "/app/new").await;
        std::fs::write(&path, &good).unwrap();
        assert!(
            fx.session_with(&new, &["a"]).is_some(),
            "sealed with the good secret"
        );
    }
}

#[tokio::test]
async fn a_removed_secret_ends_its_sessions_even_just_after_they_were_used() {
    let fx = Fixture::with(Options {
        secrets: vec!["a"],
        ..Options::default()
    })
    .await;
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    // Used again and again: the opened session is remembered.
    for _ in 0..3 {
        assert_eq!(browser.fetch("/app/again").await.status(), 200);
    }
    // The operator replaces the only secret (say it leaked): that session must not open any
    // more, whatever was remembered.
    std::fs::write(
        fx.pki.dir.path().join("secret-a"),
        format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
    )
    .unwrap();
    let cookie = browser.cookie(SESSION).unwrap().value.clone();
    let fx = &fx;
    eventually("the old session is refused", WAIT, || {
        let cookie = cookie.clone();
        async move {
            let mut copy = fx.browser();
            copy.set_cookie(SESSION, &cookie);
            copy.fetch("/app/after").await.status() == 401
        }
    })
    .await;
    assert_eq!(browser.fetch("/app/after").await.status(), 401);
}

/// One request with `cookie` on `sender`'s connection; the status and the user the app saw.
async fn on_connection(
    fx: &Fixture,
    sender: &mut SendRequest<BoxBody>,
    cookie: &str,
) -> (StatusCode, Option<String>) {
    let seen = fx.app.seen().len();
    let mut request = http::Request::get("https://localhost/app/kept").header("cookie", cookie);
    for (name, value) in FETCH {
        request = request.header(name, value);
    }
    let response = collect(
        sender
            .send_request(request.body(empty()).unwrap())
            .await
            .unwrap(),
    )
    .await;
    let user = (fx.app.seen().len() > seen)
        .then(|| fx.last_seen().header("x-user-id").map(str::to_owned))
        .flatten();
    (response.status(), user)
}

/// A connection remembers the session it last opened (a keep-alive browser sends the same
/// cookie every time); behind a front proxy one connection carries many users' cookies, and
/// a removed secret must end a session on a connection that just used it.
#[tokio::test]
async fn one_connection_tells_sessions_apart_and_forgets_them_with_their_secret() {
    let fx = Fixture::with(Options {
        secrets: vec!["a"],
        ..Options::default()
    })
    .await;
    let mut alice = fx.browser();
    fx.login(&mut alice, "/app/x").await;
    fx.idp.set_user(User::new("bob", &["reader"]));
    let mut bob = fx.browser();
    fx.login(&mut bob, "/app/x").await;
    let (alice, bob) = (alice.cookie_header().unwrap(), bob.cookie_header().unwrap());

    let mut sender = h2_sender(&fx.client()).await;
    for cookie in [&alice, &alice, &bob, &bob, &alice, &bob] {
        let want = if cookie == &alice { "alice" } else { "bob" };
        let (status, user) = on_connection(&fx, &mut sender, cookie).await;
        assert_eq!((status, user.as_deref()), (StatusCode::OK, Some(want)));
    }
    // One character changed, the remembered cookie is refused.
    let mut altered = alice.clone().into_bytes();
    let at = altered.len() - 10;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert_eq!(
        on_connection(&fx, &mut sender, &altered).await,
        (StatusCode::UNAUTHORIZED, None)
    );

    // The only secret is replaced: the same connection, with the cookie it just used, is
    // refused once the new secret is read.
    assert_eq!(
        on_connection(&fx, &mut sender, &alice).await.0,
        StatusCode::OK
    );
    std::fs::write(
        fx.pki.dir.path().join("secret-a"),
        format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
    )
    .unwrap();
    let (fx, alice) = (&fx, &alice);
    eventually("the remembered session is refused", WAIT, || {
        let mut sender = sender.clone();
        async move { on_connection(fx, &mut sender, alice).await.0 == StatusCode::UNAUTHORIZED }
    })
    .await;
}
