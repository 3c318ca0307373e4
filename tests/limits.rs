//! Connection and request limits over real TLS: header size and count, slow headers, idle
//! connections, the connection cap, and the admin endpoints staying off the public port.

mod common;

use std::time::Duration;

use common::*;
use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const LIMIT: Duration = Duration::from_secs(10);

fn with_limits(limits: &str) -> String {
    format!("limits:\n{limits}")
}

#[tokio::test]
async fn oversize_header_block_gets_431_and_never_reaches_the_upstream() {
    let pki = pki();
    let app = ok_upstream().await;
    // Default limits.max_header_bytes: 16384.
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);

    let request = Request::get("/big")
        .header("host", "localhost")
        .header("x-big", "a".repeat(40 * 1024))
        .body(empty())
        .unwrap();
    assert_eq!(client.h1(request).await.status(), 431);
    assert!(app.seen().is_empty(), "{:?}", app.seen());

    // Control: a header just under the limit is forwarded.
    let request = Request::get("/fits")
        .header("host", "localhost")
        .header("x-big", "a".repeat(12 * 1024))
        .body(empty())
        .unwrap();
    assert_eq!(client.h1(request).await.status(), 200);
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/fits");
}

#[tokio::test]
async fn too_many_headers_get_431_and_never_reach_the_upstream() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(
        &pki,
        &app.url(),
        &with_limits("  max_headers: 10\n"),
    ))
    .await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let with_headers = |path: &str, count: usize| {
        let mut request = Request::get(path).header("host", "localhost");
        for i in 0..count {
            request = request.header(format!("x-h{i}"), "1");
        }
        request.body(empty()).unwrap()
    };

    assert_eq!(client.h1(with_headers("/many", 20)).await.status(), 431);
    assert!(app.seen().is_empty(), "{:?}", app.seen());

    assert_eq!(client.h1(with_headers("/few", 5)).await.status(), 200);
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/few");
}

#[tokio::test]
async fn oversize_http2_headers_never_reach_the_upstream() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let tls = tls_connect(
        gh.https_addr.unwrap(),
        "localhost",
        client_config(&pki.paths.ca_cert, &[b"h2"]),
    )
    .await
    .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = Request::get("https://localhost/big")
        .header("x-big", "a".repeat(40 * 1024))
        .body(empty())
        .unwrap();
    // h2 answers an oversize header list itself with 431 and resets the stream; hyper never
    // sees the request.
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 431);
    assert!(app.seen().is_empty(), "{:?}", app.seen());

    // The connection survives: only that stream was refused.
    let request = Request::get("https://localhost/fits")
        .body(empty())
        .unwrap();
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/fits");
}

#[tokio::test]
async fn slow_headers_are_cut_off_by_the_header_read_timeout() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(
        &pki,
        &app.url(),
        &with_limits("  header_read_timeout: 500ms\n"),
    ))
    .await;
    let tls = tls_connect(
        gh.https_addr.unwrap(),
        "localhost",
        client_config(&pki.paths.ca_cert, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut reader, mut writer) = tokio::io::split(tls);
    let closed = tokio::spawn(async move { read_until_closed(&mut reader, LIMIT).await });

    writer
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    writer.flush().await.unwrap();
    // One header byte every 100 ms, for at most 5 s: ten times the timeout.
    let mut sent = 0;
    while sent < 50 && !closed.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let write = async {
            writer.write_all(b"a").await?;
            writer.flush().await
        };
        if write.await.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent < 50, "still open after 5 s of trickled headers");
    let answer = tokio::time::timeout(LIMIT, closed)
        .await
        .unwrap()
        .unwrap()
        .expect("the server did not close the connection");
    // hyper closes without an answer on a header timeout; a 408 would be acceptable too.
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(app.seen().is_empty(), "{:?}", app.seen());
}

#[tokio::test]
async fn idle_http1_connection_is_closed() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(
        &pki,
        &app.url(),
        &with_limits("  idle_timeout: 300ms\n"),
    ))
    .await;
    let tls = tls_connect(
        gh.https_addr.unwrap(),
        "localhost",
        client_config(&pki.paths.ca_cert, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let response = collect(sender.send_request(get("/")).await.unwrap()).await;
    assert_eq!(response.status(), 200);

    // Well under the 10 s header-read timeout, which also closes idle HTTP/1.1 connections.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle connection was not closed")
        .unwrap()
        .unwrap();
    assert!(sender.send_request(get("/")).await.is_err());
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn idle_http2_connection_is_closed() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(
        &pki,
        &app.url(),
        &with_limits("  idle_timeout: 300ms\n"),
    ))
    .await;
    let tls = tls_connect(
        gh.https_addr.unwrap(),
        "localhost",
        client_config(&pki.paths.ca_cert, &[b"h2"]),
    )
    .await
    .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let request = Request::get("https://localhost/").body(empty()).unwrap();
    let response = collect(sender.send_request(request).await.unwrap()).await;
    assert_eq!(response.status(), 200);

    // GOAWAY, then the connection ends: the client's connection task finishes.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle HTTP/2 connection was not closed")
        .unwrap()
        .unwrap();
    let request = Request::get("https://localhost/").body(empty()).unwrap();
    assert!(sender.send_request(request).await.is_err());
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(
        &pki,
        &app.url(),
        &with_limits("  max_connections: 2\n"),
    ))
    .await;
    let addr = gh.https_addr.unwrap();
    let config = client_config(&pki.paths.ca_cert, &[b"http/1.1"]);
    let first = tls_connect(addr, "localhost", config.clone())
        .await
        .unwrap();
    let second = tls_connect(addr, "localhost", config.clone())
        .await
        .unwrap();

    // The kernel completes the TCP handshake (the accept queue), but Gatehouse does not accept
    // the connection, so the TLS handshake cannot finish.
    let tcp = tokio::time::timeout(LIMIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut third = tokio::spawn(TlsConnector::from(config).connect(name, tcp));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut third)
            .await
            .is_err(),
        "a third connection completed its handshake at max_connections: 2"
    );

    drop(first);
    let third = tokio::time::timeout(LIMIT, third)
        .await
        .expect("the third handshake did not complete after a slot freed")
        .unwrap()
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(third))
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(sender.send_request(get("/")).await.unwrap().status(), 200);
    drop(second);
}

#[tokio::test]
async fn admin_paths_on_the_public_port_go_to_the_upstream() {
    let pki = pki();
    let app =
        upstream(
            |request| async move { Response::new(full(format!("app {}", request.uri().path()))) },
        )
        .await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let paths = ["/healthz", "/readyz", "/metrics"];
    for path in paths {
        let response = client.h1(get(path)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), format!("app {path}").as_bytes());
        let request = Request::get(format!("https://localhost{path}"))
            .body(empty())
            .unwrap();
        let response = client.h2(request).await;
        assert_eq!(response.body().as_ref(), format!("app {path}").as_bytes());
    }
    let seen: Vec<String> = app.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        seen,
        [
            "/healthz", "/healthz", "/readyz", "/readyz", "/metrics", "/metrics"
        ]
    );

    assert_eq!(
        admin_get(gh.admin_addr, "/readyz").await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(
        admin_get(gh.admin_addr, "/healthz").await,
        (200, "ok\n".to_owned())
    );
}

/// utime + stime of `pid`, in seconds.
#[allow(clippy::unwrap_used)]
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// The `Max open files` line of `/proc/PID/limits`, soft and hard.
#[allow(clippy::unwrap_used)]
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .unwrap();
    let mut fields = line.split_whitespace();
    let soft = fields.next().unwrap().to_owned();
    let hard = fields.next().unwrap().to_owned();
    (soft, hard)
}

/// With few descriptors (a soft limit of 32, a hard one of 64), Gatehouse raises the soft
/// limit to the hard one and shares it out: a reserve of 16, a quarter of the rest (12) for
/// connections to the app, and at most the other 36 client connections at once, with a
/// warning that says so. So 80 clients at once are all served, in turn, instead of Gatehouse
/// accepting them all and the requests failing with 502 for want of a descriptor to the app
/// (what `drills/run`'s `limits-nofile` found: every request failed while descriptors were
/// used up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_descriptor_limit_caps_connections_so_every_accepted_request_reaches_the_app() {
    let pki = pki();
    let app = upstream(|_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Response::new(full("ok"))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &config_text(&pki, &app.url(), ""));
    let gh = spawn_binary_under(&["prlimit", "--nofile=32:64"], &file);
    assert_eq!(
        open_files_limit(gh.pid()),
        ("64".to_owned(), "64".to_owned()),
        "the soft limit is raised to the hard one"
    );
    gh.wait_for_log("RLIMIT_NOFILE").await;
    let warning = gh
        .log_lines()
        .into_iter()
        .find(|l| l.contains("RLIMIT_NOFILE"))
        .unwrap();
    let fields: serde_json::Value = serde_json::from_str(&warning).unwrap();
    assert_eq!(fields["level"], "WARN", "{warning}");
    assert_eq!(fields["taking"], 36, "{warning}");
    assert_eq!(fields["upstream_connections"], 12, "{warning}");
    assert_eq!(fields["rlimit_nofile"], 64, "{warning}");
    assert_eq!(fields["max_connections"], 4096, "{warning}");

    let client = Client::new(gh.https.unwrap(), &pki.paths.ca_cert);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..80 {
        let client = client.clone();
        clients.spawn(async move { client.h1(get(&format!("/at-once/{i}"))).await.status() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = clients.join_next().await {
        statuses.push(status.unwrap().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.seen().len(), 80);
    assert_eq!(
        metric(gh.admin, "gatehouse_accept_errors_total{kind=\"emfile\"}").await,
        0.0
    );
}

/// Out of file descriptors, `accept` fails with EMFILE for as long as that lasts. Gatehouse
/// must back off (little CPU), count the failures, log them a few times rather than once per
/// retry, and serve again soon after descriptors come back. The descriptor budget keeps
/// clients and their connections to the app from getting there (the test above), so this
/// takes a limit (16) too low for even the budget's reserve to cover what Gatehouse holds
/// itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_accept_backs_off_logs_rarely_and_recovers() {
    let pki = pki();
    let app = ok_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &config_text(&pki, &app.url(), ""));
    let gh = spawn_binary_under(&["prlimit", "--nofile=16:16"], &file);
    assert_eq!(
        open_files_limit(gh.pid()),
        ("16".to_owned(), "16".to_owned())
    );
    let addr = gh.https.unwrap();
    let client = Client::new(addr, &pki.paths.ca_cert);
    assert_eq!(client.h1(get("/before")).await.status(), 200);

    // Plain TCP connections: the kernel completes them; Gatehouse accepts until it has no
    // descriptor left, and each accepted one waits in its TLS handshake.
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failure_lines = |gh: &Process| {
        gh.log_lines()
            .iter()
            .filter(|l| l.contains("accept failed"))
            .count()
    };
    assert!(failure_lines(&gh) >= 1, "no `accept failed` line");
    let lines0 = failure_lines(&gh);
    let cpu0 = cpu_seconds(gh.pid());
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let cpu = cpu_seconds(gh.pid()) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    assert!(
        cpu < 0.25 * wall,
        "{cpu:.2} s of CPU in {wall:.1} s while out of descriptors"
    );
    // Once per retry (every 50 ms) before the fix; at most one summary line per 10 s now.
    let failures = failure_lines(&gh) - lines0;
    assert!(
        failures <= 1,
        "{failures} more `accept failed` lines in {wall:.1} s: {:#?}",
        gh.log_lines()
    );

    drop(held);
    // Within a second or two the descriptors are back and new clients are served again.
    let t_back = std::time::Instant::now();
    let config = client_config(&pki.paths.ca_cert, &[b"http/1.1"]);
    eventually(
        "a new client is served again",
        Duration::from_secs(3),
        || {
            let config = config.clone();
            async move {
                let tls = tokio::time::timeout(
                    Duration::from_millis(500),
                    tls_connect(addr, "localhost", config),
                )
                .await;
                matches!(tls, Ok(Ok(_)))
            }
        },
    )
    .await;
    assert_eq!(client.h1(get("/after")).await.status(), 200);
    assert!(
        t_back.elapsed() < Duration::from_secs(2),
        "{:?}",
        t_back.elapsed()
    );
    let counted = metric(gh.admin, "gatehouse_accept_errors_total{kind=\"emfile\"}").await;
    assert!(
        counted >= 2.0,
        "gatehouse_accept_errors_total{{kind=\"emfile\"}} {counted}"
    );
    let mut gh = gh;
    assert!(gh.child.try_wait().unwrap().is_none());
}
