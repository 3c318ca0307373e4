//! HTTP/2 floods against a running Gatehouse, each bounded in count and time, from Python's
//! `h2` writing raw frames (tests/h2/flood.py, loopback only). Gatehouse relies on the `h2`
//! crate's defences; these tests hold them in place: a rapid-reset flood (CVE-2023-44487) and
//! a CONTINUATION flood end with GOAWAY, and PING/SETTINGS floods from a client that reads
//! nothing are met with backpressure (one pending answer, then no more reading) rather than
//! an unbounded queue. After each, the server still serves a fresh connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::raw;
use common::*;
use serde_json::Value;

/// GOAWAY's ENHANCE_YOUR_CALM (RFC 9113 §7).
const ENHANCE_YOUR_CALM: u64 = 0xb;

async fn flood(pki: &Pki, port: u16, mode: &str, count: u64) -> Value {
    let count = count.to_string();
    raw::python_h2("flood.py", port, &pki.paths.ca_cert, &[mode, &count], "").await
}

async fn setup() -> (Pki, Upstream, gatehouse::server::Running, Client) {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    (pki, app, gh, client)
}

#[tokio::test]
async fn rapid_reset_ends_with_goaway() {
    let (pki, app, gh, client) = setup().await;
    let sent = 5000;
    let result = flood(&pki, gh.https_addr.unwrap().port(), "rapid_reset", sent).await;
    assert_eq!(
        result["goaway"].as_u64(),
        Some(ENHANCE_YOUR_CALM),
        "{result}"
    );
    let reached = app.seen().len() as u64;
    assert!(
        reached < sent / 10,
        "{reached} of {sent} reset streams reached the app"
    );
    assert_eq!(client.h2(get("/after")).await.status(), 200);
}

#[tokio::test]
async fn continuation_flood_ends_with_goaway() {
    let (pki, app, gh, client) = setup().await;
    let result = flood(&pki, gh.https_addr.unwrap().port(), "continuation", 20_000).await;
    assert!(
        result["goaway"].is_u64() || result["closed"] == true,
        "the server kept reading CONTINUATION frames: {result}"
    );
    assert!(app.seen().is_empty(), "{:?}", app.seen());
    assert_eq!(client.h2(get("/after")).await.status(), 200);
}

#[tokio::test]
async fn ping_and_settings_floods_meet_backpressure() {
    let (pki, _app, gh, client) = setup().await;
    // 4 million frames are 68 MB: far more than the socket buffers hold, so a server that
    // queued its answers instead of pushing back would have read them all.
    let count = 4_000_000;
    for mode in ["ping", "settings"] {
        let result = flood(&pki, gh.https_addr.unwrap().port(), mode, count).await;
        assert_eq!(result["stalled"], true, "{mode}: {result}");
        assert!(result["sent"].as_u64().unwrap() < count, "{mode}: {result}");
        assert_eq!(client.h2(get("/after")).await.status(), 200, "{mode}");
    }
}
