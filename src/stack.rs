//! The request pipeline, assembled in one place in lifecycle order (design.md, "Request
//! lifecycle"). Each step says why it sits where it does. Connection-level work (TLS, header
//! limits, timeouts) happened in `server` before a request reaches this point.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::assertion::{self, Assertions};
use crate::audit::{self, Audit, DecisionEvent, RequestFacts};
use crate::auth::cert::{CertError, CertRules, ClientCert};
use crate::auth::jwt::{self, Authenticated, TokenError, TokenMemo, Verifier};
use crate::auth::{AuthMethod, Principal};
use crate::body::{AccessRecord, Body, Metered};
use crate::cors::{self, Cors, PreflightMode};
use crate::endpoints;
use crate::error::{Credential, ProxyError};
use crate::framing;
use crate::grpc;
use crate::headers::{self, TrustedProxies, X_REQUEST_ID};
use crate::html;
use crate::identity::IdentityHeaders;
use crate::login::{self, Login, SessionMemo, SessionState};
use crate::otel::{self, Child};
use crate::path;
use crate::policy::{AuthMode, Decision, DefaultAction, OnUnauthenticated, Policy, Route, Rule};
use crate::proxy::{Outbound, Slot, Upgrade, Upstream};
use crate::telemetry::{self, Outcome};

/// Everything a request needs that lives as long as the server.
#[derive(Debug)]
pub struct App {
    pub upstream: Upstream,
    pub trusted_proxies: TrustedProxies,
    /// Swapped whole when the policy files change.
    pub policy: Arc<ArcSwap<Policy>>,
    pub verifier: Arc<Verifier>,
    pub identity: IdentityHeaders,
    pub max_headers: usize,
    /// Browser login, when configured.
    pub login: Option<Arc<Login>>,
    /// `gatehouse dev`: friendly pages that may name the app's address.
    pub dev_mode: bool,
    /// Client certificates (`tls.client_auth`), when configured.
    pub client_auth: Option<ClientAuth>,
    /// The signed identity assertion, when enabled.
    pub assertions: Option<Arc<Assertions>>,
    /// `forward_auth: true`: the forward-auth endpoint also without `login`.
    pub forward_auth: bool,
    /// `compat.oauth2_proxy`: `/ping` and `/ready` on the public listener.
    pub probes: Option<crate::compat::Probes>,
    /// The audit line of every decision, and its subscribers.
    pub audit: Arc<Audit>,
    /// Request spans, when `telemetry.otlp` is set.
    pub tracing: Option<Arc<otel::Tracing>>,
    /// The endpoints under the login prefix (`endpoints::router`).
    pub endpoints: axum::Router,
    /// The dev inspector under `/.gatehouse/`: demo and dev mode only, never `run`.
    pub inspector: Option<Arc<crate::inspector::Inspector>>,
}

/// How verified client certificates become identities.
#[derive(Debug)]
pub struct ClientAuth {
    pub rules: CertRules,
    /// The live verifier, to check a resumed session's certificate again.
    pub verifier: Arc<crate::tls::ClientVerifier>,
    /// Send `X-Forwarded-Client-Cert` to the app.
    pub forward: bool,
}

/// What the client certificate of a connection proves, read once after the handshake.
#[derive(Debug, Clone, Default)]
pub enum PeerCert {
    /// No certificate (or client certificates are not configured).
    #[default]
    None,
    Verified(ClientCert),
    /// rustls verified the chain, but the certificate names no usable identity.
    Unusable(CertError),
}

impl App {
    /// The identity of the certificate chain rustls verified (leaf first), if any. For a
    /// `resumed` session the chain is verified again: the CAs or the clock may have moved on
    /// since the session's full handshake. [`CertError::Untrusted`] means: close the
    /// connection, as a full handshake with that certificate would have failed.
    pub fn identify_client(
        &self,
        chain: Option<&[rustls_pki_types::CertificateDer<'_>]>,
        resumed: bool,
    ) -> PeerCert {
        let (Some(client_auth), Some(chain)) = (&self.client_auth, chain) else {
            return PeerCert::None;
        };
        let Some(leaf) = chain.first() else {
            return PeerCert::None;
        };
        if resumed && !client_auth.verifier.still_trusted(chain) {
            return PeerCert::Unusable(CertError::Untrusted);
        }
        match client_auth.rules.identify(leaf) {
            Ok(cert) => match self.identity.rules().check(&cert.principal) {
                Ok(()) => PeerCert::Verified(cert),
                Err(error) => {
                    tracing::info!(subject = ?cert.principal.subject, %error, "client certificate refused: its identity cannot be sent to the app");
                    PeerCert::Unusable(CertError::Unwritable)
                }
            },
            Err(error) => {
                tracing::info!(%error, "client certificate gives no identity");
                PeerCert::Unusable(error)
            }
        }
    }
}

/// What the server knows about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `https` or `http`: the listener's scheme, for `X-Forwarded-Proto`.
    pub scheme: &'static str,
}

/// What lives as long as one client connection, shared by its requests.
#[derive(Debug)]
pub struct Connection {
    pub info: ConnInfo,
    /// The last token verified on this connection.
    pub memo: TokenMemo,
    /// The last cookie session opened on this connection.
    pub session: SessionMemo,
    /// The connection's place under `limits.max_connections`; a tunnel keeps it.
    pub slot: Slot,
    /// The client certificate's identity.
    pub peer_cert: PeerCert,
}

pub type ResponseBody = Metered<Body>;

/// A stream the app reset before answering, passed on to an HTTP/2 client as the same reset
/// (hyper sends `RST_STREAM` with the reason of the `h2::Error` it finds here).
#[derive(Debug, thiserror::Error)]
#[error("the application reset the stream")]
pub struct Reset(#[source] h2::Error);

/// Answers one request. `Err` only for an HTTP/2 client whose stream the app reset.
pub async fn handle(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    mut request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Reset> {
    // 1. Identify and start recording first, so that every answer below, even a 400, carries
    //    the request id and produces exactly one access-log line.
    let request_id = headers::request_id(request.headers());
    let mut record = AccessRecord::start(
        request.method().clone(),
        request.uri().path(),
        request_id.clone(),
    );

    let browser = app.dev_mode && accepts_html(&request);
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut from_app = false;
    let version = request.version();
    // A gRPC client reads only gRPC answers: everything Gatehouse answers itself takes the
    // trailers-only form, and its deadline bounds the wait for the app.
    let grpc = grpc::is_grpc(request.headers());
    let refuse = |error: ProxyError| refusal(error, version, grpc);
    // The server span starts before anything else reads the request, so that it covers all.
    let mut checked = Checked {
        trace: app.tracing.as_ref().map(|tracing| {
            tracing.request(&otel::Incoming {
                headers: request.headers(),
                method: request.method(),
                path: request.uri().path(),
                scheme: conn.info.scheme,
                version,
                peer: conn.info.peer.ip(),
                trusted_peer: app.trusted_proxies.contains(conn.info.peer.ip()),
            })
        }),
        ..Checked::default()
    };
    // The inspector's view of the exchange: taken only while there is one (zero cost in `run`).
    let started = Instant::now();
    let received = app.inspector.as_ref().map(|_| request.headers().clone());
    let admitted = admit(app, conn, &mut request, &request_id, &mut checked).await;
    let auth_time = started.elapsed();
    let sent = match (&received, &admitted) {
        (Some(_), Ok(Admit::Forward(_))) => Some(request.headers().clone()),
        _ => None,
    };
    let mut response = match admitted {
        Ok(Admit::Forward(forward)) => {
            // 10. Forward exactly what was checked.
            let started = Instant::now();
            let te_trailers = forward.te_trailers;
            let outbound = Outbound {
                host: forward.host,
                upgrade: forward.upgrade,
                deadline: grpc.then(|| grpc::timeout(request.headers())).flatten(),
                te_trailers: forward.te_trailers,
            };
            // The app's `traceparent` names the upstream span, whatever the client sent.
            let span = checked
                .trace
                .as_ref()
                .and_then(|cx| Child::of(cx, "upstream", opentelemetry::trace::SpanKind::Client));
            if let Some(span) = &span {
                span.set("http.request.method", request.method().as_str().to_owned());
                span.set("url.path", forward.path.path().to_owned());
                span.set("server.address", app.upstream.address().to_owned());
                span.inject(request.headers_mut());
            }
            let result = app.upstream.forward(request, forward.path, outbound).await;
            let took = started.elapsed();
            record.upstream_time = Some(took);
            telemetry::upstream_answered(result.as_ref().ok().map(|r| r.status().as_u16()), took);
            if let Some(span) = span {
                match &result {
                    Ok(response) => span.set(
                        "http.response.status_code",
                        i64::from(response.status().as_u16()),
                    ),
                    Err(error) => {
                        span.set("error.type", error.code());
                        span.fail("the upstream call failed");
                    }
                }
            }
            let response = match result {
                Ok(mut response) => {
                    from_app = true;
                    // Hop-by-hop headers of the upstream's connection stay with it.
                    headers::remove_hop_by_hop(response.headers_mut());
                    // hyper sends an HTTP/1.1 client only the trailers that `Trailer` names;
                    // HTTP/2 has no such list, so gRPC's own are named for such a client.
                    if version < http::Version::HTTP_2 && te_trailers && grpc {
                        response
                            .headers_mut()
                            .insert(header::TRAILER, grpc::TRAILER_NAMES);
                    }
                    response.map(Body::Left)
                }
                Err(ProxyError::UpstreamReset(code)) if version == http::Version::HTTP_2 => {
                    telemetry::upstream_error("upstream_reset");
                    return Err(Reset(h2::Error::from(h2::Reason::from(code))));
                }
                Err(error) => {
                    telemetry::upstream_error(error.code());
                    match error {
                        // In dev mode the person at the browser is the app's developer: say
                        // which address is not answering, and keep retrying.
                        ProxyError::UpstreamConnect | ProxyError::UpstreamTimeout
                            if browser && !grpc =>
                        {
                            html::app_down(
                                app.upstream.address(),
                                error == ProxyError::UpstreamTimeout,
                            )
                        }
                        error => refuse(error),
                    }
                }
            };
            // A session refreshed on the way in is stored on the way out.
            login::with_cookies(response, &forward.set_cookies)
        }
        // 4 and 8. Built-in endpoints and refusals answer here, never upstream.
        // Boxed: the endpoints' futures (the login flow's IdP calls) are large and rare.
        Ok(Admit::Endpoint(call)) => {
            match Box::pin(endpoints::answer(app, conn, call, request)).await {
                Ok(response) if grpc => grpc::from_answer(response, None),
                Ok(response) => response,
                Err(error) => refuse(error),
            }
        }
        Ok(Admit::Answer(response)) if grpc => grpc::from_answer(response, None),
        Ok(Admit::Answer(response)) => response,
        Ok(Admit::Refuse(error, set_cookies)) => login::with_cookies(refuse(error), &set_cookies),
        Err(error) => refuse(error),
    };

    // CORS on the route: the app's answers in `answer` mode, Gatehouse's own 401 and 403.
    match (&checked.cors, from_app) {
        (Some(cors), true) => cors.decorate_forwarded(origin.as_ref(), response.headers_mut()),
        (Some(cors), false) => cors.decorate_denial(origin.as_ref(), &mut response),
        (None, _) => {}
    }

    // 11. Record: the id goes back to the client; the log line is written when the body ends.
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    record.status = response.status().as_u16();
    record.trace_id = checked.trace.as_ref().map(otel::trace_id);
    if let (Some(event), Some(received)) = (&mut checked.decision, &received) {
        let timings = crate::inspector::Timings {
            auth: auth_time,
            upstream: record.upstream_time,
            total: started.elapsed(),
        };
        let mut exchange = crate::inspector::exchange(received, sent.as_ref(), timings);
        if event.reason == "expired" {
            exchange.reason_detail =
                crate::inspector::expired_detail(received, std::time::SystemTime::now());
        }
        event.exchange = Some(Box::new(exchange));
    }
    if let Some(event) = &checked.decision {
        app.audit.record(
            event,
            &RequestFacts {
                request_id: record.request_id.to_str().unwrap_or("-"),
                trace_id: record.trace_id.as_deref(),
                method: &record.method,
                path: &checked.canonical,
                host: checked.host.as_deref(),
                status: record.status,
                peer: conn.info.peer.ip(),
            },
        );
    }
    record.decision = checked.decision;
    record.trace = checked.trace;
    Ok(response.map(|body| Metered::new(body, record)))
}

/// The answer to a refused request, in gRPC's form for a gRPC client. When the refusal means
/// the rest of an HTTP/1 connection cannot be read safely, the answer says so and hyper
/// closes the connection after it.
fn refusal(error: ProxyError, version: http::Version, grpc: bool) -> Response<Body> {
    let close = error.closes_connection() && version < http::Version::HTTP_2;
    let mut response = match grpc {
        true => error.into_grpc_response(),
        false => error.into_response(),
    };
    if close {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// What the checks decided.
enum Admit {
    Forward(Forward),
    /// Answered by Gatehouse itself (probes, login redirects, HTML pages).
    Answer(Response<Body>),
    /// For the endpoints under the login prefix, which take the request.
    Endpoint(endpoints::Call),
    /// Refused, with cookies to set all the same (a session that ended on the way).
    Refuse(ProxyError, Vec<HeaderValue>),
}

/// What goes upstream.
struct Forward {
    path: PathAndQuery,
    host: Option<HeaderValue>,
    upgrade: Option<Upgrade>,
    /// The client sent `te: trailers`.
    te_trailers: bool,
    /// Cookies to set on the answer (a refreshed session).
    set_cookies: Vec<HeaderValue>,
}

/// What the checks learned about the request, for its audit and access lines.
#[derive(Default)]
struct Checked {
    canonical: String,
    host: Option<String>,
    decision: Option<DecisionEvent>,
    /// The matched route's CORS settings, for the headers of its answers.
    cors: Option<Arc<Cors>>,
    /// The request's server span.
    trace: Option<opentelemetry::Context>,
}

impl Checked {
    /// Notes the decision, and counts it.
    fn decided(&mut self, event: DecisionEvent) {
        telemetry::decision(&event.route, event.decision);
        if let Some(span) = self.child("policy") {
            span.set("gatehouse.route", event.route.clone());
            span.set("gatehouse.decision", event.decision.as_str());
            span.set("gatehouse.reason", event.reason.to_string());
        }
        self.decision = Some(event);
    }

    fn child(&self, name: &'static str) -> Option<Child> {
        let cx = self.trace.as_ref()?;
        Child::of(cx, name, opentelemetry::trace::SpanKind::Internal)
    }
}

/// Who the caller turned out to be, and what cookies that requires us to set.
#[derive(Default)]
pub(crate) struct Caller {
    pub(crate) authenticated: Option<Authenticated>,
    pub(crate) set_cookies: Vec<HeaderValue>,
    /// A session's access token, for the app when the login settings send it.
    pub(crate) access_token: Option<String>,
}

/// Steps 2 to 9: everything that decides whether and how the request goes upstream. Each step
/// is one function below, in this order; a step that ends the request returns its answer.
async fn admit(
    app: &App,
    conn: &Connection,
    request: &mut Request<Incoming>,
    request_id: &HeaderValue,
    checked: &mut Checked,
) -> Result<Admit, ProxyError> {
    let hop = hygiene(app, conn, request)?;
    let target = target(request, &hop, checked)?;
    if let Some(answered) = built_in(app, conn, request, &target) {
        return answered;
    }
    forwarding_headers(app, conn, request, request_id, &hop);
    if let Some(ask) = preflight_of(request)? {
        return preflight(app, request, target, hop, checked, &ask);
    }
    let policy = app.policy.load();
    let rule = match route(&policy, request, &target, checked) {
        Route::Rule(rule) => {
            checked.cors.clone_from(&rule.cors);
            rule
        }
        Route::Default(DefaultAction::Allow) => {
            request.headers_mut().remove(header::AUTHORIZATION);
            return forward(app, request, target.canonical, hop, None, Vec::new())
                .map(Admit::Forward);
        }
        Route::Default(DefaultAction::Deny) => return Err(ProxyError::NoRoute),
    };
    let caller = match identify(app, conn, request, rule, checked).await {
        ControlFlow::Continue(caller) => caller,
        ControlFlow::Break(ended) => return ended,
    };
    let caller = match authorize(app, request, rule, &target, caller, checked) {
        ControlFlow::Continue(caller) => caller,
        ControlFlow::Break(ended) => return Ok(ended),
    };
    let (principal, set_cookies) = inject(app, conn, request, rule, caller)?;
    forward(
        app,
        request,
        target.canonical,
        hop,
        principal.as_deref(),
        set_cookies,
    )
    .map(Admit::Forward)
}

/// What step 2 keeps of the connection-level headers for the forward.
struct Hop {
    /// `Host` (or the authority of an absolute-form target).
    host: Option<HeaderValue>,
    upgrade: Option<Upgrade>,
    /// The client sent `te: trailers`.
    te_trailers: bool,
}

/// What step 3 makes of the request target.
struct Target {
    /// The one canonical path that is matched and forwarded.
    canonical: String,
    host: Option<String>,
}

/// 2. Framing first, while the headers are as the client sent them: a request whose length
///    or target can be read two ways is refused before any header is removed or trusted.
///    Then hygiene: hop-by-hop headers and everything named in `Connection` go (so
///    `Connection: X-User-Id` cannot remove what we inject later), an upgrade survives only
///    if it is allowed, and every client spelling of our identity headers is removed.
///    A WebSocket over HTTP/2 (extended CONNECT) becomes the `GET` upgrade it stands for
///    here, so that the allow-list, the policy and the authentication see it as they see
///    an HTTP/1.1 one.
fn hygiene(
    app: &App,
    conn: &Connection,
    request: &mut Request<Incoming>,
) -> Result<Hop, ProxyError> {
    let host = framing::check(request).map_err(ProxyError::Framing)?;
    let te_trailers = asks_for_trailers(request.headers());
    let requested = headers::remove_hop_by_hop(request.headers_mut());
    let (requested, extended_connect) = match extended_connect(request) {
        Some(protocol) => (Some(protocol), true),
        None => (requested, false),
    };
    let upgrade = app
        .upstream
        .admit_upgrade(request, requested, extended_connect, &conn.slot);
    if extended_connect && upgrade.is_none() {
        return Err(ProxyError::MethodNotAllowed);
    }
    app.identity.strip_spoofed(request.headers_mut());
    if request.headers().len() > app.max_headers {
        return Err(ProxyError::HeadersTooLarge);
    }
    Ok(Hop {
        host,
        upgrade,
        te_trailers,
    })
}

/// 3. The request target. Only origin-form paths are proxied; the authority of an
///    absolute-form target replaces `Host` (RFC 9112 §3.2.2) and is never a route. The
///    canonical path is computed once: matching and forwarding both use it, so the upstream
///    can never be handed a path other than the one that was checked.
fn target(
    request: &Request<Incoming>,
    hop: &Hop,
    checked: &mut Checked,
) -> Result<Target, ProxyError> {
    if request.method() == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed);
    }
    if !request.uri().path().starts_with('/') {
        return Err(ProxyError::BadRequest("the request target must be a path"));
    }
    let canonical = path::canonicalize(request.uri().path()).map_err(ProxyError::BadPath)?;
    let host = hop
        .host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    checked.canonical.clone_from(&canonical);
    checked.host.clone_from(&host);
    Ok(Target { canonical, host })
}

/// 4. Built-in endpoints, before routing: no policy can shadow or expose them. Those under
///    the login prefix (forward-auth among them, which decides for the request the proxy in
///    front describes) are answered by the `endpoints` router, which takes the request.
///    `None` for every other path.
fn built_in(
    app: &App,
    conn: &Connection,
    request: &Request<Incoming>,
    target: &Target,
) -> Option<Result<Admit, ProxyError>> {
    let canonical = target.canonical.as_str();
    if let Some(answer) = app
        .probes
        .as_ref()
        .and_then(|p| p.answer(request.method(), canonical))
    {
        return Some(Ok(Admit::Answer(answer)));
    }
    if let Some(name) = endpoints::name(app, canonical) {
        // `rd=` may name this origin: the listener's scheme with the `Host` we were sent to.
        let origin = target
            .host
            .as_deref()
            .and_then(|h| login::Origin::new(conn.info.scheme, h));
        return Some(Ok(Admit::Endpoint(endpoints::Call {
            name,
            canonical: target.canonical.clone(),
            host: target.host.clone(),
            origin,
        })));
    }
    if let Some(inspector) = &app.inspector
        && crate::inspector::is_path(canonical)
    {
        return Some(Ok(Admit::Answer(
            inspector.answer(request.method(), canonical),
        )));
    }
    if let Some(assertions) = &app.assertions
        && assertions.published()
        && canonical == assertion::JWKS_PATH
    {
        return Some(Ok(Admit::Answer(match *request.method() {
            Method::GET | Method::HEAD => crate::admin::jwks_answer(assertions),
            _ => ProxyError::MethodNotAllowed.into_response(),
        })));
    }
    None
}

/// Forwarding headers describe this hop; client copies count only from trusted proxies. Set
/// once no built-in endpoint answered, before anything below reads the request.
fn forwarding_headers(
    app: &App,
    conn: &Connection,
    request: &mut Request<Incoming>,
    request_id: &HeaderValue,
    hop: &Hop,
) {
    headers::set_forwarded(
        request.headers_mut(),
        conn.info.peer.ip(),
        conn.info.scheme,
        hop.host.clone(),
        &app.trusted_proxies,
    );
    request
        .headers_mut()
        .insert(X_REQUEST_ID, request_id.clone());
}

/// 5. Route match on (method, canonical path, host); the first rule wins. The policy's
///    default, when no rule matches, is decided (and noted) here.
fn route<'p>(
    policy: &'p Policy,
    request: &Request<Incoming>,
    target: &Target,
    checked: &mut Checked,
) -> Route<'p> {
    let route = policy.route(request.method(), &target.canonical, target.host.as_deref());
    match &route {
        Route::Rule(_) => {}
        Route::Default(DefaultAction::Allow) => checked.decided(
            DecisionEvent::new(audit::DEFAULT_ROUTE, Outcome::Allow, None).because("default allow"),
        ),
        Route::Default(DefaultAction::Deny) => checked.decided(
            DecisionEvent::new(audit::DEFAULT_ROUTE, Outcome::Forbidden, None)
                .because(audit::reason(&ProxyError::NoRoute)),
        ),
    }
    route
}

/// 6. Authenticate as the rule asks. A public route never looks at credentials. Key
///    fetches, introspection and session refreshes open their spans under this one. `Break`
///    is how the request ends when no identity could be established.
async fn identify(
    app: &App,
    conn: &Connection,
    request: &Request<Incoming>,
    rule: &Rule,
    checked: &mut Checked,
) -> ControlFlow<Result<Admit, ProxyError>, Caller> {
    let span = checked.child("authenticate");
    let authenticated = otel::within(
        span.as_ref().map(Child::context),
        authenticate(app, conn, request.headers(), rule.auth),
    )
    .await;
    if let Some(span) = span {
        match &authenticated {
            Ok(Caller {
                authenticated: Some(a),
                ..
            }) => span.set("gatehouse.auth.method", a.principal.method.as_str()),
            Ok(_) => {}
            Err(_) => span.fail("not authenticated"),
        }
    }
    let error = match authenticated {
        Ok(caller) => return ControlFlow::Continue(caller),
        Err(error) => error,
    };
    checked.decided(
        DecisionEvent::new(&rule.name, Outcome::Unauthenticated, None)
            .because(audit::reason(&error)),
    );
    if error == ProxyError::SessionStoreUnavailable && login::is_navigation(request.headers()) {
        return ControlFlow::Break(Ok(Admit::Answer(login::store_unavailable_page())));
    }
    ControlFlow::Break(Err(error))
}

/// 7. Authorize against the rule's requirements; 8. answer refusals in kind: a browser is
///    sent to the login or shown a page, an API client gets 401/403 JSON. `Break` is the
///    refusal.
fn authorize(
    app: &App,
    request: &Request<Incoming>,
    rule: &Rule,
    target: &Target,
    caller: Caller,
    checked: &mut Checked,
) -> ControlFlow<Admit, Caller> {
    let shared = caller.authenticated.as_ref().map(|a| &a.principal);
    let principal = shared.map(|p| p.as_ref());
    match rule.authorize(principal) {
        Decision::Allow => {
            checked.decided(DecisionEvent::new(&rule.name, Outcome::Allow, shared));
            ControlFlow::Continue(caller)
        }
        Decision::Unauthenticated => {
            let error = ProxyError::Unauthenticated(missing_credential(rule.auth));
            checked.decided(
                DecisionEvent::new(&rule.name, Outcome::Unauthenticated, shared)
                    .because(audit::reason(&error)),
            );
            ControlFlow::Break(match &app.login {
                Some(login) if wants_login(rule, request) => Admit::Answer(login::with_cookies(
                    login.redirect_to_login(
                        &original_target(&target.canonical, request),
                        request.method(),
                        rule.only_provider(),
                    ),
                    &caller.set_cookies,
                )),
                _ => Admit::Refuse(error, caller.set_cookies),
            })
        }
        Decision::Forbidden(denial) => {
            checked.decided(
                DecisionEvent::new(&rule.name, Outcome::Forbidden, shared)
                    .because(format!("needs {}", denial.needed)),
            );
            ControlFlow::Break(match (&app.login, principal) {
                (Some(login), Some(p))
                    if p.method == AuthMethod::Session && accepts_html(request) =>
                {
                    Admit::Answer(login::with_cookies(
                        login.forbidden_page(p, &denial.needed),
                        &caller.set_cookies,
                    ))
                }
                _ => Admit::Refuse(
                    ProxyError::Forbidden {
                        needed: denial.needed,
                        scope: denial.scope,
                    },
                    caller.set_cookies,
                ),
            })
        }
    }
}

/// 9. Inject the identity; the credentials themselves stay here unless asked for. Returns
///    the principal (for the identity headers written with the forward) and the cookies to set.
fn inject(
    app: &App,
    conn: &Connection,
    request: &mut Request<Incoming>,
    rule: &Rule,
    caller: Caller,
) -> Result<(Option<Arc<Principal>>, Vec<HeaderValue>), ProxyError> {
    let pass_authorization = rule.pass_authorization
        || caller
            .authenticated
            .as_ref()
            .is_some_and(|a| a.pass_authorization);
    let principal = caller.authenticated.map(|a| a.principal);
    if let Some(principal) = &principal {
        vouch(app, conn, request, principal)?;
    }
    if !pass_authorization {
        request.headers_mut().remove(header::AUTHORIZATION);
    }
    // A session's access token, when the login settings send it (as `Authorization` too).
    if let (Some(login), Some(token)) = (&app.login, &caller.access_token) {
        login.pass_access_token(request.headers_mut(), token);
    }
    Ok((principal, caller.set_cookies))
}

/// Authenticates as `mode` asks: bearer, session, client certificate, or (for `any`) bearer
/// when an `Authorization` header is present, else the client certificate when there is one,
/// else the session. A token and a certificate together: the token's identity wins.
pub(crate) async fn authenticate(
    app: &App,
    conn: &Connection,
    headers: &http::HeaderMap,
    mode: AuthMode,
) -> Result<Caller, ProxyError> {
    let has_token = headers.contains_key(header::AUTHORIZATION);
    let use_bearer = match mode {
        AuthMode::None => return Ok(Caller::default()),
        AuthMode::Bearer => true,
        AuthMode::Session => false,
        AuthMode::Mtls => return certificate(&conn.peer_cert),
        AuthMode::Any if has_token => {
            if let PeerCert::Verified(cert) = &conn.peer_cert {
                tracing::info!(
                    certificate = %cert.principal.subject,
                    "both a bearer token and a client certificate: the token's identity wins"
                );
            }
            true
        }
        AuthMode::Any if !matches!(conn.peer_cert, PeerCert::None) => {
            return certificate(&conn.peer_cert);
        }
        AuthMode::Any => app.login.is_none(),
    };
    if use_bearer {
        return Ok(Caller {
            authenticated: bearer(app, &conn.memo, headers).await?,
            ..Caller::default()
        });
    }
    let Some(login) = &app.login else {
        return Ok(Caller::default());
    };
    // Boxed, like the token's verification: a session's refresh and store calls make a large
    // future that bearer requests would otherwise carry.
    Ok(
        match Box::pin(login.session(headers, &conn.session)).await {
            SessionState::None => Caller::default(),
            SessionState::Valid {
                principal,
                set_cookies,
                access_token,
            } => Caller {
                authenticated: Some(Authenticated {
                    principal,
                    pass_authorization: false,
                }),
                set_cookies,
                access_token,
            },
            SessionState::Ended { clear_cookies } => Caller {
                set_cookies: clear_cookies,
                ..Caller::default()
            },
            // Neither valid nor over: 503, the cookie stays, no login redirect.
            SessionState::Unavailable => return Err(ProxyError::SessionStoreUnavailable),
        },
    )
}

/// Does the client take trailers (`te: trailers`, which gRPC requires)?
fn asks_for_trailers(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::TE).iter().any(|te| {
        te.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    })
}

/// An HTTP/2 extended CONNECT (RFC 8441) turned into the `GET` upgrade it stands for; returns
/// the protocol it asked for. Other requests are left alone.
fn extended_connect(request: &mut Request<Incoming>) -> Option<HeaderValue> {
    if request.method() != Method::CONNECT || request.version() != http::Version::HTTP_2 {
        return None;
    }
    let protocol = request.extensions().get::<hyper::ext::Protocol>()?;
    let protocol = HeaderValue::from_str(protocol.as_str()).ok()?;
    *request.method_mut() = Method::GET;
    Some(protocol)
}

/// What a 401 on a route of `mode` says is missing: a session-only route asks for no bearer
/// token, since it would not take one.
pub(crate) fn missing_credential(mode: AuthMode) -> Credential {
    match mode {
        AuthMode::Session => Credential::NoSession,
        AuthMode::Bearer | AuthMode::Any | AuthMode::Mtls | AuthMode::None => Credential::Missing,
    }
}

/// The caller as the connection's client certificate proves it.
fn certificate(peer: &PeerCert) -> Result<Caller, ProxyError> {
    match peer {
        PeerCert::None => Ok(Caller::default()),
        PeerCert::Verified(cert) => Ok(Caller {
            authenticated: Some(Authenticated {
                principal: cert.principal.clone(),
                pass_authorization: false,
            }),
            ..Caller::default()
        }),
        PeerCert::Unusable(why) => Err(ProxyError::Unauthenticated(Credential::Certificate(*why))),
    }
}

/// Should an unauthenticated request on `rule` be sent to the login page? Never a gRPC call:
/// its client can follow no redirect.
fn wants_login(rule: &Rule, request: &Request<Incoming>) -> bool {
    if grpc::is_grpc(request.headers()) {
        return false;
    }
    let session_route = matches!(rule.auth, AuthMode::Session | AuthMode::Any);
    match rule.on_unauthenticated {
        OnUnauthenticated::Redirect => session_route,
        OnUnauthenticated::Deny => false,
        OnUnauthenticated::Auto => session_route && login::is_navigation(request.headers()),
    }
}

fn accepts_html(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The canonical path with the original query, to come back to after login.
fn original_target(canonical: &str, request: &Request<Incoming>) -> String {
    match request.uri().query() {
        Some(query) => format!("{canonical}?{query}"),
        None => canonical.to_owned(),
    }
}

/// The bearer token of the request, verified; `None` when there is none.
async fn bearer(
    app: &App,
    memo: &TokenMemo,
    headers: &http::HeaderMap,
) -> Result<Option<Authenticated>, ProxyError> {
    let token = match jwt::bearer_token(headers) {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(None),
        Err(_) => return Err(ProxyError::Unauthenticated(Credential::Malformed)),
    };
    match app.verifier.verify_on(token, memo).await {
        Ok(authenticated) => Ok(Some(authenticated)),
        Err(TokenError::KeysUnavailable) => Err(ProxyError::KeysUnavailable),
        Err(TokenError::IntrospectionUnavailable) => Err(ProxyError::IntrospectionUnavailable),
        Err(why) => Err(ProxyError::Unauthenticated(Credential::Invalid(why))),
    }
}

/// What vouches for the identity beyond the plain headers: the verified client certificate
/// (when the app asked for it) and the signed assertion (when enabled).
fn vouch(
    app: &App,
    conn: &Connection,
    request: &mut Request<Incoming>,
    principal: &Principal,
) -> Result<(), ProxyError> {
    if let (Some(ClientAuth { forward: true, .. }), PeerCert::Verified(cert)) =
        (&app.client_auth, &conn.peer_cert)
    {
        request
            .headers_mut()
            .insert(headers::X_FORWARDED_CLIENT_CERT, cert.xfcc.clone());
    }
    if let Some(assertions) = &app.assertions {
        let signed = assertions.for_principal(principal).map_err(|error| {
            tracing::error!(%error, "identity assertion not made; request refused");
            ProxyError::Internal
        })?;
        request
            .headers_mut()
            .insert(assertions.header().clone(), signed);
    }
    Ok(())
}

/// Builds what goes upstream: the identity headers, our cookies removed, the canonical path.
fn forward(
    app: &App,
    request: &mut Request<Incoming>,
    canonical: String,
    hop: Hop,
    principal: Option<&Principal>,
    set_cookies: Vec<HeaderValue>,
) -> Result<Forward, ProxyError> {
    // The principal passed the identity rules where it was made; should a value still not
    // be writable, the request is refused rather than forwarded without it.
    if let Some(principal) = principal
        && let Err(error) = app.identity.inject(request.headers_mut(), principal)
    {
        tracing::warn!(subject = ?principal.subject, %error, "identity headers cannot be written");
        return Err(ProxyError::Unauthenticated(Credential::Invalid(
            TokenError::Claims,
        )));
    }
    if let Some(login) = &app.login {
        login.strip_cookies(request.headers_mut());
    }
    let path = match request.uri().query() {
        Some(query) => PathAndQuery::try_from(format!("{canonical}?{query}")),
        None => PathAndQuery::try_from(canonical),
    }
    .map_err(|_| ProxyError::BadRequest("the request target cannot be forwarded"))?;
    Ok(Forward {
        path,
        host: hop.host,
        upgrade: hop.upgrade,
        te_trailers: hop.te_trailers,
        set_cookies,
    })
}

/// 5a. A CORS preflight carries no credential: it is recognised before the route match,
///    so that it is judged by the route of the request it announces and never
///    authenticated nor sent to the login.
fn preflight_of(request: &Request<Incoming>) -> Result<Option<cors::Preflight>, ProxyError> {
    let bodyless = hyper::body::Body::is_end_stream(request.body());
    cors::Preflight::of(request.method(), request.headers(), bodyless)
        .map_err(ProxyError::BadRequest)
}

/// 5a. The preflight's own step: a CORS preflight on the route of the request it announces (see `cors`). `pass`
/// forwards it with no identity, `answer` answers it here, and a route without `cors` (or the
/// default deny) refuses it with 403 and no CORS headers, unless the route is public
/// (`auth: none`). Under `default: allow` an unmatched preflight is forwarded, with no
/// identity, like every unmatched request.
fn preflight(
    app: &App,
    request: &mut Request<Incoming>,
    target: Target,
    hop: Hop,
    checked: &mut Checked,
    ask: &cors::Preflight,
) -> Result<Admit, ProxyError> {
    let policy = app.policy.load();
    let (name, cors) = match policy.route(&ask.method, &target.canonical, target.host.as_deref()) {
        // A public route without `cors` lets its preflights through as it lets everything
        // through: no identity, and the app answers.
        Route::Rule(rule) if rule.cors.is_none() && rule.auth == AuthMode::None => {
            checked.decided(
                DecisionEvent::new(&rule.name, Outcome::Allow, None).because("public route"),
            );
            request.headers_mut().remove(header::AUTHORIZATION);
            return forward(app, request, target.canonical, hop, None, Vec::new())
                .map(Admit::Forward);
        }
        Route::Rule(rule) => (rule.name.as_str(), rule.cors.as_deref()),
        Route::Default(DefaultAction::Allow) => {
            checked.decided(
                DecisionEvent::new(audit::DEFAULT_ROUTE, Outcome::Allow, None)
                    .because("default allow"),
            );
            request.headers_mut().remove(header::AUTHORIZATION);
            return forward(app, request, target.canonical, hop, None, Vec::new())
                .map(Admit::Forward);
        }
        Route::Default(DefaultAction::Deny) => (audit::DEFAULT_ROUTE, None),
    };
    if let Some(cors) = cors
        && cors.preflight == PreflightMode::Pass
    {
        checked.decided(
            DecisionEvent::new(name, Outcome::Allow, None).because("cors preflight passed"),
        );
        request.headers_mut().remove(header::AUTHORIZATION);
        return forward(app, request, target.canonical, hop, None, Vec::new()).map(Admit::Forward);
    }
    let (response, outcome) = match cors {
        Some(cors) => cors.answer(ask),
        None => (cors::refused_preflight(), Err(cors::Refused::NoCors)),
    };
    let event = match outcome {
        Ok(()) => DecisionEvent::new(name, Outcome::Allow, None).because("cors preflight answered"),
        Err(why) => DecisionEvent::new(name, Outcome::Forbidden, None).because(why.to_string()),
    };
    checked.decided(event);
    Ok(Admit::Answer(response))
}
