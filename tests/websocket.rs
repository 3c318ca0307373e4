//! WebSocket through the proxy: a real handshake over TLS, spliced to a real WebSocket upstream,
//! messages echoed both ways and a clean close; and no upgrade unless `Connection` asks for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const STEP: Duration = Duration::from_secs(10);

/// What the echo upstream reports: the handshake headers it saw, and the close frame it got.
struct EchoReport {
    headers: oneshot::Receiver<http::HeaderMap>,
    closed: oneshot::Receiver<Option<CloseFrame>>,
}

/// A WebSocket echo server on `127.0.0.1:0` for exactly one connection.
async fn ws_echo_upstream() -> (String, EchoReport) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (headers_tx, headers) = oneshot::channel();
    let (closed_tx, closed) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // The callback's signature is tungstenite's, large error type included.
        #[allow(clippy::result_large_err)]
        let record = |request: &server::Request, response: server::Response| {
            let _ = headers_tx.send(request.headers().clone());
            Ok(response)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, record)
            .await
            .unwrap();
        while let Some(message) = ws.next().await {
            match message.unwrap() {
                m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m).await.unwrap(),
                Message::Close(frame) => {
                    // Reading on after a close flushes tungstenite's reply and ends the stream.
                    while ws.next().await.is_some() {}
                    let _ = closed_tx.send(frame);
                    return;
                }
                _ => {}
            }
        }
    });
    (url, EchoReport { headers, closed })
}

#[tokio::test]
async fn websocket_echo_through_the_proxy_and_clean_close() {
    let pki = pki();
    let (url, report) = ws_echo_upstream().await;
    let gh = start(&config_text(&pki, &url, "")).await;

    let tls = tls_connect(
        gh.https_addr.unwrap(),
        "localhost",
        client_config(&pki.paths.ca_cert, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut ws, response) = tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async("wss://localhost/chat?room=1", tls),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("x-request-id"));

    let seen = tokio::time::timeout(STEP, report.headers)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen["upgrade"], "websocket");
    assert_eq!(seen["connection"], "upgrade");
    assert_eq!(seen["x-forwarded-proto"], "https");

    let messages = [
        Message::text("hello through gatehouse"),
        Message::binary(vec![0u8, 1, 2, 254, 255]),
        Message::text("é ✓ second text"),
        Message::binary(vec![7u8; 200_000]),
    ];
    for message in messages {
        ws.send(message.clone()).await.unwrap();
        let echoed = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("no echo")
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }

    let bye = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.close(Some(bye.clone())).await.unwrap();
    let reply = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("no close reply")
        .unwrap()
        .unwrap();
    assert!(
        matches!(&reply, Message::Close(Some(f)) if f.code == CloseCode::Normal),
        "{reply:?}"
    );
    let end = tokio::time::timeout(STEP, ws.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    let received = tokio::time::timeout(STEP, report.closed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received, Some(bye));
}

#[tokio::test]
async fn upgrade_without_connection_upgrade_is_not_forwarded() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let request = Request::get("/chat")
        .header("host", "localhost")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(empty())
        .unwrap();
    let response = client.h1(request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"ok");
    let seen = &app.seen()[0];
    assert_eq!(seen.header("upgrade"), None);
    assert_eq!(seen.header("connection"), None);
}

/// Opens an RFC 8441 WebSocket (extended CONNECT) to `path` over a fresh HTTP/2 connection
/// with the `h2` crate, and returns the response head and the stream's two halves.
async fn h2_websocket(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    path: &str,
) -> (
    http::response::Parts,
    h2::SendStream<bytes::Bytes>,
    h2::RecvStream,
) {
    let tls = tls_connect(addr, "localhost", client_config(ca, &[b"h2"]))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    // The server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) arrive right after the handshake.
    eventually("the server allows extended CONNECT", STEP, || {
        let enabled = client.is_extended_connect_protocol_enabled();
        async move { enabled }
    })
    .await;
    let request = Request::connect(format!("https://localhost{path}"))
        .extension(h2::ext::Protocol::from("websocket"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let (response, send) = client.send_request(request, false).unwrap();
    let response = tokio::time::timeout(STEP, response).await.unwrap().unwrap();
    let (parts, recv) = response.into_parts();
    (parts, send, recv)
}

#[tokio::test]
async fn websocket_over_http2_reaches_an_http1_app_as_an_upgrade() {
    let pki = pki();
    let (url, report) = ws_echo_upstream().await;
    let gh = start(&config_text(&pki, &url, "")).await;
    let (head, mut send, mut recv) =
        h2_websocket(gh.https_addr.unwrap(), &pki.paths.ca_cert, "/chat").await;
    assert_eq!(head.status, 200);
    assert!(!head.headers.contains_key("sec-websocket-accept"));
    let seen = tokio::time::timeout(STEP, report.headers)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen["upgrade"], "websocket");
    assert_eq!(seen["connection"], "upgrade");
    assert_eq!(seen["sec-websocket-version"], "13");
    assert!(seen.contains_key("sec-websocket-key"));

    // A masked text frame, as a client sends it (RFC 6455 §5.2); the echo comes back unmasked.
    let text = b"hello over h2";
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut frame = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    send.send_data(frame.into(), false).unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < 2 + text.len() {
        let data = tokio::time::timeout(STEP, recv.data())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        recv.flow_control().release_capacity(data.len()).unwrap();
        echoed.extend_from_slice(&data);
    }
    assert_eq!(echoed[..2], [0x81, u8::try_from(text.len()).unwrap()]);
    assert_eq!(&echoed[2..], text);
}

#[tokio::test]
async fn websocket_over_http2_follows_the_policy_and_the_allow_list() {
    let pki = pki();
    std::fs::write(
        pki.policies().join("open.yaml"),
        "version: 1\nroutes:\n  - name: chat\n    path: /chat\n    auth: none\n",
    )
    .unwrap();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let (head, _, _) = h2_websocket(gh.https_addr.unwrap(), &pki.paths.ca_cert, "/secret").await;
    assert_eq!(head.status, 403);

    let other = common::pki();
    let upstream = format!("{}\n  upgrades: []", app.url());
    let gh = start(&config_text(&other, &upstream, "")).await;
    let (head, _, _) = h2_websocket(gh.https_addr.unwrap(), &other.paths.ca_cert, "/chat").await;
    assert_eq!(head.status, 405);
    assert!(app.seen().is_empty());
}
