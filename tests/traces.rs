//! Traces end to end: the real binary with `telemetry.otlp` pointing at an OTLP/HTTP receiver
//! in this test (it decodes what Gatehouse posts to `/v1/traces` with the
//! `opentelemetry-proto` types), a real IdP and a real upstream on `127.0.0.1:0`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gatehouse::auth::signing::Signer;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use jsonwebtoken::Algorithm;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::json;
use tokio::net::TcpListener;

use common::idp::Idp;
use common::*;

const WAIT: Duration = Duration::from_secs(30);
const AUDIENCE: &str = "trace-tests";
const POLICY: &str = "version: 1
routes:
  - name: api
    path: /api/**
    auth: bearer
";
/// A client's own trace context.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver: every request body as sent, and the spans decoded from them.
struct Receiver {
    server: TestServer,
    bodies: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bodies: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
        let sink = bodies.clone();
        let server = TestServer::start(listener, move |request: Request<Incoming>| {
            let sink = sink.clone();
            async move {
                let path = request.uri().path().to_owned();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                sink.lock().unwrap().push((path, body));
                Response::new(empty())
            }
        });
        Self { server, bodies }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    fn spans(&self) -> Vec<Span> {
        let bodies = self.bodies.lock().unwrap().clone();
        let mut spans = Vec::new();
        for (path, body) in bodies {
            assert_eq!(path, "/v1/traces");
            let request = ExportTraceServiceRequest::decode(body).unwrap();
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    spans.extend(scope.spans);
                }
            }
        }
        spans
    }

    /// Waits until the spans of one request (its server span and its children) are here.
    async fn request_spans(&self) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let spans = self.spans();
            let done = ["upstream", "authenticate", "policy"]
                .iter()
                .all(|name| spans.iter().any(|s| s.name == *name))
                && spans.iter().any(|s| s.kind == SpanKind::Server as i32);
            if done {
                return spans;
            }
            assert!(tokio::time::Instant::now() < deadline, "spans: {spans:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn raw(&self) -> Vec<u8> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, b)| b.to_vec())
            .collect()
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
        .map(|v| match v {
            AnyValue::StringValue(s) => s,
            AnyValue::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap()
}

struct Fixture {
    _pki: Pki,
    app: Upstream,
    idp: Idp,
    signer: Signer,
    receiver: Receiver,
    gh: Process,
    client: Client,
}

impl Fixture {
    async fn start(telemetry: &str, extra: &str) -> Self {
        let pki = pki();
        std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
        let app = ok_upstream().await;
        let signer = Signer::generate(Algorithm::ES256, "ec-1").unwrap();
        let idp = Idp::start(&[&signer]).await;
        let receiver = Receiver::start().await;
        let text = config_text(
            &pki,
            &app.url(),
            &format!(
                "{}telemetry:\n  otlp:\n    endpoint: {}\n    sample_ratio: 1.0\n{telemetry}{extra}",
                idp.issuer_yaml(AUDIENCE, &[]),
                receiver.endpoint(),
            ),
        );
        let gh = spawn_binary(&write_config(pki.dir.path(), &text));
        let admin = gh.admin;
        eventually("ready", WAIT, || async move {
            admin_get(admin, "/readyz").await.0 == 200
        })
        .await;
        let client = Client::new(gh.https.unwrap(), &pki.paths.ca_cert);
        Self {
            _pki: pki,
            app,
            idp,
            signer,
            receiver,
            gh,
            client,
        }
    }

    fn token(&self) -> String {
        let now = gatehouse::auth::jwt::system_clock();
        self.signer
            .sign(&json!({
                "iss": self.idp.issuer(), "aud": AUDIENCE, "sub": "alice",
                "iat": now, "exp": now + 300,
            }))
            .unwrap()
    }

    /// `GET /api/x?q=secret-query` with a token, and the client's `traceparent` if given.
    async fn call(&self, token: &str, traceparent: Option<&str>) -> u16 {
        let mut request = Request::get("/api/x?q=secret-query")
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .header("cookie", "theme=secret-cookie");
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let response = self.client.h1(request.body(empty()).unwrap()).await;
        response.status().as_u16()
    }

    /// The `(trace id, parent id)` of the `traceparent` the app received.
    fn app_traceparent(&self) -> (String, String) {
        let seen = self.app.seen();
        let value = seen
            .last()
            .unwrap()
            .header("traceparent")
            .unwrap()
            .to_owned();
        let parts: Vec<&str> = value.split('-').collect();
        assert_eq!(parts.len(), 4, "{value}");
        (parts[1].to_owned(), parts[2].to_owned())
    }
}

#[tokio::test]
async fn a_request_exports_linked_spans_and_the_app_gets_our_span_as_parent() {
    let f = Fixture::start("", "").await;
    let token = f.token();
    let client_trace = format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-01");
    assert_eq!(f.call(&token, Some(&client_trace)).await, 200);
    let spans = f.receiver.request_spans().await;

    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    // An untrusted client's trace is not continued: a new trace, with no parent.
    assert_ne!(hex(&server.trace_id), CLIENT_TRACE);
    assert!(server.parent_span_id.is_empty(), "{server:#?}");
    assert_eq!(server.name, "GET api");
    assert_eq!(attribute(server, "http.request.method").unwrap(), "GET");
    assert_eq!(attribute(server, "url.path").unwrap(), "/api/x");
    assert_eq!(
        attribute(server, "http.response.status_code").unwrap(),
        "200"
    );
    assert_eq!(attribute(server, "gatehouse.route").unwrap(), "api");

    for name in ["authenticate", "policy", "upstream"] {
        let child = named(&spans, name);
        assert_eq!(child.trace_id, server.trace_id, "{name}");
        assert_eq!(child.parent_span_id, server.span_id, "{name}");
    }
    let policy = named(&spans, "policy");
    assert_eq!(attribute(policy, "gatehouse.route").unwrap(), "api");
    assert_eq!(attribute(policy, "gatehouse.decision").unwrap(), "allow");
    assert_eq!(
        attribute(named(&spans, "authenticate"), "gatehouse.auth.method").unwrap(),
        "bearer"
    );
    let upstream = named(&spans, "upstream");
    assert_eq!(upstream.kind, SpanKind::Client as i32);
    assert_eq!(
        attribute(upstream, "http.response.status_code").unwrap(),
        "200"
    );

    // The app's parent is our upstream span, in our trace.
    let (trace, parent) = f.app_traceparent();
    assert_eq!(trace, hex(&server.trace_id));
    assert_eq!(parent, hex(&upstream.span_id));

    // Neither the spans nor the logs hold the token, the cookie or the query.
    let raw = String::from_utf8_lossy(&f.receiver.raw()).into_owned();
    for secret in [token.as_str(), "secret-query", "secret-cookie"] {
        assert!(!raw.contains(secret), "a span holds {secret}");
        for line in f.gh.log_lines() {
            assert!(!line.contains(secret), "a log line holds {secret}: {line}");
        }
    }
    // The access line names the trace.
    f.gh.wait_for_log(&format!("\"trace_id\":\"{}\"", hex(&server.trace_id)))
        .await;
}

#[tokio::test]
async fn a_trusted_peer_continues_its_trace() {
    for (telemetry, extra) in [
        ("  trust_client_trace: true\n", ""),
        ("", "trusted_proxies: [127.0.0.1]\n"),
    ] {
        let f = Fixture::start(telemetry, extra).await;
        let client_trace = format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-01");
        assert_eq!(f.call(&f.token(), Some(&client_trace)).await, 200);
        let spans = f.receiver.request_spans().await;
        let server = spans
            .iter()
            .find(|s| s.kind == SpanKind::Server as i32)
            .unwrap();
        assert_eq!(hex(&server.trace_id), CLIENT_TRACE, "{telemetry}{extra}");
        assert_eq!(hex(&server.parent_span_id), CLIENT_PARENT);
        let (trace, parent) = f.app_traceparent();
        assert_eq!(trace, CLIENT_TRACE);
        assert_eq!(parent, hex(&named(&spans, "upstream").span_id));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_key_fetch_for_an_unknown_kid_is_a_child_of_authentication() {
    let f = Fixture::start("", "").await;
    let rotated = Signer::generate(Algorithm::ES256, "ec-2").unwrap();
    f.idp.add_key(&rotated);
    let now = gatehouse::auth::jwt::system_clock();
    let token = rotated
        .sign(&json!({
            "iss": f.idp.issuer(), "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300,
        }))
        .unwrap();
    assert_eq!(f.call(&token, None).await, 200);
    let spans = f.receiver.request_spans().await;
    let fetch = spans.iter().find(|s| s.name == "jwks fetch");
    let fetch = fetch.unwrap_or_else(|| panic!("no jwks fetch span: {spans:#?}"));
    let authenticate = named(&spans, "authenticate");
    assert_eq!(fetch.parent_span_id, authenticate.span_id);
    assert_eq!(fetch.trace_id, authenticate.trace_id);
}

#[tokio::test]
async fn spans_still_queued_are_sent_at_shutdown() {
    let mut f = Fixture::start("", "").await;
    assert_eq!(f.call(&f.token(), None).await, 200);
    // Stopped at once: the export task's next tick is up to a second away.
    f.gh.signal("TERM");
    let status = f.gh.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "{:#?}", f.gh.log_lines());
    let spans = f.receiver.spans();
    assert!(
        spans.iter().any(|s| s.kind == SpanKind::Server as i32)
            && spans.iter().any(|s| s.name == "upstream"),
        "{spans:#?}"
    );
}
