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
