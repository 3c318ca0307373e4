//! Forwarding through real TLS to a real upstream: HTTP/1.1 and HTTP/2, header hygiene in both
//! directions, `X-Forwarded-*` trust rules, request ids, 502 and 504.

mod common;

use std::time::Duration;

use common::*;
use http::{Request, Response};

#[tokio::test]
async fn http1_and_http2_reach_the_upstream_as_http1() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);

    let r1 = client.h1(get("/one?a=1")).await;
    assert_eq!(r1.status(), 200);
    assert_eq!(r1.body().as_ref(), b"ok");
    assert!(r1.headers().contains_key("x-request-id"));

    let r2 = client
        .h2(Request::get("https://localhost/two?b=2")
            .body(empty())
            .unwrap())
        .await;
    assert_eq!(r2.status(), 200);
    assert_eq!(r2.version(), http::Version::HTTP_2);

    let seen = app.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].uri, "/one?a=1");
    assert_eq!(seen[1].uri, "/two?b=2");
    assert_eq!(seen[1].header("host"), Some("localhost"));
    for s in &seen {
        assert_eq!(s.header("x-forwarded-proto"), Some("https"));
        assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(s.header("x-forwarded-host"), Some("localhost"));
    }
}

#[tokio::test]
async fn hop_by_hop_and_connection_named_headers_are_removed_both_ways() {
    let pki = pki();
    let app = upstream(|_| async {
        Response::builder()
            .header("connection", "X-Upstream-Private, keep-alive")
            .header("x-upstream-private", "secret")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("x-public", "yes")
            .body(full("ok"))
            .unwrap()
    })
    .await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);

    let request = Request::get("/h")
        .header("host", "localhost")
        .header("connection", "X-Drop-Me, x-user-id")
        .header("x-drop-me", "1")
        .header("X-User-Id", "mallory")
        .header("keep-alive", "300")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("x-kept", "1")
        .body(empty())
        .unwrap();
    let response = client.h1(request).await;
    assert_eq!(response.status(), 200);
    for gone in ["x-upstream-private", "keep-alive", "proxy-authenticate"] {
        assert!(
            !response.headers().contains_key(gone),
            "{gone} reached the client"
        );
    }
    assert_eq!(response.headers()["x-public"], "yes");

    let seen = &app.seen()[0];
    for gone in [
        "x-drop-me",
        "x-user-id",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(seen.header(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(seen.header("x-kept"), Some("1"));
}

#[tokio::test]
async fn forwarding_headers_are_trusted_only_from_configured_cidrs() {
    let pki = pki();
    let app = ok_upstream().await;
    let spoof = || {
        Request::get("/f")
            .header("host", "localhost")
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", "evil.example")
            .header("x-real-ip", "203.0.113.9")
            .header("forwarded", "for=203.0.113.9")
            .body(empty())
            .unwrap()
    };

    let untrusting = start(&config_text(
        &pki,
        &app.url(),
        "trusted_proxies: [10.0.0.0/8]\n",
    ))
    .await;
    Client::new(untrusting.https_addr.unwrap(), &pki.paths.ca_cert)
        .h1(spoof())
        .await;
    let seen = &app.seen()[0];
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("localhost"));
    assert_eq!(seen.header("x-real-ip"), None);
    assert_eq!(seen.header("forwarded"), None);

    let trusting = start(&config_text(
        &pki,
        &app.url(),
        "trusted_proxies: [127.0.0.0/8]\n",
    ))
    .await;
    Client::new(trusting.https_addr.unwrap(), &pki.paths.ca_cert)
        .h1(spoof())
        .await;
    let seen = &app.seen()[1];
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("evil.example"));
}

#[tokio::test]
async fn request_id_is_passed_through_or_generated() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let given = Request::get("/")
        .header("host", "localhost")
        .header("x-request-id", "trace-abc-123")
        .body(empty())
        .unwrap();
    let response = client.h1(given).await;
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
    let response = client.h1(get("/")).await;
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(generated, "trace-abc-123");
    let seen = app.seen();
    assert_eq!(seen[0].header("x-request-id"), Some("trace-abc-123"));
    assert_eq!(seen[1].header("x-request-id"), Some(generated.as_str()));
}

#[tokio::test]
async fn refused_upstream_is_502_and_slow_upstream_is_504() {
    let pki = pki();
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let gh = start(&config_text(&pki, &format!("http://{closed}"), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let response = client.h1(get("/")).await;
    assert_eq!(response.status(), 502);
    let body = String::from_utf8_lossy(response.body()).into_owned();
    assert!(body.contains("upstream_connect"), "{body}");
    assert!(
        !body.contains(&closed.port().to_string()),
        "the body leaks the address: {body}"
    );

    let slow = upstream(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Response::new(full("late"))
    })
    .await;
    let text = config_text(&pki, &slow.url(), "").replace(
        &format!("url: {}\n", slow.url()),
        &format!("url: {}\n  timeout: 200ms\n", slow.url()),
    );
    let gh = start(&text).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let response = client.h1(get("/")).await;
    assert_eq!(response.status(), 504);
    assert!(String::from_utf8_lossy(response.body()).contains("upstream_timeout"));
    let errors = metric(
        gh.admin_addr,
        "gatehouse_upstream_errors_total{kind=\"upstream_timeout\"}",
    )
    .await;
    assert!(errors >= 1.0);
}

#[tokio::test]
async fn unix_socket_upstream() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: Request<hyper::body::Incoming>| async move {
                        Ok::<_, std::convert::Infallible>(Response::new(full(format!(
                            "unix {}",
                            request.uri()
                        ))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let gh = start(&config_text(
        &pki,
        &format!("unix:{}", socket.display()),
        "",
    ))
    .await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let response = client.h1(get("/via/socket?q=1")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"unix /via/socket?q=1");
}

#[tokio::test]
async fn absolute_form_target_forwards_only_the_path() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let request = Request::get("https://other.example/abs?x=1")
        .header("host", "localhost")
        .body(empty())
        .unwrap();
    assert_eq!(client.h1(request).await.status(), 200);
    let seen = &app.seen()[0];
    assert_eq!(seen.uri, "/abs?x=1");
    assert_eq!(seen.header("host"), Some("other.example"));
}

#[tokio::test]
async fn the_upstream_receives_the_canonical_path_and_ambiguous_paths_get_400() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    for (sent, forwarded) in [
        ("/public/%2e%2e/admin?x=1", "/admin?x=1"),
        ("//a/./b/../c;jsessionid=1", "/a/c"),
        ("/%61pi/v1", "/api/v1"),
    ] {
        let response = client.h1(get(sent)).await;
        assert_eq!(response.status(), 200, "{sent}");
        assert_eq!(app.seen().last().unwrap().uri, forwarded, "{sent}");
    }
    let before = app.seen().len();
    for refused in [
        "/public/..%2fadmin",
        "/admin%00",
        "/a%5cb",
        "/../etc/passwd",
        "/%ff",
    ] {
        let response = client.h1(get(refused)).await;
        assert_eq!(response.status(), 400, "{refused}");
        let body = String::from_utf8_lossy(response.body()).into_owned();
        assert!(body.contains("bad_path"), "{refused}: {body}");
    }
    assert_eq!(
        app.seen().len(),
        before,
        "a refused path reached the upstream"
    );
}

/// A request body fed by the test, one chunk at a time.
struct ChannelBody(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
    }
}

#[tokio::test]
async fn a_slow_upload_is_not_an_upstream_timeout() {
    use http_body_util::BodyExt;
    let pki = pki();
    let app = upstream(|request: Request<hyper::body::Incoming>| async move {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(format!("got {}", body.len())))
    })
    .await;
    let text = config_text(&pki, &app.url(), "").replace(
        &format!("url: {}\n", app.url()),
        &format!("url: {}\n  timeout: 300ms\n", app.url()),
    );
    let gh = start(&text).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let request = Request::post("/upload")
        .header("host", "localhost")
        .body(ChannelBody(rx).boxed())
        .unwrap();
    let sender = tokio::spawn(async move {
        tx.send(bytes::Bytes::from_static(b"first ")).await.unwrap();
        // The client is slow: longer than the upstream timeout passes mid-upload.
        tokio::time::sleep(Duration::from_millis(700)).await;
        tx.send(bytes::Bytes::from_static(b"second")).await.unwrap();
    });
    let response = client.h1(request).await;
    sender.await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.body());
    assert_eq!(response.body().as_ref(), b"got 12");
}
