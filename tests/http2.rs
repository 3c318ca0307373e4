//! HTTP/2 requests are checked as RFC 9113 §8 says before they are written out to the app as
//! HTTP/1.1. A client library would refuse to send these requests, so they are sent with
//! Python's `h2` (Debian's python3-h2) with its outbound checks off: connection-specific
//! fields, upper-case names, CR/LF/NUL in values, a `content-length` that disagrees with the
//! DATA, a `:path` that is not a path, `:authority` and `host` disagreeing. None may reach the
//! app; each is answered 4xx or reset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::raw;
use common::*;
use serde_json::json;

/// What came back for one raw request.
#[derive(Debug)]
struct Answer {
    status: Option<u64>,
    body: String,
    /// RST_STREAM or GOAWAY error code.
    reset: Option<u64>,
}

impl Answer {
    fn refused(&self) -> bool {
        match self.status {
            Some(status) => (400..500).contains(&status),
            None => self.reset.is_some(),
        }
    }
}

async fn send_raw(pki: &Pki, port: u16, headers: &[(&str, &str)], data: Option<&str>) -> Answer {
    let request = json!({ "headers": headers, "data": data }).to_string();
    let result = raw::python_h2("raw_client.py", port, &pki.paths.ca_cert, &[], &request).await;
    Answer {
        status: result["status"].as_u64(),
        body: result["body"].as_str().unwrap_or_default().to_owned(),
        reset: result["reset"].as_u64().or(result["goaway"].as_u64()),
    }
}

const GET: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "localhost"),
    (":path", "/x"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    GET.iter().copied().chain(extra.iter().copied()).collect()
}

async fn setup() -> (Pki, Upstream, gatehouse::server::Running, u16) {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let port = gh.https_addr.unwrap().port();
    (pki, app, gh, port)
}

#[tokio::test]
async fn a_well_formed_request_passes() {
    let (pki, app, _gh, port) = setup().await;
    let answer = send_raw(&pki, port, &with(&[("te", "trailers")]), None).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert_eq!(answer.body, "ok");
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn connection_specific_fields_are_malformed() {
    let (pki, app, _gh, port) = setup().await;
    for field in [
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("keep-alive", "timeout=5"),
        ("upgrade", "h2c"),
        ("proxy-connection", "keep-alive"),
        ("te", "gzip"),
        ("te", "trailers, deflate"),
    ] {
        let answer = send_raw(&pki, port, &with(&[field]), None).await;
        assert!(answer.refused(), "{field:?}: {answer:?}");
    }
    assert!(app.seen().is_empty(), "{:?}", app.seen());
}

#[tokio::test]
async fn content_length_must_match_the_data() {
    let (pki, app, _gh, port) = setup().await;
    let post = |length: &'static str| {
        vec![
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", "/upload"),
            ("content-length", length),
        ]
    };
    for length in ["10", "2", "0"] {
        let answer = send_raw(&pki, port, &post(length), Some("abc")).await;
        assert!(answer.refused(), "content-length {length}: {answer:?}");
        assert_ne!(answer.body, "ok", "content-length {length}");
    }
    // Control: the right length passes.
    let answer = send_raw(&pki, port, &post("3"), Some("abc")).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    let seen = app.seen();
    assert_eq!(
        seen.len(),
        1,
        "a request whose length lied was answered by the app: {seen:?}"
    );
}

#[tokio::test]
async fn cr_lf_nul_and_upper_case_never_become_http11_headers() {
    let (pki, app, _gh, port) = setup().await;
    for field in [
        ("x-a", "a\r\nx-user-roles: admin"),
        ("x-a", "a\nb"),
        ("x-a", "a\rb"),
        ("x-a", "a\0b"),
        ("X-User-Roles", "admin"),
        ("X-A", "b"),
        ("x-a\r\nx-user-id", "root"),
        ("x a", "b"),
        ("", "b"),
    ] {
        let answer = send_raw(&pki, port, &with(&[field]), None).await;
        assert!(answer.refused(), "{field:?}: {answer:?}");
    }
    assert!(app.seen().is_empty(), "{:?}", app.seen());
}

#[tokio::test]
async fn path_must_be_a_path() {
    let (pki, app, _gh, port) = setup().await;
    for path in ["admin", "", "*", "x/../admin", "https://localhost/x"] {
        let headers = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
        ];
        let answer = send_raw(&pki, port, &headers, None).await;
        assert!(answer.refused(), "{path:?}: {answer:?}");
    }
    assert!(app.seen().is_empty(), "{:?}", app.seen());
}

#[tokio::test]
async fn authority_and_host_must_agree() {
    let (pki, app, _gh, port) = setup().await;
    let answer = send_raw(&pki, port, &with(&[("host", "evil.example")]), None).await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert!(answer.body.contains(":authority"), "{}", answer.body);
    for authority in ["user@localhost", "localhost/admin", "a b"] {
        let headers = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", authority),
            (":path", "/x"),
        ];
        let answer = send_raw(&pki, port, &headers, None).await;
        assert!(answer.refused(), "{authority:?}: {answer:?}");
    }
    // Agreeing (in any case) is fine, and so is a host header alone.
    let answer = send_raw(&pki, port, &with(&[("host", "LOCALHOST")]), None).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    let host_only = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/x"),
        ("host", "localhost"),
    ];
    let answer = send_raw(&pki, port, &host_only, None).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert_eq!(app.seen().len(), 2, "{:?}", app.seen());
}

#[tokio::test]
async fn an_oversize_header_block_gets_431() {
    let (pki, app, _gh, port) = setup().await;
    let big = "a".repeat(40 * 1024);
    let big: &'static str = Box::leak(big.into_boxed_str());
    let answer = send_raw(&pki, port, &with(&[("x-big", big)]), None).await;
    assert_eq!(answer.status, Some(431), "{answer:?}");
    assert!(app.seen().is_empty(), "{:?}", app.seen());
}
