//! The request pipeline, assembled in one place in lifecycle order (design.md, "Request
//! lifecycle"). Each step says why it sits where it does. Connection-level work (TLS, header
//! limits, timeouts) happened in `server` before a request reaches this point.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::auth::jwt::{self, Authenticated, TokenError, TokenMemo, Verifier};
use crate::auth::{AuthMethod, Principal};
use crate::body::{AccessRecord, Body, Metered};
use crate::error::{Credential, ProxyError};
use crate::framing;
use crate::headers::{self, TrustedProxies, X_REQUEST_ID};
use crate::html;
use crate::identity::IdentityHeaders;
use crate::login::{self, Login, SessionState};
use crate::path;
use crate::policy::{AuthMode, Decision, DefaultAction, OnUnauthenticated, Policy, Route, Rule};
use crate::proxy::{Slot, Upgrade, Upstream};
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
    /// The connection's place under `limits.max_connections`; a tunnel keeps it.
    pub slot: Slot,
}

pub type ResponseBody = Metered<Body>;

pub async fn handle(
    app: &App,
    conn: &Connection,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    // 1. Identify and start recording first, so that every answer below, even a 400, carries
    //    the request id and produces exactly one access-log line.
    let request_id = headers::request_id(request.headers());
    let mut record = AccessRecord::start(
        request.method().clone(),
        request.uri().path(),
        request_id.clone(),
    );

    let browser = app.dev_mode && accepts_html(&request);
    let version = request.version();
    let mut response = match admit(app, conn, &mut request, &request_id).await {
        Ok(Admit::Forward(forward)) => {
            // 10. Forward exactly what was checked.
            let started = Instant::now();
            let result = app
                .upstream
                .forward(request, forward.path, forward.host, forward.upgrade)
                .await;
            record.upstream_time = Some(started.elapsed());
            let response = match result {
                Ok(mut response) => {
                    // Hop-by-hop headers of the upstream's connection stay with it.
                    headers::remove_hop_by_hop(response.headers_mut());
                    response.map(Body::Left)
                }
                Err(error) => {
                    telemetry::upstream_error(error.code());
                    match error {
                        // In dev mode the person at the browser is the app's developer: say
                        // which address is not answering, and keep retrying.
                        ProxyError::UpstreamConnect | ProxyError::UpstreamTimeout if browser => {
                            html::app_down(
                                app.upstream.address(),
                                error == ProxyError::UpstreamTimeout,
                            )
                        }
                        error => refusal(error, version),
                    }
                }
            };
            // A session refreshed on the way in is stored on the way out.
            login::with_cookies(response, &forward.set_cookies)
        }
        // 4 and 8. Built-in endpoints and refusals answer here, never upstream.
        Ok(Admit::Answer(response)) => response,
        Err(error) => refusal(error, version),
    };

    // 11. Record: the id goes back to the client; the log line is written when the body ends.
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    record.status = response.status().as_u16();
    response.map(|body| Metered::new(body, record))
}

/// The answer to a refused request. When the refusal means the rest of an HTTP/1 connection
/// cannot be read safely, the answer says so and hyper closes the connection after it.
fn refusal(error: ProxyError, version: http::Version) -> Response<Body> {
    let close = error.closes_connection() && version < http::Version::HTTP_2;
    let mut response = error.into_response();
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
    /// Answered by Gatehouse itself (login endpoints, login redirects, HTML pages).
    Answer(Response<Body>),
}

/// What goes upstream.
struct Forward {
    path: PathAndQuery,
    host: Option<HeaderValue>,
    upgrade: Option<Upgrade>,
    /// Cookies to set on the answer (a refreshed session).
    set_cookies: Vec<HeaderValue>,
}

/// Who the caller turned out to be, and what cookies that requires us to set.
#[derive(Default)]
struct Caller {
    authenticated: Option<Authenticated>,
    set_cookies: Vec<HeaderValue>,
}

/// Steps 2 to 9: everything that decides whether and how the request goes upstream.
async fn admit(
    app: &App,
    conn: &Connection,
    request: &mut Request<Incoming>,
    request_id: &HeaderValue,
) -> Result<Admit, ProxyError> {
    let memo = &conn.memo;
    // 2. Framing first, while the headers are as the client sent them: a request whose length
    //    or target can be read two ways is refused before any header is removed or trusted.
    //    Then hygiene: hop-by-hop headers and everything named in `Connection` go (so
    //    `Connection: X-User-Id` cannot remove what we inject later), an upgrade survives only
    //    if it is allowed, and every client spelling of our identity headers is removed.
    let host = framing::check(request).map_err(ProxyError::Framing)?;
    let requested = headers::remove_hop_by_hop(request.headers_mut());
    let upgrade = app.upstream.admit_upgrade(request, requested, &conn.slot);
    app.identity.strip_spoofed(request.headers_mut());
    if request.headers().len() > app.max_headers {
        return Err(ProxyError::HeadersTooLarge);
    }

    // 3. The request target. Only origin-form paths are proxied; the authority of an
    //    absolute-form target replaces `Host` (RFC 9112 §3.2.2) and is never a route. The
    //    canonical path is computed once: matching and forwarding both use it, so the upstream
    //    can never be handed a path other than the one that was checked.
    if request.method() == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed);
    }
    if !request.uri().path().starts_with('/') {
        return Err(ProxyError::BadRequest("the request target must be a path"));
    }
    let canonical = path::canonicalize(request.uri().path()).map_err(ProxyError::BadPath)?;
    let host_name = host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);

    // 4. Built-in endpoints, before routing: no policy can shadow or expose them.
    if let Some(login) = &app.login
        && let Some(name) = login.endpoint_name(&canonical)
    {
        return endpoint(app, memo, login, name, request, host_name.as_deref()).await;
    }

    // Forwarding headers describe this hop; client copies count only from trusted proxies.
    headers::set_forwarded(
        request.headers_mut(),
        conn.info.peer.ip(),
        conn.info.scheme,
        host.clone(),
        &app.trusted_proxies,
    );
    request
        .headers_mut()
        .insert(X_REQUEST_ID, request_id.clone());

    // 5. Route match on (method, canonical path, host); the first rule wins.
    let policy = app.policy.load();
    let rule = match policy.route(request.method(), &canonical, host_name.as_deref()) {
        Route::Rule(rule) => rule,
        Route::Default(DefaultAction::Allow) => {
            telemetry::decision("(default)", Outcome::Allow);
            request.headers_mut().remove(header::AUTHORIZATION);
            return Ok(Admit::Forward(forward(
                app,
                request,
                canonical,
                host,
                upgrade,
                None,
                Vec::new(),
            )?));
        }
        Route::Default(DefaultAction::Deny) => {
            telemetry::decision("(default)", Outcome::Forbidden);
            return Err(ProxyError::NoRoute);
        }
    };

    // 6. Authenticate as the rule asks. A public route never looks at credentials.
    let caller = match authenticate(app, memo, request, rule.auth).await {
        Ok(caller) => caller,
        Err(error) => {
            telemetry::decision(&rule.name, Outcome::Unauthenticated);
            return Err(error);
        }
    };

    // 7. Authorize against the rule's requirements; 8. answer refusals in kind: a browser is
    //    sent to the login or shown a page, an API client gets 401/403 JSON.
    let principal = caller.authenticated.as_ref().map(|a| a.principal.as_ref());
    match rule.authorize(principal) {
        Decision::Allow => telemetry::decision(&rule.name, Outcome::Allow),
        Decision::Unauthenticated => {
            telemetry::decision(&rule.name, Outcome::Unauthenticated);
            let answer = match &app.login {
                Some(login) if wants_login(rule, request) => {
                    login.redirect_to_login(&original_target(&canonical, request))
                }
                _ => ProxyError::Unauthenticated(Credential::Missing).into_response(),
            };
            return Ok(Admit::Answer(login::with_cookies(
                answer,
                &caller.set_cookies,
            )));
        }
        Decision::Forbidden(denial) => {
            telemetry::decision(&rule.name, Outcome::Forbidden);
            let answer = match (&app.login, principal) {
                (Some(login), Some(p))
                    if p.method == AuthMethod::Session && accepts_html(request) =>
                {
                    login.forbidden_page(p, &denial.needed)
                }
                _ => ProxyError::Forbidden {
                    needed: denial.needed,
                    scope: denial.scope,
                }
                .into_response(),
            };
            return Ok(Admit::Answer(login::with_cookies(
                answer,
                &caller.set_cookies,
            )));
        }
    }

    // 9. Inject the identity; the credentials themselves stay here unless asked for.
    let pass_authorization = rule.pass_authorization
        || caller
            .authenticated
            .as_ref()
            .is_some_and(|a| a.pass_authorization);
    let principal = caller.authenticated.map(|a| a.principal);
    let forward = forward(
        app,
        request,
        canonical,
        host,
        upgrade,
        principal.as_deref(),
        caller.set_cookies,
    );
    if !pass_authorization {
        request.headers_mut().remove(header::AUTHORIZATION);
    }
    forward.map(Admit::Forward)
}

/// Authenticates as `mode` asks: bearer, session, or (for `any`) bearer when an
/// `Authorization` header is present and the session otherwise.
async fn authenticate(
    app: &App,
    memo: &TokenMemo,
    request: &Request<Incoming>,
    mode: AuthMode,
) -> Result<Caller, ProxyError> {
    let use_bearer = match mode {
        AuthMode::None => return Ok(Caller::default()),
        AuthMode::Bearer => true,
        AuthMode::Session => false,
        AuthMode::Any => {
            request.headers().contains_key(header::AUTHORIZATION) || app.login.is_none()
        }
    };
    if use_bearer {
        return Ok(Caller {
            authenticated: bearer(app, memo, request).await?,
            set_cookies: Vec::new(),
        });
    }
    let Some(login) = &app.login else {
        return Ok(Caller::default());
    };
    Ok(match login.session(request.headers()).await {
        SessionState::None => Caller::default(),
        SessionState::Valid {
            principal,
            set_cookies,
        } => Caller {
            authenticated: Some(Authenticated {
                principal,
                pass_authorization: false,
            }),
            set_cookies,
        },
        SessionState::Ended { clear_cookies } => Caller {
            authenticated: None,
            set_cookies: clear_cookies,
        },
    })
}

/// Should an unauthenticated request on `rule` be sent to the login page?
fn wants_login(rule: &Rule, request: &Request<Incoming>) -> bool {
    let session_route = matches!(rule.auth, AuthMode::Session | AuthMode::Any);
    match rule.on_unauthenticated {
        OnUnauthenticated::Redirect => session_route,
        OnUnauthenticated::Deny => false,
        OnUnauthenticated::Auto => {
            session_route && login::is_navigation(request.method(), request.headers())
        }
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

/// The built-in endpoints under the login prefix.
async fn endpoint(
    app: &App,
    memo: &TokenMemo,
    login: &Login,
    name: &str,
    request: &Request<Incoming>,
    host: Option<&str>,
) -> Result<Admit, ProxyError> {
    let answered = login
        .flow_endpoint(
            name,
            request.method(),
            request.uri().query(),
            request.headers(),
            host,
        )
        .await;
    if let Some(response) = answered {
        return Ok(Admit::Answer(response));
    }
    let userinfo = match name {
        "userinfo" => true,
        "auth" => false,
        _ => return Ok(Admit::Answer(ProxyError::NotFound.into_response())),
    };
    let caller = authenticate(app, memo, request, AuthMode::Any).await?;
    let response = match &caller.authenticated {
        Some(a) if userinfo => login::userinfo(&a.principal),
        Some(a) => match login::auth_answer(&a.principal, app.identity.rules()) {
            Ok(response) => response,
            Err(error) => {
                tracing::info!(subject = ?a.principal.subject, %error, "forward-auth refused: the identity cannot be sent in X-Auth-Request-* headers");
                ProxyError::Unauthenticated(Credential::Invalid(TokenError::Claims)).into_response()
            }
        },
        None => ProxyError::Unauthenticated(Credential::Missing).into_response(),
    };
    Ok(Admit::Answer(login::with_cookies(
        response,
        &caller.set_cookies,
    )))
}

/// The bearer token of the request, verified; `None` when there is none.
async fn bearer(
    app: &App,
    memo: &TokenMemo,
    request: &Request<Incoming>,
) -> Result<Option<Authenticated>, ProxyError> {
    let token = match jwt::bearer_token(request.headers()) {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(None),
        Err(_) => return Err(ProxyError::Unauthenticated(Credential::Malformed)),
    };
    match app.verifier.verify_on(token, memo).await {
        Ok(authenticated) => Ok(Some(authenticated)),
        Err(TokenError::KeysUnavailable) => Err(ProxyError::KeysUnavailable),
        Err(why) => Err(ProxyError::Unauthenticated(Credential::Invalid(why))),
    }
}

/// Builds what goes upstream: the identity headers, our cookies removed, the canonical path.
fn forward(
    app: &App,
    request: &mut Request<Incoming>,
    canonical: String,
    host: Option<HeaderValue>,
    upgrade: Option<Upgrade>,
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
        host,
        upgrade,
        set_cookies,
    })
}
