//! The built-in endpoints under the login prefix (`/oauth2` unless configured): `start`,
//! `callback`, `sign_out`, `signed_out`, `userinfo`, `auth` (forward-auth),
//! `backchannel_logout`, and the dev login page's `dev_login`. They are an axum [`Router`]
//! with typed extractors (`Query`, `Form`) for their parameters; the stack calls it only for
//! paths under the prefix (step 4 of the lifecycle), so the forward path never meets it.
//!
//! The router sees the path relative to the prefix (`/start`), so it is built once whatever
//! the prefix is, and the request's canonical path and host travel with it as a [`Call`]. Every
//! handler answers `Result<Response, ProxyError>`: refusals, rejected extractors included, go
//! back to the stack as the `ProxyError` and are answered by the one mapping in `error`, in
//! gRPC's form for a gRPC client, exactly as every other refusal.
//!
//! Depends on `login` and `forward_auth` for the answers and on `stack` for authentication
//! (one implementation of "who is this caller").

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Form, FromRequest, FromRequestParts, Query, Request};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, any, get, post};
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde::Deserialize;
use tower_service::Service as _;

use crate::body::{self, Body};
use crate::error::{Credential, ProxyError};
use crate::forward_auth::{self, Constraints};
use crate::login::{self, CallbackParams, DevChoice, Login, Origin};
use crate::policy::AuthMode;
use crate::stack::{self, App, Connection};

/// One request for an endpoint, as step 4 found it: what the handlers need beyond the
/// request itself.
#[derive(Debug, Clone)]
pub struct Call {
    /// The endpoint's path after the prefix, without the `/`: `start`, `callback`, ...
    pub name: String,
    /// The request's canonical path and host (forward-auth falls back to them).
    pub canonical: String,
    pub host: Option<String>,
    /// The origin the request came to, which `rd=` may name.
    pub origin: Option<Origin>,
}

/// What the handlers are given besides the request: the app, the connection and the call.
#[derive(Clone)]
struct Context {
    app: Arc<App>,
    conn: Arc<Connection>,
    call: Arc<Call>,
}

/// The endpoint name when `canonical` is one of ours: every path under the login prefix,
/// and forward-auth's default path in a config with `forward_auth: true` and no login.
pub fn name(app: &App, canonical: &str) -> Option<String> {
    match &app.login {
        Some(login) => login.endpoint_name(canonical).map(str::to_owned),
        None if forward_auth::is_endpoint(app, canonical) => Some("auth".to_owned()),
        None => None,
    }
}

/// The endpoints as a router, for this login (none: forward-auth only). `start`, `callback`,
/// `sign_out` and `signed_out` take `GET` (and `HEAD`) and answer anything else with an
/// empty 405; `dev_login` exists only in dev mode, and only for `GET`; `backchannel_logout`
/// takes `POST` only; `userinfo` and `auth` take any method. Any other name is 404.
pub fn router(login: Option<&Login>) -> Router {
    let flow = |route: MethodRouter| route.fallback(empty_405);
    let mut router = Router::new()
        .route("/start", flow(get(start)))
        .route("/callback", flow(get(callback)))
        .route("/sign_out", flow(get(sign_out)))
        .route("/signed_out", flow(get(signed_out)))
        .route("/userinfo", any(userinfo))
        .route("/auth", any(auth))
        .route(
            "/backchannel_logout",
            post(backchannel_logout)
                .fallback(refuse_method)
                .layer(DefaultBodyLimit::max(login::BACKCHANNEL_MAX_BODY)),
        );
    if login.is_some_and(Login::is_dev) {
        router = router.route("/dev_login", get(dev_login).fallback(not_found));
    }
    router.fallback(not_found)
}

/// Answers one endpoint request: the router called with the request addressed to the path
/// after the prefix. `Err` is a refusal, for the stack to answer as it answers all of them.
pub async fn answer(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    call: Call,
    request: http::Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = request.into_parts();
    let target = match parts.uri.query() {
        Some(query) => format!("/{}?{query}", call.name),
        None => format!("/{}", call.name),
    };
    parts.uri = target
        .parse()
        .map_err(|_| ProxyError::BadRequest("the request target cannot be read"))?;
    parts.extensions.insert(Context {
        app: app.clone(),
        conn: conn.clone(),
        call: Arc::new(call),
    });
    let request = http::Request::from_parts(parts, body);
    let Ok(mut response) = app.endpoints.clone().call(request).await;
    if let Some(Refused(error)) = response.extensions_mut().remove::<Refused>() {
        return Err(error);
    }
    // The answers are small and already in memory: collecting them copies no stream.
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|_| ProxyError::Internal)?
        .to_bytes();
    Ok(Response::from_parts(parts, body::full(bytes)))
}

/// A handler's answer: Gatehouse's response, or the refusal the stack answers.
struct Answer(Result<Response<Body>, ProxyError>);

impl From<Response<Body>> for Answer {
    fn from(response: Response<Body>) -> Self {
        Self(Ok(response))
    }
}

impl From<Result<Response<Body>, ProxyError>> for Answer {
    fn from(answered: Result<Response<Body>, ProxyError>) -> Self {
        Self(answered)
    }
}

impl From<ProxyError> for Answer {
    fn from(error: ProxyError) -> Self {
        Self(Err(error))
    }
}

/// A refusal on its way back to the stack, carried in the router's response.
#[derive(Clone)]
struct Refused(ProxyError);

impl IntoResponse for Answer {
    fn into_response(self) -> axum::response::Response {
        match self.0 {
            Ok(response) => response.map(axum::body::Body::new),
            Err(error) => Refused(error).into_response(),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> axum::response::Response {
        let mut response = axum::response::Response::new(axum::body::Body::empty());
        response.extensions_mut().insert(self);
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Refused> {
        // `answer` always puts it there; a request that came another way is not ours.
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(Refused(ProxyError::NotFound))
    }
}

impl Context {
    /// The login: the router has flow routes only when there is one.
    fn login(&self) -> Result<&Arc<Login>, ProxyError> {
        self.app.login.as_ref().ok_or(ProxyError::NotFound)
    }
}

/// A query parameter sent twice is refused (400): OAuth 2.0 parameters "MUST NOT be included
/// more than once" (RFC 6749 §3.1), and guessing which one was meant could pick the wrong
/// `state` or `rd`.
struct Params<T>(T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refused> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(params)) => Ok(Self(params)),
            Err(rejection) => Err(Refused(query_refused(&rejection))),
        }
    }
}

/// The one place a rejected query becomes Gatehouse's refusal.
fn query_refused(rejection: &QueryRejection) -> ProxyError {
    tracing::debug!(%rejection, "endpoint query refused");
    ProxyError::BadRequest("a query parameter is repeated or malformed")
}

/// `rd=`, where to go afterwards.
#[derive(Debug, Deserialize)]
struct Rd {
    rd: Option<String>,
}

/// `start`'s query: `rd=`, and `provider=` to skip the chooser.
#[derive(Debug, Deserialize)]
struct StartParams {
    rd: Option<String>,
    provider: Option<String>,
}

async fn start(context: Context, headers: HeaderMap, Params(query): Params<StartParams>) -> Answer {
    match context.login() {
        Ok(login) => login
            .start(
                query.rd.as_deref(),
                query.provider.as_deref(),
                &headers,
                context.call.origin.as_ref(),
            )
            .into(),
        Err(error) => error.into(),
    }
}

async fn callback(
    context: Context,
    headers: HeaderMap,
    Params(query): Params<CallbackParams>,
) -> Answer {
    match context.login() {
        Ok(login) => login.callback(&query, &headers).await.into(),
        Err(error) => error.into(),
    }
}

async fn sign_out(context: Context, headers: HeaderMap, Params(query): Params<Rd>) -> Answer {
    match context.login() {
        Ok(login) => login
            .sign_out(query.rd.as_deref(), &headers, context.call.origin.as_ref())
            .await
            .into(),
        Err(error) => error.into(),
    }
}

async fn signed_out(context: Context) -> Answer {
    match context.login() {
        Ok(login) => login.signed_out().into(),
        Err(error) => error.into(),
    }
}

async fn dev_login(
    context: Context,
    headers: HeaderMap,
    Params(choice): Params<DevChoice>,
) -> Answer {
    match context.login() {
        Ok(login) => match login.dev_login(&choice, &headers).await {
            Some(response) => response.into(),
            None => not_found().await,
        },
        Err(error) => error.into(),
    }
}

/// Who the caller is, by any credential the stack accepts.
async fn userinfo(context: Context, headers: HeaderMap) -> Answer {
    let caller =
        match stack::authenticate(&context.app, &context.conn, &headers, AuthMode::Any).await {
            Ok(caller) => caller,
            Err(error) => return error.into(),
        };
    let response = match &caller.authenticated {
        Some(a) => login::userinfo(&a.principal),
        None => ProxyError::Unauthenticated(Credential::Missing).into_response(),
    };
    login::with_cookies(response, &caller.set_cookies).into()
}

/// oauth2-proxy's `allowed_*` parameters: repeatable, so read as the list of pairs.
async fn auth(
    context: Context,
    method: Method,
    headers: HeaderMap,
    Params(pairs): Params<Vec<(String, String)>>,
) -> Answer {
    let call = &context.call;
    let own = forward_auth::Own {
        method: &method,
        path: &call.canonical,
        host: call.host.as_deref(),
    };
    let constraints = Constraints::from_pairs(pairs);
    forward_auth::answer(&context.app, &context.conn, &headers, constraints, own)
        .await
        .into()
}

/// The back-channel logout form: its one `logout_token`.
#[derive(Debug, Deserialize)]
struct LogoutForm {
    logout_token: String,
}

/// The form body of a back-channel logout: refused (400) when it is not a form or cannot be
/// read within the limit; `None` when it does not hold exactly one `logout_token`, which
/// `Login::backchannel_logout` answers in the spec's terms.
struct Logout(Option<String>);

impl<S: Send + Sync> FromRequest<S> for Logout {
    type Rejection = Refused;

    async fn from_request(mut request: Request, state: &S) -> Result<Self, Refused> {
        if !is_form(request.headers()) {
            return Err(Refused(ProxyError::BadRequest(
                "send the logout token as an application/x-www-form-urlencoded form",
            )));
        }
        // The media type is case-insensitive (RFC 9110 §8.3.1); axum's `Form` compares the
        // spelling, so it is given the one it expects.
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        match Form::<LogoutForm>::from_request(request, state).await {
            Ok(Form(form)) => Ok(Self(Some(form.logout_token))),
            Err(rejection) => form_refused(rejection).map(|()| Self(None)),
        }
    }
}

/// The one place a rejected form becomes Gatehouse's answer: a body that cannot be read (or
/// is over the limit) is a bad body; a readable one without exactly one token is `Ok`, for
/// the logout to refuse.
fn form_refused(rejection: FormRejection) -> Result<(), Refused> {
    match rejection {
        FormRejection::BytesRejection(_) | FormRejection::InvalidFormContentType(_) => {
            Err(Refused(ProxyError::BadBody))
        }
        _ => Ok(()),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

/// `POST <prefix>/backchannel_logout` from the provider.
async fn backchannel_logout(context: Context, Logout(token): Logout) -> Answer {
    match context.login() {
        Ok(login) => login.backchannel_logout(token.as_deref()).await.into(),
        Err(error) => error.into(),
    }
}

/// The login flow's pages answer other methods with an empty 405, as they always did.
async fn empty_405() -> Answer {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response.into()
}

async fn refuse_method() -> Answer {
    ProxyError::MethodNotAllowed.into()
}

async fn not_found() -> Answer {
    ProxyError::NotFound.into_response().into()
}
