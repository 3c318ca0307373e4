//! The audit trail: one structured [`DecisionEvent`] per access decision, written as a log
//! event under the `gatehouse::audit` target (`log.audit` says which), and offered to anyone
//! who subscribes (a dev-mode inspector, say) through [`Audit::subscribe`].
//!
//! Identical denials from one peer are written once per window, then summed up in a
//! "suppressed N" line, so that a client retrying in a loop cannot flood the log.
//!
//! An event names the route (from the policy, never the request path), the principal's
//! subject and issuer, and the reason as a short phrase: never a token, a cookie or a query.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::auth::cert::CertError;
use crate::auth::jwt::TokenError;
use crate::auth::{AuthMethod, Principal};
use crate::error::{Credential, ProxyError};
pub use crate::telemetry::AuditMode;
use crate::telemetry::Outcome;

/// The route name of a request that no rule matched.
pub const DEFAULT_ROUTE: &str = "(default)";

/// What was decided about one request, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionEvent {
    /// The rule's name, or [`DEFAULT_ROUTE`].
    pub route: String,
    /// Who the caller turned out to be, when they were identified (shared, not copied).
    pub principal: Option<Arc<Principal>>,
    pub decision: Outcome,
    /// A short phrase: `allowed`, `missing credential`, `expired`, `needs role admin`, ...
    pub reason: Cow<'static, str>,
    /// What the dev inspector shows besides the decision; made only while one is on.
    pub exchange: Option<Box<Exchange>>,
}

/// The headers and timings of one request, for the dev inspector. Header values are
/// redacted where secret before they are put here (see `inspector::redact`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exchange {
    /// The request headers as the client sent them.
    pub received: Vec<(String, String)>,
    /// Sent upstream but not received (or received with another value).
    pub added: Vec<(String, String)>,
    /// Received but not sent upstream.
    pub removed: Vec<String>,
    /// The request went to the app (else Gatehouse answered it).
    pub forwarded: bool,
    /// Everything before forwarding: hygiene, routing, authentication, authorization.
    pub auth: Duration,
    pub upstream: Option<Duration>,
    /// Until the response headers.
    pub total: Duration,
    /// The reason said more exactly, for a person (`token expired 3 min ago`).
    pub reason_detail: Option<String>,
}

/// A decision as subscribers get it: the event and the facts of its request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub event: DecisionEvent,
    pub at: std::time::SystemTime,
    pub request_id: String,
    pub method: http::Method,
    pub path: String,
    pub host: Option<String>,
    pub status: u16,
}

impl DecisionEvent {
    pub fn new(route: &str, decision: Outcome, principal: Option<&Arc<Principal>>) -> Self {
        Self {
            route: route.to_owned(),
            principal: principal.cloned(),
            decision,
            reason: Cow::Borrowed(match decision {
                Outcome::Allow => "allowed",
                Outcome::Unauthenticated => "unauthenticated",
                Outcome::Forbidden => "forbidden",
            }),
            exchange: None,
        }
    }

    /// How the caller was identified, when they were.
    pub fn auth_method(&self) -> Option<AuthMethod> {
        self.principal.as_ref().map(|p| p.method)
    }

    pub fn subject(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.subject.as_str())
    }

    pub fn issuer(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.issuer.as_str())
    }

    pub fn because(mut self, reason: impl Into<Cow<'static, str>>) -> Self {
        self.reason = reason.into();
        self
    }
}

/// The request facts an audit line carries besides the decision.
#[derive(Debug)]
pub struct RequestFacts<'a> {
    pub request_id: &'a str,
    pub trace_id: Option<&'a str>,
    pub method: &'a http::Method,
    /// The canonical path (no query).
    pub path: &'a str,
    pub host: Option<&'a str>,
    pub status: u16,
    pub peer: IpAddr,
}

/// The audit log and its subscribers; one per server.
#[derive(Debug)]
pub struct Audit {
    mode: AuditMode,
    limiter: Mutex<Limiter>,
    events: broadcast::Sender<Arc<Recorded>>,
}

impl Audit {
    pub fn new(mode: AuditMode) -> Self {
        Self {
            mode,
            limiter: Mutex::new(Limiter::new(WINDOW, MAX_TRACKED)),
            events: broadcast::channel(256).0,
        }
    }

    /// Every decision from now on (all of them, whatever `log.audit` says). A subscriber that
    /// falls behind loses the oldest events, never slows a request.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Recorded>> {
        self.events.subscribe()
    }

    /// Writes the audit line of a decision (as `log.audit` asks) and hands it to subscribers.
    pub fn record(&self, event: &DecisionEvent, facts: &RequestFacts<'_>) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(Arc::new(Recorded {
                event: event.clone(),
                at: std::time::SystemTime::now(),
                request_id: facts.request_id.to_owned(),
                method: facts.method.clone(),
                path: facts.path.to_owned(),
                host: facts.host.map(str::to_owned),
                status: facts.status,
            }));
        }
        let denied = event.decision != Outcome::Allow;
        match self.mode {
            AuditMode::Off => return,
            AuditMode::Denied if !denied => return,
            AuditMode::All | AuditMode::Denied => {}
        }
        if denied {
            let key = Key {
                peer: facts.peer,
                route: event.route.clone(),
                reason: event.reason.clone().into_owned(),
            };
            let verdict = match self.limiter.lock() {
                Ok(mut limiter) => limiter.admit(key, Instant::now()),
                Err(_) => Verdict::Write { suppressed: None },
            };
            match verdict {
                Verdict::Suppress => return,
                Verdict::Write { suppressed } => {
                    if let Some((key, n)) = suppressed {
                        write_suppressed(&key, n);
                    }
                }
            }
        }
        write(event, facts);
    }

    /// Writes the "suppressed N" lines of windows that have closed. Called now and then, so
    /// that the count of a burst that stopped is not held back until the next denial.
    pub fn flush(&self) {
        let closed = match self.limiter.lock() {
            Ok(mut limiter) => limiter.close_expired(Instant::now()),
            Err(_) => Vec::new(),
        };
        for (key, n) in closed {
            write_suppressed(&key, n);
        }
    }
}

/// Writes the "suppressed N" lines of closed windows every few seconds.
pub fn spawn_flush(audit: Arc<Audit>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            audit.flush();
        }
    })
}

/// How long identical denials from one peer are folded into one line.
const WINDOW: Duration = Duration::from_secs(10);
/// Distinct (peer, route, reason) windows tracked at once.
const MAX_TRACKED: usize = 4096;

fn write(event: &DecisionEvent, facts: &RequestFacts<'_>) {
    tracing::info!(
        target: "gatehouse::audit",
        request_id = facts.request_id,
        trace_id = facts.trace_id,
        method = %facts.method,
        path = facts.path,
        host = facts.host,
        route = %event.route,
        auth_method = event.auth_method().map(AuthMethod::as_str),
        subject = event.subject(),
        issuer = event.issuer(),
        decision = event.decision.as_str(),
        reason = %event.reason,
        status = facts.status,
        peer = %facts.peer,
        "decision"
    );
}

fn write_suppressed(key: &Key, suppressed: u64) {
    tracing::info!(
        target: "gatehouse::audit",
        route = %key.route,
        reason = %key.reason,
        peer = %key.peer,
        suppressed,
        "suppressed {suppressed} identical denials"
    );
}

/// The short reason of a refusal.
pub fn reason(error: &ProxyError) -> Cow<'static, str> {
    Cow::Borrowed(match error {
        ProxyError::Unauthenticated(credential) => match credential {
            Credential::Missing => "missing credential",
            Credential::NoSession => "no session",
            Credential::Malformed => "malformed credential",
            Credential::Invalid(why) => token_reason(*why),
            Credential::Certificate(why) => match why {
                CertError::Untrusted => "certificate no longer trusted",
                CertError::Unreadable => "certificate unreadable",
                CertError::NoSubject => "certificate name not allowed",
                CertError::Unwritable => "certificate names not writable",
            },
        },
        ProxyError::Forbidden { needed, .. } => return Cow::Owned(format!("needs {needed}")),
        ProxyError::NoRoute => "no route",
        ProxyError::KeysUnavailable => "keys unavailable",
        ProxyError::SessionStoreUnavailable => "session store unavailable",
        ProxyError::IntrospectionUnavailable => "introspection unavailable",
        ProxyError::NotFound => "not found",
        ProxyError::HeadersTooLarge => "too many headers",
        ProxyError::BadRequest(_)
        | ProxyError::Framing(_)
        | ProxyError::BadBody
        | ProxyError::BadPath(_) => "bad request",
        ProxyError::MethodNotAllowed => "method not allowed",
        ProxyError::UpstreamConnect
        | ProxyError::UpstreamTimeout
        | ProxyError::UpstreamProtocol
        | ProxyError::UpstreamReset(_) => "upstream error",
        ProxyError::Internal => "internal error",
    })
}

fn token_reason(why: TokenError) -> &'static str {
    match why {
        TokenError::TooLarge => "token too large",
        TokenError::Malformed => "malformed token",
        TokenError::Header => "token header not accepted",
        TokenError::Algorithm => "algorithm not accepted",
        TokenError::Issuer => "issuer not accepted",
        TokenError::UnknownKey => "unknown key",
        TokenError::Signature => "bad signature",
        TokenError::NoExpiry => "no expiry",
        TokenError::Expired => "expired",
        TokenError::NotYetValid => "not yet valid",
        TokenError::Audience => "audience not accepted",
        TokenError::Claims => "claims not usable",
        TokenError::KeysUnavailable => "keys unavailable",
        TokenError::Inactive => "token inactive",
        TokenError::TokenType => "not a bearer access token",
        TokenError::IntrospectionUnavailable => "introspection unavailable",
    }
}

/// One kind of denial from one peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    peer: IpAddr,
    route: String,
    reason: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Write the line; first the summary of the window that just closed, if it folded any.
    Write { suppressed: Option<(Key, u64)> },
    /// Fold it into the open window.
    Suppress,
}

/// Open windows of identical denials, bounded in number.
#[derive(Debug)]
struct Limiter {
    window: Duration,
    max: usize,
    open: HashMap<Key, Window>,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    suppressed: u64,
}

impl Limiter {
    fn new(window: Duration, max: usize) -> Self {
        Self {
            window,
            max,
            open: HashMap::new(),
        }
    }

    fn admit(&mut self, key: Key, now: Instant) -> Verdict {
        if let Some(window) = self.open.get_mut(&key) {
            if now.duration_since(window.opened) < self.window {
                window.suppressed += 1;
                return Verdict::Suppress;
            }
            let suppressed = std::mem::replace(window, Window::at(now)).suppressed;
            return Verdict::Write {
                suppressed: (suppressed > 0).then_some((key, suppressed)),
            };
        }
        if self.open.len() >= self.max {
            // Full: forget the windows that folded nothing; should every one still be
            // folding, this denial goes unlimited rather than pushing one out uncounted.
            self.open
                .retain(|_, w| w.suppressed > 0 && now.duration_since(w.opened) < self.window);
            if self.open.len() >= self.max {
                return Verdict::Write { suppressed: None };
            }
        }
        self.open.insert(key, Window::at(now));
        Verdict::Write { suppressed: None }
    }

    /// Removes closed windows, returning those that folded denials.
    fn close_expired(&mut self, now: Instant) -> Vec<(Key, u64)> {
        let window = self.window;
        let mut closed = Vec::new();
        self.open.retain(|key, w| {
            let open = now.duration_since(w.opened) < window;
            if !open && w.suppressed > 0 {
                closed.push((key.clone(), w.suppressed));
            }
            open
        });
        closed
    }
}

impl Window {
    fn at(now: Instant) -> Self {
        Self {
            opened: now,
            suppressed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reason: &str) -> Key {
        Key {
            peer: IpAddr::from([10, 0, 0, 1]),
            route: "admin".into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn identical_denials_are_folded_and_counted_once_the_window_closes() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(Duration::from_secs(10), 16);
        let first = Verdict::Write { suppressed: None };
        assert_eq!(limiter.admit(key("expired"), t0), first);
        for _ in 0..3 {
            assert_eq!(
                limiter.admit(key("expired"), t0 + Duration::from_secs(1)),
                Verdict::Suppress
            );
        }
        // A different reason is a different line.
        assert_eq!(limiter.admit(key("missing credential"), t0), first);
        assert_eq!(
            limiter.admit(key("expired"), t0 + Duration::from_secs(11)),
            Verdict::Write {
                suppressed: Some((key("expired"), 3))
            }
        );
        assert_eq!(
            limiter.admit(key("expired"), t0 + Duration::from_secs(12)),
            Verdict::Suppress
        );
        assert_eq!(
            limiter.close_expired(t0 + Duration::from_secs(30)),
            vec![(key("expired"), 1)]
        );
        assert!(limiter.open.is_empty());
    }

    #[test]
    fn the_limiter_stays_bounded() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(Duration::from_secs(10), 4);
        for i in 0..100u8 {
            let key = Key {
                peer: IpAddr::from([10, 0, 0, i]),
                ..key("expired")
            };
            limiter.admit(key.clone(), t0);
            limiter.admit(key, t0);
        }
        assert!(limiter.open.len() <= 4);
    }

    #[test]
    fn reasons_are_short_phrases() {
        let forbidden = ProxyError::Forbidden {
            needed: "role admin".into(),
            scope: false,
        };
        assert_eq!(reason(&forbidden), "needs role admin");
        assert_eq!(
            reason(&ProxyError::Unauthenticated(Credential::Missing)),
            "missing credential"
        );
        assert_eq!(
            reason(&ProxyError::Unauthenticated(Credential::Invalid(
                TokenError::Expired
            ))),
            "expired"
        );
    }
}
