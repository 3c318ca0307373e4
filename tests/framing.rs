//! HTTP/1.1 framing at the edge, written byte by byte over real TLS (RFC 9112): a request
//! whose length or target can be read two ways is refused, never forwarded with a guess, and
//! the connection is closed gracefully so that the client reads the refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::raw;
use common::*;
use http::Response;
use http_body_util::BodyExt;

const LIMIT: Duration = Duration::from_secs(10);

/// An app that reads each request body whole before answering `200 ok <bytes read>`, and
/// records the request heads.
async fn reading_app() -> Upstream {
    upstream(|request| async move {
        match request.into_body().collect().await {
            Ok(body) => Response::new(full(format!("ok {}", body.to_bytes().len()))),
            Err(_) => Response::new(full("torn")),
        }
    })
    .await
}

struct Exchange {
    head: String,
    body: String,
    /// The connection was closed by Gatehouse after the answer.
    closed: bool,
}

/// Sends `request` as raw bytes over a fresh TLS connection and reads one answer.
async fn exchange(addr: std::net::SocketAddr, pki: &Pki, request: &[u8]) -> Exchange {
    let mut tls = raw::raw_tls(addr, &pki.paths.ca_cert).await;
    raw::send(&mut tls, request).await;
    let mut buffered = Vec::new();
    let (head, body) = raw::read_response(&mut tls, &mut buffered, LIMIT).await;
    let closed = read_until_closed(&mut tls, LIMIT).await.is_some();
    Exchange { head, body, closed }
}

async fn gatehouse(app: &Upstream) -> (Pki, gatehouse::server::Running) {
    let pki = pki();
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    (pki, gh)
}

#[tokio::test]
async fn http11_without_host_is_refused_and_http10_is_not() {
    let app = reading_app().await;
    let (pki, gh) = gatehouse(&app).await;
    let addr = gh.https_addr.unwrap();
    let refused = exchange(addr, &pki, b"GET /x HTTP/1.1\r\n\r\n").await;
    assert_eq!(raw::status(&refused.head), 400, "{}", refused.head);
    assert!(refused.body.contains("Host"), "{}", refused.body);
    assert!(refused.closed);
    assert!(app.seen().is_empty(), "{:?}", app.seen());

    let http10 = exchange(addr, &pki, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(raw::status(&http10.head), 200, "{}", http10.head);
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn transfer_encoding_other_than_exactly_chunked_is_refused_and_closes() {
    let app = reading_app().await;
    let (pki, gh) = gatehouse(&app).await;
    let addr = gh.https_addr.unwrap();
    let cases: [(&str, &[u16]); 6] = [
        ("Transfer-Encoding: gzip, chunked\r\n", &[501]),
        ("Transfer-Encoding: identity\r\n", &[400, 501]),
        ("Transfer-Encoding: gzip\r\n", &[400, 501]),
        ("Transfer-Encoding: chunked, chunked\r\n", &[400]),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            &[400],
        ),
        (
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            &[501],
        ),
    ];
    for (coding, statuses) in cases {
        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: localhost\r\n{coding}\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let answer = exchange(addr, &pki, request.as_bytes()).await;
        let status = raw::status(&answer.head);
        assert!(statuses.contains(&status), "{coding:?}: {}", answer.head);
        assert!(answer.closed, "{coding:?}: the connection stayed open");
    }
    assert!(app.seen().is_empty(), "{:?}", app.seen());

    // Control: exactly `chunked`, in any case, is forwarded.
    let request = "POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let answer = exchange(addr, &pki, request.as_bytes()).await;
    assert_eq!(raw::status(&answer.head), 200, "{}", answer.head);
    assert_eq!(answer.body, "ok 5");
}

#[tokio::test]
async fn transfer_encoding_in_http10_is_refused() {
    let app = reading_app().await;
    let (pki, gh) = gatehouse(&app).await;
    let request = b"POST /upload HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let answer = exchange(gh.https_addr.unwrap(), &pki, request).await;
    assert_eq!(raw::status(&answer.head), 400, "{}", answer.head);
    assert!(answer.closed);
    assert!(app.seen().is_empty(), "{:?}", app.seen());
}

#[tokio::test]
async fn content_length_with_chunked_cannot_smuggle_a_second_request() {
    let app = reading_app().await;
    let (pki, gh) = gatehouse(&app).await;
    let smuggled = "GET /admin/x HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let body = format!("0\r\n\r\n{smuggled}");
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(gh.https_addr.unwrap(), &pki, request.as_bytes()).await;
    // Read by Transfer-Encoding alone (RFC 9112 §6.3), then the connection is closed: the
    // bytes after the chunked body are never read as a request.
    assert_eq!(raw::status(&answer.head), 200, "{}", answer.head);
    assert_eq!(answer.body, "ok 0");
    assert!(answer.closed);
    let seen = app.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "/upload");
    assert_eq!(seen[0].header("content-length"), None, "{seen:?}");
}

#[tokio::test]
async fn invalid_chunks_are_the_clients_fault() {
    let app = reading_app().await;
    let (pki, gh) = gatehouse(&app).await;
    let addr = gh.https_addr.unwrap();
    for chunks in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    ] {
        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}"
        );
        let answer = exchange(addr, &pki, request.as_bytes()).await;
        assert_eq!(
            raw::status(&answer.head),
            400,
            "{chunks:?}: {}",
            answer.head
        );
        assert!(answer.closed, "{chunks:?}");
    }
}

#[tokio::test]
async fn malformed_header_lines_are_refused() {
    let app = reading_app().await;
    let (pki, gh) = gatehouse(&app).await;
    let addr = gh.https_addr.unwrap();
    for request in [
        // obs-fold (RFC 9112 §5.2)
        "GET /x HTTP/1.1\r\nHost: localhost\r\nX-A: one\r\n two\r\n\r\n",
        // bare CR inside a field
        "GET /x HTTP/1.1\r\nHost: localhost\r\nX-A: one\rtwo\r\n\r\n",
        // whitespace before the colon (RFC 9112 §5.1)
        "GET /x HTTP/1.1\r\nHost : localhost\r\n\r\n",
        // two Host fields
        "GET /x HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n",
        // a Host that is not an authority
        "GET /x HTTP/1.1\r\nHost: localhost/admin\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: user@localhost\r\n\r\n",
        // a Content-Length that is not one number
        "POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3, 4\r\n\r\nabcd",
        "POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: +3\r\n\r\nabc",
    ] {
        let answer = exchange(addr, &pki, request.as_bytes()).await;
        assert_eq!(
            raw::status(&answer.head),
            400,
            "{request:?}: {}",
            answer.head
        );
    }
    assert!(app.seen().is_empty(), "{:?}", app.seen());
}

/// A refusal sent while the client is still writing must reach it: Gatehouse half-closes and
/// reads on for a while (RFC 9112 §9.6) instead of closing a socket with unread data, which
/// makes the kernel send a reset that can destroy the answer before the client reads it.
#[tokio::test]
async fn refusals_reach_a_client_that_is_still_sending() {
    let app = reading_app().await;
    let pki = pki();
    let text = config_text(&pki, &app.url(), "").replace(
        "  https: 127.0.0.1:0\n",
        "  https: 127.0.0.1:0\n  http: 127.0.0.1:0\n",
    );
    let gh = start(&text).await;
    let junk = vec![b'x'; 16 << 20];
    let oversize = format!(
        "POST /x HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nContent-Length: {}\r\n\r\n",
        "a".repeat(40 * 1024),
        junk.len()
    );
    let unsupported = format!(
        "POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: {}\r\n\r\n",
        junk.len()
    );
    for (head, status) in [(oversize, 431), (unsupported, 501)] {
        // Plain TCP, where a reset shows most directly. Like many simple clients, this one
        // writes the whole request before it reads anything.
        let mut tcp = tokio::net::TcpStream::connect(gh.http_addr.unwrap())
            .await
            .unwrap();
        let mut request = head.into_bytes();
        request.extend_from_slice(&junk);
        let written = tokio::time::timeout(
            LIMIT,
            tokio::io::AsyncWriteExt::write_all(&mut tcp, &request),
        )
        .await
        .expect("the server neither read nor closed");
        assert!(written.is_ok(), "writing failed: {written:?}");
        let mut buffered = Vec::new();
        let head = tokio::time::timeout(LIMIT, raw::read_head(&mut tcp, &mut buffered))
            .await
            .unwrap()
            .expect("the refusal never arrived: the connection was reset");
        assert_eq!(raw::status(&head), status, "{head}");
    }
    assert!(app.seen().is_empty(), "{:?}", app.seen());
}
