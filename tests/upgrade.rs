//! Protocol upgrades are an allow-list (issue 10): `h2c` is never forwarded, an upgrade is
//! forwarded only for `GET` with `Connection: upgrade` and a listed protocol, and a tunnel is
//! spliced only when the app's `101` names the protocol that was asked for. Tunnels hold a
//! connection slot and end with the drain.
//!
//! The app here is written by hand and answers `101` to any upgrade, as careless servers do;
//! a bypass would show as bytes reaching its tunnel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::raw::{self, OnUpgrade, RawUpstream};
use common::*;

const LIMIT: Duration = Duration::from_secs(10);

/// `/public/**` is open; nothing else is allowed (so `/admin/**` is refused).
const POLICY: &str = "version: 1
default: deny
routes:
  - name: public
    path: /public/**
    auth: none
";

fn guarded(pki: &Pki) {
    std::fs::remove_file(pki.policies().join("open.yaml")).unwrap();
    std::fs::write(pki.policies().join("guarded.yaml"), POLICY).unwrap();
}

const H2C_UPGRADE: &[u8] = b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\
Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n";

/// What an attacker sends once the tunnel is open: the app would read it unchecked.
const SMUGGLED: &[u8] =
    b"GET /admin/users HTTP/1.1\r\nHost: localhost\r\nX-User-Roles: admin\r\nX-User-Id: root\r\n\r\n";

#[tokio::test]
async fn h2c_upgrade_on_a_public_route_never_opens_a_tunnel() {
    let pki = pki();
    guarded(&pki);
    let app = RawUpstream::start(OnUpgrade::Accept).await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let mut tls = raw::raw_tls(gh.https_addr.unwrap(), &pki.paths.ca_cert).await;

    raw::send(&mut tls, H2C_UPGRADE).await;
    let mut buffered = Vec::new();
    let (head, body) = raw::read_response(&mut tls, &mut buffered, LIMIT).await;
    assert_eq!(raw::status(&head), 200, "{head}");
    assert_eq!(body, "plain");
    let heads = app.heads();
    assert_eq!(heads.len(), 1);
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert_eq!(raw::header(&heads[0], gone), None, "{gone} reached the app");
    }

    // The same connection is still Gatehouse's: the next request is checked like any other.
    raw::send(&mut tls, SMUGGLED).await;
    let (head, _) = raw::read_response(&mut tls, &mut buffered, LIMIT).await;
    assert_eq!(raw::status(&head), 403, "{head}");
    assert!(app.tunneled().is_empty(), "{:?}", app.tunneled());
    assert_eq!(app.heads().len(), 1, "{:?}", app.heads());
}

#[tokio::test]
async fn h2c_cannot_be_allowed_in_config() {
    let pki = pki();
    let text = config_text(&pki, "http://127.0.0.1:1", "").replace(
        "  url: http://127.0.0.1:1\n",
        "  url: http://127.0.0.1:1\n  upgrades: [websocket, h2c]\n",
    );
    let errors = gatehouse::config::parse(
        &text,
        std::path::Path::new("test.yaml"),
        &gatehouse::config::Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(errors.contains("test.yaml:"), "{errors}");
    assert!(errors.contains("upstream.upgrades"), "{errors}");
    assert!(errors.contains("h2c"), "{errors}");
}

/// Sends `request` and returns the status Gatehouse answered with; the app answers `101` to
/// any upgrade it is handed.
async fn upgrade_status(
    extra_config: &str,
    on_upgrade: OnUpgrade,
    request: &[u8],
) -> (u16, RawUpstream) {
    let pki = pki();
    let app = RawUpstream::start(on_upgrade).await;
    let gh = start(&config_text(&pki, &app.url(), extra_config)).await;
    let mut tls = raw::raw_tls(gh.https_addr.unwrap(), &pki.paths.ca_cert).await;
    raw::send(&mut tls, request).await;
    let mut buffered = Vec::new();
    let (head, _) = raw::read_response(&mut tls, &mut buffered, LIMIT).await;
    // Whatever else happens, bytes after the answer must not reach the app's tunnel.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut tls, SMUGGLED).await;
    let _ = tokio::time::timeout(
        Duration::from_millis(200),
        raw::read_head(&mut tls, &mut buffered),
    )
    .await;
    (raw::status(&head), app)
}

const WEBSOCKET: &str = "GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[tokio::test]
async fn an_unlisted_protocol_is_not_forwarded() {
    let request = WEBSOCKET.replace("Upgrade: websocket", "Upgrade: foo");
    let (status, app) = upgrade_status("", OnUpgrade::Accept, request.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(raw::header(&app.heads()[0], "upgrade"), None);
    assert!(app.tunneled().is_empty());
}

#[tokio::test]
async fn websocket_upgrades_only_for_get() {
    let request = WEBSOCKET.replace("GET /chat", "POST /chat");
    let (status, app) = upgrade_status("", OnUpgrade::Accept, request.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(raw::header(&app.heads()[0], "upgrade"), None);
    assert!(app.tunneled().is_empty());
}

#[tokio::test]
async fn an_empty_allow_list_forwards_no_upgrade() {
    let (status, app) = upgrade_status("", OnUpgrade::Accept, WEBSOCKET.as_bytes()).await;
    assert_eq!(status, 101, "control: websocket is allowed by default");
    drop(app);
    let pki = pki();
    let app = RawUpstream::start(OnUpgrade::Accept).await;
    let text = config_text(&pki, &app.url(), "").replace(
        &format!("  url: {}\n", app.url()),
        &format!("  url: {}\n  upgrades: []\n", app.url()),
    );
    let gh = start(&text).await;
    let mut tls = raw::raw_tls(gh.https_addr.unwrap(), &pki.paths.ca_cert).await;
    raw::send(&mut tls, WEBSOCKET.as_bytes()).await;
    let (head, _) = raw::read_response(&mut tls, &mut Vec::new(), LIMIT).await;
    assert_eq!(raw::status(&head), 200, "{head}");
    assert_eq!(raw::header(&app.heads()[0], "upgrade"), None);
}

#[tokio::test]
async fn a_101_naming_another_protocol_is_refused() {
    let (status, app) = upgrade_status("", OnUpgrade::AcceptAs("h2c"), WEBSOCKET.as_bytes()).await;
    assert_eq!(status, 502);
    assert!(app.tunneled().is_empty(), "{:?}", app.tunneled());
}

#[tokio::test]
async fn tunnels_hold_a_connection_slot() {
    let pki = pki();
    let app = RawUpstream::start(OnUpgrade::Accept).await;
    let gh = start(&config_text(
        &pki,
        &app.url(),
        "limits:\n  max_connections: 1\n",
    ))
    .await;
    let addr = gh.https_addr.unwrap();
    let mut tunnel = raw::raw_tls(addr, &pki.paths.ca_cert).await;
    raw::send(&mut tunnel, WEBSOCKET.as_bytes()).await;
    let (head, _) = raw::read_response(&mut tunnel, &mut Vec::new(), LIMIT).await;
    assert_eq!(raw::status(&head), 101);

    // With the one slot held by the tunnel, a second client is not accepted: its TLS
    // handshake cannot complete.
    let mut second = tokio::spawn(tls_connect(
        addr,
        "localhost",
        client_config(&pki.paths.ca_cert, &[b"http/1.1"]),
    ));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut second)
            .await
            .is_err(),
        "a second connection was accepted while a tunnel held the only slot"
    );
    drop(tunnel);
    let second = tokio::time::timeout(LIMIT, second)
        .await
        .expect("the second handshake did not complete after the tunnel closed");
    assert!(second.unwrap().is_ok());
}

#[tokio::test]
async fn the_drain_timeout_closes_tunnels() {
    let pki = pki();
    let app = RawUpstream::start(OnUpgrade::Accept).await;
    let gh = start(&config_text(
        &pki,
        &app.url(),
        "limits:\n  drain_timeout: 200ms\n",
    ))
    .await;
    let mut tunnel = raw::raw_tls(gh.https_addr.unwrap(), &pki.paths.ca_cert).await;
    raw::send(&mut tunnel, WEBSOCKET.as_bytes()).await;
    let (head, _) = raw::read_response(&mut tunnel, &mut Vec::new(), LIMIT).await;
    assert_eq!(raw::status(&head), 101);

    gh.shutdown();
    assert!(
        !tokio::time::timeout(LIMIT, gh.stopped()).await.unwrap(),
        "the tunnel counted as drained"
    );
    assert!(
        read_until_closed(&mut tunnel, LIMIT).await.is_some(),
        "the tunnel is still open after the drain timeout"
    );
}

#[tokio::test]
async fn a_websocket_on_a_refused_route_never_reaches_the_app() {
    let pki = pki();
    guarded(&pki);
    let app = RawUpstream::start(OnUpgrade::Accept).await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let mut tls = raw::raw_tls(gh.https_addr.unwrap(), &pki.paths.ca_cert).await;
    raw::send(
        &mut tls,
        WEBSOCKET.replace("/chat", "/admin/chat").as_bytes(),
    )
    .await;
    let (head, _) = raw::read_response(&mut tls, &mut Vec::new(), LIMIT).await;
    assert_eq!(raw::status(&head), 403, "{head}");
    assert!(app.heads().is_empty(), "{:?}", app.heads());
}

#[tokio::test]
async fn connect_is_not_a_tunnel() {
    let pki = pki();
    let app = RawUpstream::start(OnUpgrade::Accept).await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let mut tls = raw::raw_tls(gh.https_addr.unwrap(), &pki.paths.ca_cert).await;
    raw::send(
        &mut tls,
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
    )
    .await;
    let (head, _) = raw::read_response(&mut tls, &mut Vec::new(), LIMIT).await;
    assert_eq!(raw::status(&head), 405, "{head}");
    assert!(app.heads().is_empty(), "{:?}", app.heads());
}
