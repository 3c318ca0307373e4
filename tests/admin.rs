//! The admin listener answers as it always has, whatever serves it: status, body and
//! content type of each endpoint, 405 for other methods, 404 elsewhere. In-process Gatehouse
//! on `127.0.0.1:0`, plain HTTP/1.1 to the admin port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use http::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// `method path` on the admin listener: status, content type and body.
async fn admin(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .body(empty())
        .unwrap();
    let response = collect(sender.send_request(request).await.unwrap()).await;
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        response.status().as_u16(),
        kind,
        String::from_utf8_lossy(response.body()).into_owned(),
    )
}

#[tokio::test]
async fn every_admin_endpoint_answers_as_before() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let addr = gh.admin_addr;
    let text = "text/plain; charset=utf-8";
    eventually("ready", std::time::Duration::from_secs(30), || async move {
        admin_get(addr, "/readyz").await.0 == 200
    })
    .await;
    assert_eq!(
        admin(addr, "GET", "/healthz").await,
        (200, text.into(), "ok\n".into())
    );
    assert_eq!(
        admin(addr, "GET", "/readyz").await,
        (200, text.into(), "ready\n".into())
    );
    assert_eq!(
        admin(addr, "HEAD", "/healthz").await,
        (200, text.into(), "".into())
    );
    let (status, kind, body) = admin(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("gatehouse_build_info"), "{body}");
    for (method, path) in [
        ("POST", "/healthz"),
        ("DELETE", "/metrics"),
        ("POST", "/nowhere"),
    ] {
        assert_eq!(
            admin(addr, method, path).await,
            (405, text.into(), "GET only\n".into()),
            "{method} {path}"
        );
    }
    for path in ["/nowhere", "/healthz/", "/.well-known/gatehouse/jwks.json"] {
        assert_eq!(
            admin(addr, "GET", path).await,
            (404, text.into(), "not found\n".into()),
            "{path}"
        );
    }
    gh.shutdown();
    assert!(gh.stopped().await);
}
