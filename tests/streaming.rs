//! Bodies stream through the proxy in both directions: 1 GiB each way through the real binary
//! with its peak memory bounded, and a response whose chunks reach the client as they are sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use tokio::sync::Notify;

const GIB: u64 = 1 << 30;
const CHUNK: usize = 64 * 1024;
/// The proxy's peak resident memory after moving 2 GiB must stay under this.
const RSS_LIMIT_KIB: u64 = 100 * 1024;

/// A body of `total` bytes made on the fly from one shared 64 KiB chunk.
fn generated(total: u64) -> BoxBody {
    let chunk = Bytes::from(vec![b'g'; CHUNK]);
    let frames = futures_util::stream::unfold(0u64, move |sent| {
        let chunk = chunk.clone();
        async move {
            let left = total - sent;
            if left == 0 {
                return None;
            }
            let n = usize::try_from(left.min(CHUNK as u64)).unwrap();
            let frame =
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(chunk.slice(..n)));
            Some((frame, sent + n as u64))
        }
    });
    BodyExt::boxed(StreamBody::new(frames))
}

/// Reads a body frame by frame, keeping only the count.
async fn count(mut body: Incoming) -> u64 {
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        bytes += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_each_way_through_the_binary_with_bounded_memory() {
    let pki = pki();
    let app = upstream(|request: Request<Incoming>| async move {
        if request.uri().path() == "/download" {
            return Response::new(generated(GIB));
        }
        let received = count(request.into_body()).await;
        Response::new(full(received.to_string()))
    })
    .await;
    let file = write_config(pki.dir.path(), &config_text(&pki, &app.url(), ""));
    let gh = spawn_binary(&file);
    let client = Client::new(gh.https.unwrap(), &pki.paths.ca_cert);

    let started = Instant::now();
    let upload = Request::post("/upload")
        .header("host", "localhost")
        .header("content-length", GIB)
        .body(generated(GIB))
        .unwrap();
    let response = client.h1(upload).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), GIB.to_string().as_bytes());
    let upload_time = started.elapsed();

    let started = Instant::now();
    let response = client.h1_streaming(get("/download")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(count(response.into_body()).await, GIB);
    let download_time = started.elapsed();

    let peak = gh.peak_rss_kib();
    eprintln!(
        "1 GiB up in {upload_time:?}, 1 GiB down in {download_time:?}, proxy peak RSS {} MiB",
        peak / 1024
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "the proxy's peak RSS was {peak} KiB: bodies are being buffered"
    );
}

/// The upstream sends a first chunk, then waits for the test, which releases it only once
/// the client holds that chunk: a proxy that buffered the response would never deliver it.
async fn first_chunk_arrives_before_the_rest_is_sent(http2: bool) {
    let pki = pki();
    let release = Arc::new(Notify::new());
    let app = {
        let release = release.clone();
        upstream(move |_| {
            let release = release.clone();
            async move {
                let frames = futures_util::stream::unfold(0, move |step| {
                    let release = release.clone();
                    async move {
                        let data = match step {
                            0 => "first chunk;",
                            1 => {
                                release.notified().await;
                                "the rest"
                            }
                            _ => return None,
                        };
                        let frame = Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(
                            Bytes::from_static(data.as_bytes()),
                        ));
                        Some((frame, step + 1))
                    }
                });
                Response::new(BodyExt::boxed(StreamBody::new(frames)))
            }
        })
        .await
    };
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let response = if http2 {
        let request = Request::get("https://localhost/stream")
            .body(empty())
            .unwrap();
        client.h2_streaming(request).await
    } else {
        client.h1_streaming(get("/stream")).await
    };
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();

    let mut received = Vec::new();
    while received != b"first chunk;" {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("the first chunk did not arrive while the upstream held the rest back")
            .unwrap()
            .unwrap();
        received.extend_from_slice(frame.data_ref().unwrap());
        assert!(received.len() <= 12, "unexpected data: {received:?}");
    }

    release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the rest of the body did not arrive")
        .unwrap()
        .to_bytes();
    assert_eq!(rest.as_ref(), b"the rest");
}

#[tokio::test]
async fn http1_response_chunks_arrive_as_they_are_sent() {
    first_chunk_arrives_before_the_rest_is_sent(false).await;
}

#[tokio::test]
async fn http2_response_chunks_arrive_as_they_are_sent() {
    first_chunk_arrives_before_the_rest_is_sent(true).await;
}
