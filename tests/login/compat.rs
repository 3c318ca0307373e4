//! `compat.oauth2_proxy: true`: `/ping` and `/ready` on the public listener, never a way past
//! the policy for any other path, and oauth2-proxy's header names to the app and the ingress.

use super::*;

const COMPAT: &str = "compat:\n  oauth2_proxy: true\ntrusted_proxies: [127.0.0.1/32]\n";

fn preferred(user: &str, name: &str) -> User {
    let mut user = User::new(user, &["dev"]);
    user.extra.insert("preferred_username".into(), name.into());
    user
}

#[tokio::test]
async fn ping_and_ready_answer_on_the_public_port_for_those_paths_only() {
    let fx = Fixture::with(Options {
        extra: COMPAT,
        ..Options::default()
    })
    .await;
    let client = fx.client();
    for path in ["/ping", "/ready", "/ping?x=1", "/ping;p", "/./ping"] {
        let response = client.h1(get(path)).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(body_text(&response), "OK", "{path}");
        assert!(content_type(&response).starts_with("text/plain"), "{path}");
        assert!(response.headers().get("x-auth-request-user").is_none());
    }
    // Anything else is the policy's: here, no route, so 403 (never the probe's 200).
    for path in ["/ping/x", "/pingx", "/ping/../admin/x", "/ready/../app/x"] {
        let response = client.h1(get(path)).await;
        assert_ne!(response.status(), 200, "{path}");
    }
    let post = http::Request::post("/ping")
        .header("host", "localhost")
        .body(empty())
        .unwrap();
    assert_eq!(client.h1(post).await.status(), 405);
    assert!(fx.app.seen().is_empty(), "no probe reached the app");
}

#[tokio::test]
async fn without_compat_there_is_no_public_ping() {
    let fx = Fixture::start().await;
    for path in ["/ping", "/ready"] {
        assert_eq!(fx.client().h1(get(path)).await.status(), 403, "{path}");
    }
}

#[tokio::test]
async fn the_app_and_the_ingress_get_oauth2_proxy_header_names() {
    let fx = Fixture::with(Options {
        extra: COMPAT,
        ..Options::default()
    })
    .await;
    fx.idp.set_user(preferred("alice", "Alice L"));
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    let seen = fx.last_seen();
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-email"), Some("alice@example.com"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("dev"));
    assert_eq!(
        seen.header("x-forwarded-preferred-username"),
        Some("Alice L")
    );
    assert_eq!(seen.header("x-user-id"), Some("alice"));

    let response = ask_forward_auth(&mut browser, "/app/x").await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        response.headers()["x-auth-request-preferred-username"],
        "Alice L"
    );

    // A client's own copies never reach the app, on a public route either.
    let request = browser.request(
        "/public/x",
        &[
            ("x-forwarded-preferred-username", "root"),
            ("x-auth-request-preferred-username", "root"),
        ],
    );
    assert_eq!(browser.send(request).await.status(), 200);
    let seen = fx.last_seen();
    assert!(seen.header("x-forwarded-preferred-username").is_none());
    assert!(seen.header("x-auth-request-preferred-username").is_none());
}
