//! A 100 MB bidirectional gRPC stream through Gatehouse (`h2c`) with flat memory: HTTP/2 flow
//! control on both sides must hold the bytes back, not Gatehouse's buffers.
//!
//! Alone in its own test binary, so that no other test's allocations land in the measure:
//! the process's peak RSS (`VmHWM`, reset through `/proc/self/clear_refs` just before the
//! stream) must grow by far less than what passed. The grpcio app and client are other
//! processes. No timing is involved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "grpc/support.rs"]
#[allow(dead_code)]
mod support;

use support::*;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_bidi_stream_passes_with_flat_memory() {
    let app = GrpcApp::start(&[]);
    let f = Fixture::start(&app.url, "").await;
    let token = f.token("alice", &[]);
    // Warm up: connections, TLS sessions and buffers exist before the measure starts.
    let warm = f.call("big", Some(&token), "4").await;
    assert_eq!(warm["code"], "OK", "{warm}");

    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    let big = f.call("big", Some(&token), "100").await;
    assert_eq!(big["code"], "OK", "{big}");
    assert_eq!(big["bytes"], 100 << 20);
    let growth_mib = status_kib("VmHWM:").saturating_sub(before) / 1024;
    eprintln!("peak RSS growth while 100 MB streamed each way: {growth_mib} MiB");
    assert!(growth_mib < 32, "memory grew by {growth_mib} MiB");
}
