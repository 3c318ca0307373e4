//! The HTTP/1.1 connections to the app (`src/proxy/pool.rs`), seen from a real app that counts
//! the connections it accepts and has open: kept for the next request once a response has
//! been read to its end (whatever its framing), never given back when it was not, closed
//! after `upstream.pool_idle_timeout`, none kept with `upstream.pool_max_idle: 0`, and an
//! idle connection the app closed is replaced without the client seeing it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A real HTTP/1.1 app on `127.0.0.1:0` that counts its connections.
struct CountingApp {
    url: String,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingApp {
    /// `lifetime`: the app closes each connection this long after accepting it (between
    /// requests, as far as the tests go), without a `Connection: close`.
    async fn start(lifetime: Option<Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (counted, opened) = (accepted.clone(), open.clone());
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                opened.fetch_add(1, Ordering::SeqCst);
                let opened = opened.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(|request: Request<Incoming>| async move {
                            Ok::<_, Infallible>(answer(request.uri().path()))
                        });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    match lifetime {
                        Some(lifetime) => {
                            let _ = tokio::time::timeout(lifetime, connection).await;
                        }
                        None => {
                            let _ = connection.await;
                        }
                    }
                    opened.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            url,
            accepted,
            open,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// Every framing a response body can have, by path.
fn answer(path: &str) -> Response<BoxBody> {
    match path {
        "/empty" => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(empty())
            .unwrap(),
        // Chunked: no length known in advance.
        "/chunked" => Response::new(frames(3, 1024)),
        // Far more than the socket buffers hold, so a reader that stops leaves it unfinished.
        "/large" => Response::new(frames(256, 64 * 1024)),
        _ => Response::new(full("ok")),
    }
}

fn frames(count: usize, size: usize) -> BoxBody {
    let chunk = Bytes::from(vec![b'x'; size]);
    let frames = futures_util::stream::iter((0..count).map(move |_| {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(chunk.clone()))
    }));
    BodyExt::boxed(StreamBody::new(frames))
}

/// Gatehouse in front of `app`, with `upstream` (indented lines) added to its `upstream:`
/// section; the server and the test PKI live as long as the returned values.
async fn gatehouse(app: &CountingApp, upstream: &str) -> (gatehouse::server::Running, Client, Pki) {
    let pki = pki();
    let gh = start(&config_text(&pki, &format!("{}\n{upstream}", app.url), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    (gh, client, pki)
}

#[tokio::test]
async fn one_connection_serves_every_framing_one_after_another() {
    let app = CountingApp::start(None).await;
    let (_gh, client, _pki) = gatehouse(&app, "").await;
    for round in 0..3 {
        for path in ["/small", "/empty", "/chunked", "/small"] {
            let response = client.h1(get(path)).await;
            assert!(response.status().is_success(), "{path}: {response:?}");
        }
        let head = client
            .h1(Request::head("/small")
                .header("host", "localhost")
                .body(empty())
                .unwrap())
            .await;
        assert_eq!(head.status(), 200, "round {round}");
        assert!(head.body().is_empty());
    }
    assert_eq!(
        app.accepted(),
        1,
        "every request reused the first connection"
    );
}

#[tokio::test]
async fn a_response_left_unread_does_not_give_its_connection_back() {
    let app = CountingApp::start(None).await;
    let (_gh, client, _pki) = gatehouse(&app, "").await;
    let mut response = client.h1_streaming(get("/large")).await;
    assert_eq!(response.status(), 200);
    // One frame, then the client goes away.
    let frame = response.body_mut().frame().await.unwrap().unwrap();
    assert!(frame.is_data());
    drop(response);
    eventually(
        "the unfinished connection is closed",
        Duration::from_secs(5),
        || async { app.open() == 0 },
    )
    .await;
    let next = client.h1(get("/small")).await;
    assert_eq!(next.status(), 200);
    assert_eq!(next.body().as_ref(), b"ok");
    assert_eq!(
        app.accepted(),
        2,
        "the next request had a connection of its own"
    );
}

#[tokio::test]
async fn idle_connections_close_after_the_pool_idle_timeout() {
    let app = CountingApp::start(None).await;
    let (_gh, client, _pki) = gatehouse(&app, "  pool_idle_timeout: 200ms\n").await;
    let answers = futures_util::future::join_all((0..4).map(|_| client.h1(get("/small")))).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    assert!(app.accepted() >= 1);
    eventually(
        "every idle connection is closed",
        Duration::from_secs(5),
        || async { app.open() == 0 },
    )
    .await;
    // And the pool connects again afterwards.
    assert_eq!(client.h1(get("/small")).await.status(), 200);
}

#[tokio::test]
async fn pool_max_idle_zero_keeps_no_connection() {
    let app = CountingApp::start(None).await;
    let (_gh, client, _pki) = gatehouse(&app, "  pool_max_idle: 0\n").await;
    for _ in 0..4 {
        assert_eq!(client.h1(get("/small")).await.status(), 200);
    }
    assert_eq!(app.accepted(), 4);
    eventually("no connection is kept", Duration::from_secs(5), || async {
        app.open() == 0
    })
    .await;
}

#[tokio::test]
async fn pool_max_idle_bounds_the_connections_kept() {
    let app = CountingApp::start(None).await;
    let (_gh, client, _pki) = gatehouse(&app, "  pool_max_idle: 2\n").await;
    // Eight at once take eight connections (the app answers slowly enough to overlap them
    // only sometimes, so at least one and at most eight)...
    let answers = futures_util::future::join_all((0..8).map(|_| client.h1(get("/large")))).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    // ...of which at most two stay.
    eventually(
        "at most two connections stay open",
        Duration::from_secs(5),
        || async { app.open() <= 2 },
    )
    .await;
    let before = app.accepted();
    for _ in 0..4 {
        assert_eq!(client.h1(get("/small")).await.status(), 200);
    }
    assert_eq!(
        app.accepted(),
        before,
        "the kept connections serve what follows"
    );
}

#[tokio::test]
async fn an_idle_connection_the_app_closed_is_replaced_unseen() {
    let app = CountingApp::start(Some(Duration::from_millis(300))).await;
    let (_gh, client, _pki) = gatehouse(&app, "").await;
    for round in 1..=3 {
        let response = client.h1(get("/small")).await;
        assert_eq!(response.status(), 200, "round {round}");
        assert_eq!(response.body().as_ref(), b"ok");
        // The app closes the idle connection; the next request must not notice.
        eventually(
            "the app closed its connection",
            Duration::from_secs(5),
            || async { app.open() == 0 },
        )
        .await;
        assert_eq!(app.accepted(), round);
    }
}
