//! The dev inspector: `/.gatehouse/` on the public listener, in `gatehouse demo` and
//! `gatehouse dev` only, shows the last [`CAPACITY`] decisions live (server-sent events):
//! method, path, status, the route and where it is written, the decision and its reason, the
//! identity sent to the app, the headers added and removed, timings, and what
//! `policy explain` says about the request. Policy reloads show up as lines of their own.
//!
//! It is fed by the audit log's broadcast ([`crate::audit::Audit::subscribe`]); a slow
//! reader loses events (and is told how many), never slows a request. Under `gatehouse run`
//! there is no inspector: the stack never routes `/.gatehouse/` here, and the path is judged
//! by the policy like any other. Secret header values are redacted before they are kept
//! ([`redact`]); the page builds its DOM with `textContent` only.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::audit::{Exchange, Recorded};
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::policy::Policy;

/// Where the inspector lives on the public listener.
pub const PREFIX: &str = "/.gatehouse";
/// How many entries the ring keeps.
pub const CAPACITY: usize = 200;

const PAGE: &str = include_str!("inspector/index.html");
const SCRIPT: &str = include_str!("inspector/inspector.js");

/// Is `path` (canonical) the inspector's?
pub fn is_path(path: &str) -> bool {
    path == PREFIX
        || path
            .strip_prefix(PREFIX)
            .is_some_and(|r| r.starts_with('/'))
}

/// The ring of recent entries and its live readers.
#[derive(Debug)]
pub struct Inspector {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<str>>,
    policy: Arc<ArcSwap<Policy>>,
    closing: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Arc<str>>,
    next_id: u64,
}

impl Inspector {
    pub fn new(policy: Arc<ArcSwap<Policy>>) -> Arc<Self> {
        Arc::new(Self {
            ring: Mutex::new(Ring::default()),
            live: broadcast::channel(CAPACITY).0,
            policy,
            closing: watch::channel(false).0,
        })
    }

    /// Feeds the ring from the audit broadcast until the broadcast ends.
    pub fn feed(
        self: &Arc<Self>,
        mut events: broadcast::Receiver<Arc<Recorded>>,
    ) -> tokio::task::JoinHandle<()> {
        let inspector = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(recorded) => inspector.push(inspector.request_entry(&recorded)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        inspector.push(json!({"kind": "lagged", "dropped": n}));
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    /// Ends the live streams (the server is shutting down).
    pub fn close(&self) {
        let _ = self.closing.send(true);
    }

    /// A policy reload: `Ok` with the directory, or the errors (each with file and line).
    pub fn reloaded(&self, result: Result<String, Vec<String>>) {
        let entry = match result {
            Ok(dir) => {
                json!({"kind": "reload", "ok": true, "message": format!("policies reloaded from {dir}")})
            }
            Err(errors) => json!({
                "kind": "reload",
                "ok": false,
                "message": format!("policy reload failed; keeping the previous policy:\n{}", errors.join("\n")),
            }),
        };
        self.push(entry);
    }

    fn push(&self, mut entry: Value) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        ring.next_id += 1;
        entry["id"] = json!(ring.next_id);
        entry["time"] = json!(millis(SystemTime::now()));
        let line: Arc<str> = Arc::from(entry.to_string());
        if ring.entries.len() == CAPACITY {
            ring.entries.pop_front();
        }
        ring.entries.push_back(line.clone());
        // Sent under the lock, so that a reader joining now gets each entry exactly once.
        let _ = self.live.send(line);
    }

    /// The entry of one decision, with the route's place in the policy and the explanation.
    fn request_entry(&self, recorded: &Recorded) -> Value {
        let event = &recorded.event;
        let policy = self.policy.load();
        let route_at = policy
            .rules
            .iter()
            .find(|r| r.name == event.route)
            .map(|r| format!("{}:{}", r.origin.file.display(), r.origin.line));
        let principal = event.principal.as_deref();
        let explain = crate::cli::policy::explain_request(
            &policy,
            &recorded.method,
            &recorded.path,
            recorded.host.as_deref(),
            principal,
        );
        let exchange = event.exchange.as_deref();
        let forwarded = exchange.is_some_and(|e| e.forwarded);
        let identity = principal.filter(|_| forwarded).map(|p| {
            json!({
                "subject": p.subject,
                "roles": p.roles,
                "scopes": p.scopes,
                "method": p.method.as_str(),
                "issuer": p.issuer,
            })
        });
        let pairs = |v: &[(String, String)]| -> Value {
            v.iter()
                .map(|(n, v)| json!([n, v]))
                .collect::<Vec<_>>()
                .into()
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        json!({
            "kind": "request",
            "at": millis(recorded.at),
            "request_id": recorded.request_id,
            "method": recorded.method.as_str(),
            "path": recorded.path,
            "host": recorded.host,
            "status": recorded.status,
            "route": event.route,
            "route_at": route_at,
            "decision": event.decision.as_str(),
            "reason": exchange
                .and_then(|e| e.reason_detail.clone())
                .unwrap_or_else(|| event.reason.to_string()),
            "subject": event.subject(),
            "identity": identity,
            "forwarded": forwarded,
            "received": exchange.map(|e| pairs(&e.received)),
            "added": exchange.map(|e| pairs(&e.added)),
            "removed": exchange.map(|e| e.removed.clone()),
            "timings_ms": exchange.map(|e| json!({
                "auth": ms(e.auth),
                "upstream": e.upstream.map(ms),
                "total": ms(e.total),
            })),
            "explain": explain,
        })
    }

    /// Answers a request under [`PREFIX`]: the page, its script, or the event stream.
    pub fn answer(&self, method: &Method, path: &str) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            return ProxyError::MethodNotAllowed.into_response();
        }
        match path.strip_prefix(PREFIX).unwrap_or(path) {
            "" => {
                let mut response = Response::new(body::empty());
                *response.status_mut() = StatusCode::FOUND;
                response
                    .headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/.gatehouse/"));
                response
            }
            "/" => own(PAGE, "text/html; charset=utf-8"),
            "/inspector.js" => own(SCRIPT, "text/javascript; charset=utf-8"),
            "/events" => self.events(),
            _ => ProxyError::NotFound.into_response(),
        }
    }

    /// The backlog, then live entries, as server-sent events.
    fn events(&self) -> Response<Body> {
        let (backlog, live) = match self.ring.lock() {
            Ok(ring) => (ring.entries.clone(), self.live.subscribe()),
            Err(_) => return ProxyError::Internal.into_response(),
        };
        let closing = self.closing.subscribe();
        let frames = futures_util::stream::unfold(
            (backlog, live, closing),
            |(mut backlog, mut live, mut closing)| async move {
                if let Some(line) = backlog.pop_front() {
                    return Some((sse(&line), (backlog, live, closing)));
                }
                if *closing.borrow() {
                    return None;
                }
                let data = tokio::select! {
                    received = live.recv() => match received {
                        Ok(line) => sse(&line),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            sse(&json!({"kind": "lagged", "dropped": n}).to_string())
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = closing.changed() => return None,
                };
                Some((data, (backlog, live, closing)))
            },
        );
        let mut response = Response::new(body::stream(StreamBody::new(frames).boxed()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn sse(line: &str) -> Result<Frame<Bytes>, Infallible> {
    // JSON has no raw newlines, so one `data:` line holds an entry.
    Ok(Frame::data(Bytes::from(format!("data: {line}\n\n"))))
}

fn own(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Header names whose values are always secret.
const SECRET: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-forwarded-access-token",
    "x-gatehouse-assertion",
];

/// Words that make a header name secret (`x-api-key`, `x-auth-token`, ...).
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "assertion",
    "auth",
    "cookie",
    "key",
    "password",
    "session",
    "signature",
];

/// A header value as the inspector may show it: secret headers (and anything that looks like
/// a token) keep only their shape: an auth scheme, cookie names.
pub fn redact(name: &str, value: &str) -> String {
    let name = name.to_ascii_lowercase();
    let secret_name =
        SECRET.contains(&name.as_str()) || SECRET_WORDS.iter().any(|w| name.contains(w));
    if !secret_name && !token_like(value) {
        return value.to_owned();
    }
    match name.as_str() {
        "authorization" | "proxy-authorization" => match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} [redacted]"),
            None => "[redacted]".to_owned(),
        },
        "cookie" => value
            .split(';')
            .map(|c| match c.trim().split_once('=') {
                Some((name, _)) => format!("{name}=[redacted]"),
                None => "[redacted]".to_owned(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        "set-cookie" => match value.split_once('=') {
            Some((name, _)) => format!("{}=[redacted]", name.trim()),
            None => "[redacted]".to_owned(),
        },
        _ => "[redacted]".to_owned(),
    }
}

/// A JWT (three base64url parts, `eyJ...`) or a long run of token characters.
fn token_like(value: &str) -> bool {
    value.split([' ', ',', ';', '=']).any(|word| {
        let jwt = word.starts_with("eyJ") && word.matches('.').count() == 2;
        let long = word.len() >= 32
            && word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+/".contains(&b))
            && word.bytes().any(|b| b.is_ascii_digit())
            && word.bytes().any(|b| b.is_ascii_alphabetic());
        jwt || long
    })
}

/// The timings of one request.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub auth: Duration,
    pub upstream: Option<Duration>,
    pub total: Duration,
}

/// What the inspector keeps of one exchange: the headers as `received`, what changed on the
/// way to the app (`sent`, when the request was forwarded), redacted.
pub fn exchange(received: &HeaderMap, sent: Option<&HeaderMap>, timings: Timings) -> Exchange {
    let shown = |headers: &HeaderMap| -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(n, v)| {
                let value = String::from_utf8_lossy(v.as_bytes());
                (n.as_str().to_owned(), redact(n.as_str(), &value))
            })
            .collect()
    };
    let (added, removed) = match sent {
        Some(sent) => {
            let added = sent
                .iter()
                .filter(|(n, v)| !received.get_all(*n).iter().any(|r| r == *v))
                .map(|(n, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes());
                    (n.as_str().to_owned(), redact(n.as_str(), &value))
                })
                .collect();
            let mut removed: Vec<String> = received
                .keys()
                .filter(|n| !sent.contains_key(*n))
                .map(|n| n.as_str().to_owned())
                .collect();
            removed.dedup();
            (added, removed)
        }
        None => (Vec::new(), Vec::new()),
    };
    Exchange {
        received: shown(received),
        added,
        removed,
        forwarded: sent.is_some(),
        auth: timings.auth,
        upstream: timings.upstream,
        total: timings.total,
        reason_detail: None,
    }
}

/// `token expired 3 min ago`, for a request refused as `expired`: the `exp` of its bearer
/// token, read without checking anything (the token was already refused; this only says
/// when), against `now`.
pub fn expired_detail(received: &HeaderMap, now: SystemTime) -> Option<String> {
    use base64::Engine as _;
    let token = crate::auth::jwt::bearer_token(received).ok()??;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let exp = serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()?;
    let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let ago = now.checked_sub(exp)?;
    Some(format!("token expired {} ago", human(ago)))
}

fn human(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", seconds / 60),
        3600..=86_399 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_redacted_to_their_shape() {
        assert_eq!(
            redact("Authorization", "Bearer eyJhbGciOi.eyJzdWIi.sig"),
            "Bearer [redacted]"
        );
        assert_eq!(
            redact("cookie", "gatehouse_session=abc; theme=dark"),
            "gatehouse_session=[redacted]; theme=[redacted]"
        );
        assert_eq!(
            redact("set-cookie", "s=abc; Path=/; HttpOnly"),
            "s=[redacted]"
        );
        assert_eq!(redact("X-Forwarded-Access-Token", "opaque"), "[redacted]");
        assert_eq!(redact("x-gatehouse-assertion", "a.b.c"), "[redacted]");
        assert_eq!(redact("x-api-key", "k"), "[redacted]");
        // A token in a header with an innocent name.
        assert_eq!(redact("x-debug", "eyJhbGciOi.eyJzdWIi.sig"), "[redacted]");
        assert_eq!(
            redact("x-debug", "sk_live_0123456789abcdefghijklmnopqrstuv"),
            "[redacted]"
        );
        // Ordinary values stay, markup and all (the page escapes them).
        assert_eq!(redact("x-user-id", "alice"), "alice");
        assert_eq!(redact("accept", "text/html,*/*"), "text/html,*/*");
        assert_eq!(redact("x-demo", "<script>x</script>"), "<script>x</script>");
    }

    #[test]
    fn the_exchange_names_what_was_added_and_removed() {
        let mut received = HeaderMap::new();
        received.insert("authorization", HeaderValue::from_static("Bearer abc"));
        received.insert("x-user-id", HeaderValue::from_static("mallory"));
        received.insert("accept", HeaderValue::from_static("*/*"));
        let mut sent = HeaderMap::new();
        sent.insert("x-user-id", HeaderValue::from_static("alice"));
        sent.insert("accept", HeaderValue::from_static("*/*"));
        let timings = Timings {
            auth: Duration::from_millis(1),
            upstream: None,
            total: Duration::from_millis(2),
        };
        let exchange = exchange(&received, Some(&sent), timings);
        assert_eq!(exchange.added, vec![("x-user-id".into(), "alice".into())]);
        assert_eq!(exchange.removed, vec!["authorization".to_owned()]);
        assert!(
            exchange
                .received
                .contains(&("authorization".into(), "Bearer [redacted]".into()))
        );
        assert!(exchange.forwarded);
        let refused = super::exchange(&received, None, timings);
        assert!(!refused.forwarded && refused.added.is_empty());
    }

    #[test]
    fn an_expired_token_says_how_long_ago() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"ES256"}"#),
            b64(r#"{"exp":1000}"#)
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(
            expired_detail(&headers, at(1000 + 185)).as_deref(),
            Some("token expired 3 min ago")
        );
        assert_eq!(
            expired_detail(&headers, at(1010)).as_deref(),
            Some("token expired 10 s ago")
        );
        assert_eq!(expired_detail(&headers, at(900)), None);
        assert_eq!(expired_detail(&HeaderMap::new(), at(1000)), None);
    }

    #[test]
    fn only_the_prefix_is_the_inspectors() {
        assert!(is_path("/.gatehouse"));
        assert!(is_path("/.gatehouse/"));
        assert!(is_path("/.gatehouse/events"));
        assert!(!is_path("/.gatehouses"));
        assert!(!is_path("/x/.gatehouse/"));
    }

    #[test]
    fn the_ring_keeps_the_last_entries() {
        let text = "version: 1\nroutes:\n  - name: all\n    path: /**\n    auth: none\n";
        let parsed = crate::policy::parse(&[("p.yaml".into(), text.into())]).unwrap();
        let policy = Arc::new(ArcSwap::from_pointee(parsed));
        let inspector = Inspector::new(policy);
        for i in 0..(CAPACITY + 5) {
            inspector.push(json!({"kind": "test", "n": i}));
        }
        let ring = inspector.ring.lock().unwrap();
        assert_eq!(ring.entries.len(), CAPACITY);
        assert!(ring.entries[0].contains("\"n\":5"));
    }

    #[test]
    fn the_page_builds_its_dom_without_html_strings() {
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("outerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.contains("document.write"));
        assert!(
            !PAGE.contains("<script>"),
            "no inline script: the CSP forbids it"
        );
    }
}
