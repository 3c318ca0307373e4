//! Sessions in a real Redis (`redis-server` from Debian, started here on a free port), shared
//! by two Gatehouse replicas: the ticket cookie, sign-out and back-channel logout that end a
//! session everywhere, one refresh across replicas, Redis trouble as 503 (never a sign-out),
//! passwords, TLS, and credentials that rotate without a restart.

use futures_util::future::join_all;
use serde_json::json;

use super::session::{assert_signed_out, h2_sender};
use super::*;
use common::redis_server::{RedisOptions, RedisServer};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Redis, a fixture whose sessions live in it, and a second replica sharing it.
struct Replicated {
    redis: RedisServer,
    fx: Fixture,
    b: Running,
}

impl Replicated {
    async fn start(redis: RedisServer, mut options: Options) -> Self {
        options.session.push("store: redis".into());
        options
            .session
            .push(format!("redis: {{ url: {}, timeout: 300ms }}", redis.url()));
        Self::with_session_lines(redis, options).await
    }

    async fn with_session_lines(redis: RedisServer, options: Options) -> Self {
        let fx = Fixture::with(options).await;
        let text = config(&fx.pki, &fx.app, &fx.idp, &fx.options, &fx.options.secrets);
        let b = start(&text).await;
        wait_ready(&b, WAIT).await;
        Self { redis, fx, b }
    }

    /// A browser on replica B holding the same cookies as `on_a`.
    fn browser_on_b(&self, on_a: &Browser) -> Browser {
        let client = Client::new(self.b.https_addr.unwrap(), &self.fx.pki.paths.ca_cert);
        let mut browser = Browser::new(client, self.fx.idp.addr);
        browser.set_cookie(SESSION, &on_a.cookie(SESSION).unwrap().value);
        browser
    }
}

fn plain() -> RedisServer {
    RedisServer::start(RedisOptions::default())
}

fn is_ticket(value: &str) -> bool {
    let hex32 = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    value
        .split_once('.')
        .is_some_and(|(a, b)| hex32(a) && hex32(b))
}

#[tokio::test]
async fn the_cookie_is_a_ticket_and_redis_holds_nothing_readable() {
    let r = Replicated::start(
        plain(),
        Options {
            login: vec!["pass_access_token: true".into()],
            ..Options::default()
        },
    )
    .await;
    let mut browser = r.fx.browser();
    r.fx.login(&mut browser, "/app/x").await;
    let cookie = browser.cookie(SESSION).unwrap().value.clone();
    assert!(is_ticket(&cookie), "{cookie}");
    assert!(session_cookies(&browser) == [SESSION], "no chunks");
    let access_token = r.fx.idp.access_tokens().pop().unwrap();
    assert_eq!(
        r.fx.last_seen().header("x-forwarded-access-token"),
        Some(access_token.as_str())
    );

    let snapshot = r.redis.snapshot();
    let (id, key) = cookie.split_once('.').unwrap();
    let names: Vec<&str> = snapshot.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.contains(&format!("gatehouse:session:{id}").as_str()),
        "{names:?}"
    );
    assert_eq!(
        names.len(),
        3,
        "the session and its two index sets: {names:?}"
    );
    for (name, values) in &snapshot {
        for text in std::iter::once(name.as_bytes()).chain(values.iter().map(Vec::as_slice)) {
            let text = String::from_utf8_lossy(text);
            for secret in [
                "alice",
                "sid-of-alice",
                access_token.as_str(),
                key,
                "refresh",
                "eyJ",
            ] {
                assert!(!text.contains(secret), "{name} holds {secret:?}: {text}");
            }
        }
    }
    // Redis forgets the session when it ends.
    let mut connection = r.redis.connection();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("gatehouse:session:{id}"))
        .query(&mut connection)
        .unwrap();
    assert!(ttl > 0 && ttl <= 12 * 3600 * 1000, "{ttl}");
}

#[tokio::test]
async fn the_cookie_works_on_every_replica_and_sign_out_on_one_ends_it_on_all() {
    let r = Replicated::start(plain(), Options::default()).await;
    let mut on_a = r.fx.browser();
    r.fx.login(&mut on_a, "/app/x").await;
    let copied = on_a.cookie(SESSION).unwrap().value.clone();
    let mut on_b = r.browser_on_b(&on_a);
    let response = on_b.fetch("/oauth2/userinfo").await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(json_body(&response)["user"], "alice");
    assert_eq!(on_b.navigate("/app/on-b").await.status(), 200);
    assert_eq!(r.fx.last_seen().header("x-user-id"), Some("alice"));

    // Sign out on B: the entry is deleted, the copy on A is worthless at once.
    let response = on_b.navigate("/oauth2/sign_out").await;
    assert_eq!(response.status(), 302);
    assert!(
        !r.redis
            .keys()
            .iter()
            .any(|k| k.starts_with("gatehouse:session:")),
        "{:?}",
        r.redis.keys()
    );
    on_a.set_cookie(SESSION, &copied);
    assert_eq!(on_a.fetch("/oauth2/userinfo").await.status(), 401);
    on_a.set_cookie(SESSION, &copied);
    assert_signed_out(&r.fx, &mut on_a, "signed out on the other replica").await;
}

#[tokio::test]
async fn expired_requests_spread_over_two_replicas_refresh_once() {
    let r = Replicated::start(plain(), Options::default()).await;
    r.fx.idp.set_expires_in(Some(1));
    let mut on_a = r.fx.browser();
    r.fx.login(&mut on_a, "/app/x").await;
    let on_b = r.browser_on_b(&on_a);
    // Let the tokens expire (1 s), then send twenty requests at once, ten to each replica.
    let until = now() + 2;
    wait_until(until).await;
    let refreshes = r.fx.idp.refreshes();
    let seen = r.fx.app.seen().len();
    r.fx.idp.hold_refreshes();
    let cookie = on_a.cookie_header().unwrap();
    let senders = [
        h2_sender(&on_a.gatehouse).await,
        h2_sender(&on_b.gatehouse).await,
    ];
    let burst = tokio::spawn(join_all((0..20).map(move |i| {
        let mut sender = senders[i % 2].clone();
        let mut request = http::Request::get(format!("https://localhost/app/burst/{i}"))
            .header("cookie", cookie.as_str());
        for (name, value) in FETCH {
            request = request.header(name, value);
        }
        let request = request.body(empty()).unwrap();
        async move { collect(sender.send_request(request).await.unwrap()).await }
    })));
    let idp = &r.fx.idp;
    eventually("the refresh reaches the provider", WAIT, || {
        let asked = idp.refreshes() > refreshes;
        async move { asked }
    })
    .await;
    idp.release_refreshes();
    let responses = tokio::time::timeout(WAIT, burst).await.unwrap().unwrap();
    assert_eq!(r.fx.idp.refreshes(), refreshes + 1, "exactly one refresh");
    for response in &responses {
        assert_eq!(response.status(), 200, "{}", body_text(response));
        assert!(
            set_cookies(response).is_empty(),
            "the ticket does not change"
        );
    }
    let burst = &r.fx.app.seen()[seen..];
    assert_eq!(burst.len(), 20);
    assert!(burst.iter().all(|s| s.header("x-user-id") == Some("alice")));
    // A late request with the same cookie gets the refreshed session, not a second refresh
    // with the spent refresh token (the provider rotates them: that would end the session).
    let mut on_b = r.browser_on_b(&on_a);
    assert_eq!(on_b.fetch("/app/late").await.status(), 200);
    assert_eq!(on_a.fetch("/app/late").await.status(), 200);
    assert_eq!(r.fx.idp.refreshes(), refreshes + 1);
}

#[tokio::test]
async fn a_provider_that_is_down_at_refresh_keeps_the_session_and_invalid_grant_ends_it() {
    let r = Replicated::start(plain(), Options::default()).await;
    r.fx.idp.set_expires_in(Some(1));
    let mut browser = r.fx.browser();
    r.fx.login(&mut browser, "/app/x").await;
    wait_until(now() + 2).await;
    r.fx.idp
        .fail_token_endpoint(Some(http::StatusCode::SERVICE_UNAVAILABLE));
    let response = browser.navigate("/app/while-down").await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert!(set_cookies(&response).is_empty());
    assert_eq!(r.fx.last_seen().header("x-user-id"), Some("alice"));
    assert!(r.fx.idp.refreshes() >= 1, "a refresh was tried");

    // The provider says the refresh token is no good: that ends the session, in Redis too.
    r.fx.idp.fail_token_endpoint(None);
    r.fx.idp.revoke_refresh_tokens();
    let mut later = r.browser_on_b(&browser);
    assert_signed_out(&r.fx, &mut later, "invalid_grant").await;
    assert!(
        !r.redis
            .keys()
            .iter()
            .any(|k| k.starts_with("gatehouse:session:"))
    );
}

/// A logout token as the provider signs it, with `edit` applied.
fn logout_token(fx: &Fixture, edit: impl FnOnce(&mut Value)) -> String {
    let now = now();
    let mut claims = json!({
        "iss": fx.idp.issuer(), "aud": CLIENT_ID, "iat": now, "exp": now + 120,
        "jti": uuid::Uuid::new_v4().to_string(), "sid": "sid-of-alice",
        "events": { EVENT: {} },
    });
    edit(&mut claims);
    fx.idp.sign(&claims)
}

async fn post_logout(client: &Client, form: &str) -> Response<Bytes> {
    let request = http::Request::post("https://localhost/oauth2/backchannel_logout")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(form.to_owned()))
        .unwrap();
    client.h1(request).await
}

#[tokio::test]
async fn back_channel_logout_ends_the_sessions_of_a_sid_or_a_sub_on_every_replica() {
    let r = Replicated::start(plain(), Options::default()).await;
    let b = Client::new(r.b.https_addr.unwrap(), &r.fx.pki.paths.ca_cert);
    let mut first = r.fx.browser();
    r.fx.login(&mut first, "/app/x").await;
    let mut second = r.fx.browser();
    let mut other = User::new("alice", &["dev"]);
    other.sid = Some("another-sid".into());
    r.fx.idp.set_user(other);
    r.fx.login(&mut second, "/app/x").await;
    let before = r.redis.snapshot();

    // Refused tokens change nothing.
    let refused: Vec<(&str, String)> = vec![
        ("no form field", "token=x".to_owned()),
        ("not a JWT", "logout_token=abc".to_owned()),
        (
            "wrong audience",
            logout_token(&r.fx, |c| c["aud"] = json!("someone-else")),
        ),
        ("a nonce", logout_token(&r.fx, |c| c["nonce"] = json!("n"))),
        (
            "no events",
            logout_token(&r.fx, |c| drop(c.as_object_mut().unwrap().remove("events"))),
        ),
        (
            "no sid or sub",
            logout_token(&r.fx, |c| drop(c.as_object_mut().unwrap().remove("sid"))),
        ),
        (
            "no iat",
            logout_token(&r.fx, |c| drop(c.as_object_mut().unwrap().remove("iat"))),
        ),
        (
            "expired",
            logout_token(&r.fx, |c| c["exp"] = json!(now() - 3600)),
        ),
        (
            "another issuer",
            logout_token(&r.fx, |c| c["iss"] = json!("https://evil.example")),
        ),
    ];
    for (what, form) in &refused {
        let form = if form.starts_with("logout_token=") || form.starts_with("token=") {
            form.clone()
        } else {
            format!("logout_token={form}")
        };
        let response = post_logout(&b, &form).await;
        assert_eq!(response.status(), 400, "{what}: {}", body_text(&response));
        assert_eq!(json_body(&response)["error"], "invalid_request", "{what}");
    }
    let mut forged = logout_token(&r.fx, |_| {}).into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(
        post_logout(&b, &format!("logout_token={forged}"))
            .await
            .status(),
        400
    );
    assert_eq!(r.redis.snapshot(), before, "refusals change nothing");
    let get = client_get(&b, "/oauth2/backchannel_logout").await;
    assert_eq!(get.status(), 405);

    // By sid, sent to replica B: the first browser's session ends on A; the second stays.
    let token = logout_token(&r.fx, |_| {});
    let response = post_logout(&b, &format!("logout_token={token}")).await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_signed_out(&r.fx, &mut first, "back-channel logout by sid").await;
    assert_eq!(second.fetch("/app/still").await.status(), 200);
    // The same token again is a replay.
    let replay = post_logout(&b, &format!("logout_token={token}")).await;
    assert_eq!(replay.status(), 400);

    // By sub: every session of alice ends.
    let token = logout_token(&r.fx, |c| {
        c.as_object_mut().unwrap().remove("sid");
        c["sub"] = json!("alice");
    });
    assert_eq!(
        post_logout(&b, &format!("logout_token={token}"))
            .await
            .status(),
        200
    );
    assert_signed_out(&r.fx, &mut second, "back-channel logout by sub").await;
}

async fn client_get(client: &Client, path: &str) -> Response<Bytes> {
    client.h1(get(path)).await
}

#[tokio::test]
async fn redis_trouble_is_503_never_a_sign_out_and_service_resumes() {
    let r = Replicated::start(
        plain(),
        Options {
            bearer_audience: Some("api"),
            ..Options::default()
        },
    )
    .await;
    let mut browser = r.fx.browser();
    r.fx.login(&mut browser, "/app/x").await;
    let cookie = browser.cookie(SESSION).unwrap().value.clone();
    let now = now();
    let bearer = r.fx.idp.sign(&json!({
        "iss": r.fx.idp.issuer(), "aud": "api", "sub": "robot", "iat": now, "exp": now + 300,
    }));
    let client = r.fx.client();
    let with_bearer = || {
        http::Request::get("https://localhost/api/x")
            .header("authorization", format!("Bearer {bearer}"))
            .body(empty())
            .unwrap()
    };
    let admin = r.fx.gh.admin_addr;

    for (fault, what) in [("freeze", "Redis hangs"), ("stop", "Redis is down")] {
        match fault {
            "freeze" => r.redis.freeze(),
            _ => r.redis.stop(),
        }
        let seen = r.fx.app.seen().len();
        let page = browser.navigate("/app/x").await;
        assert_eq!(page.status(), 503, "{what}: {}", body_text(&page));
        assert!(content_type(&page).starts_with("text/html"), "{what}");
        assert!(location(&page).is_none(), "{what}: no login redirect");
        assert!(set_cookies(&page).is_empty(), "{what}: the cookie stays");
        assert!(page.headers().contains_key("retry-after"), "{what}");
        let api = browser.fetch("/app/x").await;
        assert_eq!(api.status(), 503, "{what}");
        assert_eq!(
            json_body(&api)["error"],
            "session_store_unavailable",
            "{what}"
        );
        assert!(!api.headers().contains_key("www-authenticate"), "{what}");
        // Signing out now would only look like it worked: refused, cookie kept.
        let out = browser.navigate("/oauth2/sign_out").await;
        assert_eq!(out.status(), 503, "{what}");
        assert!(set_cookies(&out).is_empty(), "{what}");
        assert_eq!(browser.cookie(SESSION).unwrap().value, cookie, "{what}");
        assert_eq!(
            r.fx.app.seen().len(),
            seen,
            "{what}: nothing reached the app"
        );
        // Bearer routes do not need Redis.
        assert_eq!(client.h1(with_bearer()).await.status(), 200, "{what}");
        eventually("/readyz reports Redis", WAIT, || async move {
            let (status, body) = admin_get(admin, "/readyz").await;
            status == 503 && body.contains("redis")
        })
        .await;

        match fault {
            "freeze" => r.redis.thaw(),
            _ => r.redis.restart(),
        }
        eventually("service resumes by itself", WAIT, || {
            let request = browser.request("/app/back", &FETCH);
            let client = r.fx.client();
            async move { client.h1(request).await.status() == 200 }
        })
        .await;
        eventually("ready again", WAIT, || async move {
            admin_get(admin, "/readyz").await.0 == 200
        })
        .await;
        assert_eq!(
            r.fx.last_seen().header("x-user-id"),
            Some("alice"),
            "{what}"
        );
    }
    let metrics = admin_get(admin, "/metrics").await.1;
    assert!(metrics.contains("gatehouse_redis_calls_total{command=\"GET\",result=\"ok\"}"));
    assert!(metrics.contains("result=\"timeout\"") || metrics.contains("result=\"error\""));
    assert!(metrics.contains("gatehouse_redis_call_duration_seconds_bucket"));
}

#[tokio::test]
async fn a_tampered_ticket_is_401_and_changes_nothing_in_redis() {
    let r = Replicated::start(plain(), Options::default()).await;
    let mut browser = r.fx.browser();
    r.fx.login(&mut browser, "/app/x").await;
    let cookie = browser.cookie(SESSION).unwrap().value.clone();
    let before = r.redis.snapshot();
    let (id, key) = cookie.split_once('.').unwrap();
    let flip = |s: &str, at: usize| {
        let mut bytes = s.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        String::from_utf8(bytes).unwrap()
    };
    for tampered in [
        format!("{id}.{}", flip(key, 0)),
        format!("{id}.{}", flip(key, 31)),
        format!("{}.{key}", flip(id, 5)),
        format!("{id}.{key}0"),
        id.to_owned(),
        format!("{id}.{}", key.to_uppercase()),
        "v1.not-a-ticket".to_owned(),
    ] {
        browser.set_cookie(SESSION, &tampered);
        let response = browser.fetch("/app/x").await;
        assert_401_json(&response, &tampered);
        browser.set_cookie(SESSION, &tampered);
        assert_signed_out(&r.fx, &mut browser, &tampered).await;
        assert_eq!(r.redis.snapshot(), before, "{tampered}");
    }
    browser.set_cookie(SESSION, &cookie);
    assert_eq!(browser.navigate("/app/x").await.status(), 200);
}

#[tokio::test]
async fn sessions_keep_the_id_token_claims_for_policies() {
    let r = Replicated::start(plain(), Options::default()).await;
    let mut member = User::new("alice", &["dev"]);
    member.extra.insert("org".into(), json!("acme"));
    r.fx.idp.set_user(member);
    let mut browser = r.fx.browser();
    r.fx.login(&mut browser, "/claims/x").await;
    let mut outsider = r.fx.browser();
    let mut other = User::new("bob", &["dev"]);
    other.extra.insert("org".into(), json!("globex"));
    r.fx.idp.set_user(other);
    let visit = outsider.visit("/claims/x").await;
    assert_eq!(visit.landed(), "/claims/x");
    assert_eq!(visit.status(), 403, "{}", visit.body());
    // And the member still passes.
    assert_eq!(browser.navigate("/claims/x").await.status(), 200);
}

#[tokio::test]
async fn the_access_token_reaches_the_app_only_as_configured_and_client_copies_never() {
    let r = Replicated::start(
        plain(),
        Options {
            login: vec!["set_authorization: true".into()],
            ..Options::default()
        },
    )
    .await;
    let mut browser = r.fx.browser();
    r.fx.login(&mut browser, "/app/x").await;
    let token = r.fx.idp.access_tokens().pop().unwrap();
    let request = browser.request(
        "/app/y",
        &[
            ("x-forwarded-access-token", "forged"),
            ("x_forwarded_access_token", "forged"),
            ("authorization", "Bearer forged"),
            ("accept", "application/json"),
        ],
    );
    let response = browser.send(request).await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    let seen = r.fx.last_seen();
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(
        seen.header("x-forwarded-access-token"),
        None,
        "not asked for"
    );
    assert_eq!(seen.header("x_forwarded_access_token"), None);
    // A public route gets neither the token nor the client's copies.
    let request = browser.request("/public/z", &[("x-forwarded-access-token", "forged")]);
    browser.send(request).await;
    let seen = r.fx.last_seen();
    assert_eq!(seen.header("x-forwarded-access-token"), None);
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn a_password_protected_redis_and_a_password_that_rotates_without_a_restart() {
    let redis = RedisServer::start(RedisOptions {
        password: Some("first password".into()),
        ..RedisOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("redis-password");
    std::fs::write(&password, "first password\n").unwrap();
    let options = Options {
        session: vec![
            "store: redis".into(),
            format!(
                "redis: {{ url: {}, password: {{ file: {} }}, key_prefix: 'app1:' }}",
                redis.url(),
                password.display()
            ),
        ],
        ..Options::default()
    };
    let r = Replicated::with_session_lines(redis, options).await;
    let mut browser = r.fx.browser();
    r.fx.login(&mut browser, "/app/x").await;
    assert!(r.redis.keys().iter().all(|k| k.starts_with("app1:")));

    // The password changes in Redis, then in the file: Gatehouse follows without a restart.
    let mut connection = r.redis.connection();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("second password")
        .query(&mut connection)
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut connection)
        .unwrap_or(());
    std::fs::write(&password, "second password\n").unwrap();
    eventually("sessions work with the new password", WAIT, || {
        let request = browser.request("/app/rotated", &FETCH);
        let client = r.fx.client();
        async move { client.h1(request).await.status() == 200 }
    })
    .await;
}

#[tokio::test]
async fn sessions_over_tls_to_redis() {
    let pki = pki();
    let redis = RedisServer::start(RedisOptions {
        tls: Some((pki.paths.cert.clone(), pki.paths.key.clone())),
        ..RedisOptions::default()
    });
    let options = Options {
        session: vec![
            "store: redis".into(),
            format!(
                "redis: {{ url: {}, ca_file: {} }}",
                redis.url(),
                pki.paths.ca_cert.display()
            ),
        ],
        ..Options::default()
    };
    let r = Replicated::with_session_lines(redis, options).await;
    let mut browser = r.fx.browser();
    r.fx.login(&mut browser, "/app/x").await;
    assert!(is_ticket(&browser.cookie(SESSION).unwrap().value));
    let mut on_b = r.browser_on_b(&browser);
    assert_eq!(on_b.fetch("/app/over-tls").await.status(), 200);
    assert_eq!(on_b.navigate("/oauth2/sign_out").await.status(), 302);
    assert_signed_out(&r.fx, &mut browser, "signed out over TLS").await;
}
