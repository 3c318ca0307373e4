//! gRPC and HTTP/2 to the app (`upstream.protocol: h2c`), end to end over real sockets and TLS.
//!
//! The gRPC app and client are grpcio (Debian's python3-grpcio, driven by tests/grpc/peer.py):
//! the C-core implementation, a different HTTP/2 stack from the hyper/h2 one Gatehouse uses,
//! so the two cannot share a misreading of the protocol. Where a test needs what no gRPC
//! library lets a client do (its own `grpc-timeout`, request trailers, a stream reset by the
//! app) hyper and the `h2` crate speak for the client or the app.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "grpc/support.rs"]
mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use common::*;
use support::*;

fn grpc_request(path: &str, body: BoxBody) -> Request<BoxBody> {
    Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap()
}

/// One gRPC message frame holding `payload`.
fn frame(payload: &[u8]) -> Bytes {
    let mut b = vec![0];
    b.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    b.extend_from_slice(payload);
    Bytes::from(b)
}

#[tokio::test]
async fn unary_and_streaming_rpcs_carry_trailers_and_identity() {
    let app = GrpcApp::start(&[]);
    let f = Fixture::start(&app.url, "").await;
    let token = f.token("alice", &["reader"]);

    let unary = f.call("unary", Some(&token), "").await;
    assert_eq!(unary["code"], "OK", "{unary}");
    let seen = &unary["response"]["metadata"];
    assert_eq!(seen["x-user-id"], "alice");
    assert_eq!(seen["x-user-roles"], "reader");
    assert_eq!(seen["x-custom"], "c1");
    assert!(seen.get("authorization").is_none(), "{seen}");
    assert_eq!(unary["response"]["body"], "hello");
    assert_eq!(unary["initial"]["x-initial"], "i1");
    assert_eq!(unary["trailing"]["x-trailer"], "t1");

    let streams = f.call("streams", Some(&token), "").await;
    assert_eq!(streams["code"], "OK", "{streams}");
    assert_eq!(
        streams["server_stream"],
        serde_json::json!(["m0", "m1", "m2", "m3", "m4"])
    );
    assert_eq!(streams["server_stream_trailing"]["x-trailer"], "done");
    assert_eq!(streams["client_stream"], "10000");
    assert_eq!(streams["bidi"], serde_json::json!(["a", "b", "c"]));
}

#[tokio::test]
async fn h2c_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("app.sock");
    let app = GrpcApp::start(&["--unix", socket.to_str().unwrap()]);
    let f = Fixture::start(&app.url, "").await;
    let token = f.token("bob", &[]);
    let unary = f.call("unary", Some(&token), "").await;
    assert_eq!(unary["code"], "OK", "{unary}");
    assert_eq!(unary["response"]["metadata"]["x-user-id"], "bob");
    assert_eq!(unary["trailing"]["x-trailer"], "t1");
}

#[tokio::test]
async fn denials_are_grpc_statuses() {
    let app = GrpcApp::start(&[]);
    let f = Fixture::start(&app.url, "").await;

    let anonymous = f.call("unary", None, "").await;
    assert_eq!(anonymous["code"], "UNAUTHENTICATED", "{anonymous}");
    assert_eq!(anonymous["details"], "this route needs authentication");
    assert_eq!(
        anonymous["trailing"]["www-authenticate"],
        "Bearer realm=\"gatehouse\""
    );

    let reader = f.token("alice", &["reader"]);
    let denied = f.call("admin", Some(&reader), "").await;
    assert_eq!(denied["code"], "PERMISSION_DENIED", "{denied}");
    assert_eq!(denied["details"], "this route needs role one of admin");

    let admin = f.token("root", &["admin"]);
    let allowed = f.call("admin", Some(&admin), "").await;
    assert_eq!(allowed["code"], "OK", "{allowed}");

    let forged = format!("{reader}x");
    let invalid = f.call("unary", Some(&forged), "").await;
    assert_eq!(invalid["code"], "UNAUTHENTICATED", "{invalid}");
    assert!(
        invalid["trailing"]["www-authenticate"]
            .as_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[tokio::test]
async fn app_down_is_unavailable() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let f = Fixture::start(&url, "").await;
    let token = f.token("alice", &[]);
    let down = f.call("unary", Some(&token), "").await;
    assert_eq!(down["code"], "UNAVAILABLE", "{down}");
    assert_eq!(down["details"], "the application is not answering");
}

/// grpcio clients enforce their deadline themselves, so this client is hyper: it sends
/// `grpc-timeout` and waits, and only Gatehouse can end the call.
#[tokio::test]
async fn grpc_timeout_bounds_the_wait_for_the_app() {
    let app = GrpcApp::start(&[]);
    let f = Fixture::start(&app.url, "").await;
    let token = f.token("alice", &[]);
    let client = Client::new(f.gh.https_addr.unwrap(), &f.pki.paths.ca_cert);
    let mut request = grpc_request("/test.Echo/Hang", full(frame(b"")));
    let headers = request.headers_mut();
    headers.insert("grpc-timeout", "300m".parse().unwrap());
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let response = client.h2(request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "4");
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert!(response.body().is_empty());
    // Giving up on the app cancels its call.
    app.wait_for("CANCELLED Hang").await;
}

#[tokio::test]
async fn client_cancellation_reaches_the_app() {
    let app = GrpcApp::start(&[]);
    let f = Fixture::start(&app.url, "").await;
    let token = f.token("alice", &[]);
    let call = PendingCall::start(f.port(), &f.pki.paths.ca_cert, &token);
    app.wait_for("STARTED Hang").await;
    assert!(!app.saw("CANCELLED Hang"));
    let report = call.cancel();
    assert_eq!(report["code"], "CANCELLED");
    app.wait_for("CANCELLED Hang").await;
}

#[tokio::test]
async fn readyz_waits_for_the_apps_grpc_health() {
    for (health, ready) in [("NOT_SERVING", false), ("SERVING", true)] {
        let app = GrpcApp::start(&["--health", health]);
        let pki = pki();
        let upstream = format!("{}\n  protocol: h2c\n  health: grpc", app.url);
        let gh = start(&config_text(&pki, &upstream, "")).await;
        let admin = gh.admin_addr;
        let (status, body) = admin_get(admin, "/readyz").await;
        assert_eq!(status, 503, "{body}");
        if ready {
            eventually("ready once the app serves", WAIT, || async move {
                admin_get(admin, "/readyz").await.0 == 200
            })
            .await;
        } else {
            // A second check is sent only after the first answer was read: by then the
            // app has said twice that it is not serving, and Gatehouse must still not be ready.
            eventually("two health checks", WAIT, || async {
                app.count("HEALTH NOT_SERVING") >= 2
            })
            .await;
            let (status, body) = admin_get(admin, "/readyz").await;
            assert_eq!(status, 503);
            assert!(body.contains("app health"), "{body}");
        }
    }
}

/// What the hyper h2c app of the next tests saw: the trailers of each request.
type SeenTrailers = Arc<Mutex<Vec<Option<HeaderMap>>>>;

/// An h2c app (hyper) that reads each request whole, records its trailers, and answers with
/// a body and trailers of its own.
async fn trailers_app() -> (String, SeenTrailers) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: SeenTrailers = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = record.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        let collected = request.into_body().collect().await.unwrap();
                        record.lock().unwrap().push(collected.trailers().cloned());
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        trailers.insert("x-app-trailer", "yes".parse().unwrap());
                        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
                            Ok(Frame::data(frame(b"answer"))),
                            Ok(Frame::trailers(trailers)),
                        ];
                        let body = StreamBody::new(futures_util::stream::iter(frames));
                        let response = Response::builder()
                            .header("content-type", "application/grpc")
                            .body(body)
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

/// A body of one data frame and then trailers.
fn with_trailers(data: Bytes, name: &'static str, value: &'static str) -> BoxBody {
    let mut trailers = HeaderMap::new();
    trailers.insert(name, value.parse().unwrap());
    let frames: Vec<Result<Frame<Bytes>, Infallible>> =
        vec![Ok(Frame::data(data)), Ok(Frame::trailers(trailers))];
    StreamBody::new(futures_util::stream::iter(frames))
        .map_err(|e| match e {})
        .boxed()
}

#[tokio::test]
async fn trailers_pass_both_ways_and_http1_clients_are_translated() {
    let (url, seen) = trailers_app().await;
    let f = Fixture::start(&url, "").await;
    let token = f.token("alice", &[]);
    let client = Client::new(f.gh.https_addr.unwrap(), &f.pki.paths.ca_cert);
    let auth = format!("Bearer {token}");

    // HTTP/2 client: request trailers reach the app, the app's trailers reach the client.
    let mut request = grpc_request(
        "/test.Echo/Unary",
        with_trailers(frame(b"q"), "x-client-trailer", "c"),
    );
    request
        .headers_mut()
        .insert("authorization", auth.parse().unwrap());
    let response = client.h2_streaming(request).await;
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap();
    assert_eq!(trailers["x-app-trailer"], "yes");
    assert_eq!(collected.to_bytes(), frame(b"answer"));
    let first = seen.lock().unwrap()[0].clone().unwrap();
    assert_eq!(first["x-client-trailer"], "c");

    // HTTP/1.1 client, chunked with trailers: the same, translated to and from HTTP/2 (an
    // HTTP/1.1 answer carries the trailers its `Trailer` header names: gRPC's).
    let mut request = grpc_request(
        "/test.Echo/Unary",
        with_trailers(frame(b"q"), "x-client-trailer", "h1"),
    );
    let headers = request.headers_mut();
    headers.insert("authorization", auth.parse().unwrap());
    headers.insert("transfer-encoding", "chunked".parse().unwrap());
    headers.insert("trailer", "x-client-trailer".parse().unwrap());
    let response = client.h1_streaming(request).await;
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    assert!(!trailers.contains_key("x-app-trailer"));
    assert_eq!(collected.to_bytes(), frame(b"answer"));
    let second = seen.lock().unwrap()[1].clone().unwrap();
    assert_eq!(second["x-client-trailer"], "h1");
}

#[tokio::test]
async fn a_stream_the_app_resets_is_reset_for_the_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((_, mut respond))) = conn.accept().await {
                    respond.send_reset(h2::Reason::ENHANCE_YOUR_CALM);
                }
            });
        }
    });
    let f = Fixture::start(&url, "").await;
    let token = f.token("alice", &[]);
    let tls = tls_connect(
        f.gh.https_addr.unwrap(),
        "localhost",
        client_config(&f.pki.paths.ca_cert, &[b"h2"]),
    )
    .await
    .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut request = grpc_request("/test.Echo/Unary", full(frame(b"")));
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let error = sender.send_request(request).await.unwrap_err();
    let reason = std::error::Error::source(&error)
        .and_then(|s| s.downcast_ref::<h2::Error>())
        .and_then(h2::Error::reason);
    assert_eq!(reason, Some(h2::Reason::ENHANCE_YOUR_CALM), "{error:?}");
}
