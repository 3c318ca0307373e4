//! Errors that end a request early, and the one place that turns them into HTTP answers.
//!
//! Every variant knows whose fault it was (client, upstream, us), which decides the status.
//! Bodies are small JSON objects that name the problem class and never an internal detail.

use http::{HeaderValue, Response, StatusCode, header};

use crate::auth::cert::CertError;
use crate::auth::jwt::TokenError;

use crate::body::{self, Body};
use crate::framing::FramingError;
use crate::grpc;
use crate::path::PathError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The route needs a credential and none (usable) was sent.
    #[error("unauthenticated")]
    Unauthenticated(Credential),
    /// The caller is known and lacks what the route requires.
    #[error("forbidden: needs {needed}")]
    Forbidden { needed: String, scope: bool },
    /// No route matches and the policy's default is deny.
    #[error("no route allows this request")]
    NoRoute,
    /// The issuer's signing keys are not available: we cannot decide, so we do not guess.
    #[error("signing keys unavailable")]
    KeysUnavailable,
    /// The session store (Redis) cannot answer: the session is neither valid nor over.
    #[error("session store unavailable")]
    SessionStoreUnavailable,
    /// No introspection endpoint could say whether an opaque token is active: 503 with
    /// `Retry-After`, never a 401.
    #[error("token introspection unavailable")]
    IntrospectionUnavailable,
    /// Nothing here by that name (an unknown built-in endpoint).
    #[error("not found")]
    NotFound,
    /// More header fields than `limits.max_headers` (HTTP/2; HTTP/1.1 is refused by the parser).
    #[error("too many header fields")]
    HeadersTooLarge,
    /// The client sent something we refuse to interpret.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request's framing or target can be read more than one way (see `framing`).
    #[error("bad framing: {0}")]
    Framing(FramingError),
    /// The request body broke its framing on the way (a bad chunk, a short HTTP/2 stream).
    #[error("bad request body")]
    BadBody,
    /// The path has no single safe spelling (see `path`).
    #[error("bad path: {0}")]
    BadPath(PathError),
    /// A method a reverse proxy does not serve (`CONNECT`).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The upstream refused or dropped the connection before answering.
    #[error("upstream connection failed")]
    UpstreamConnect,
    /// The upstream did not answer in time (connect or response headers).
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The upstream answered with something that is not valid HTTP.
    #[error("upstream protocol error")]
    UpstreamProtocol,
    /// The upstream reset the HTTP/2 stream (with this error code) before answering. An
    /// HTTP/2 client gets the same reset (see `stack`); others get 502.
    #[error("upstream reset the stream ({0})")]
    UpstreamReset(u32),
    /// A fault on our side that the client cannot fix.
    #[error("internal error")]
    Internal,
}

/// What was wrong with the credential, for `WWW-Authenticate` (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// No credential at all: the challenge carries no error code.
    Missing,
    /// No session on a route that takes only a session (`auth: session`). No `Bearer`
    /// challenge: a token would not be accepted there, so none is asked for.
    NoSession,
    /// Not a well-formed bearer credential (e.g. two `Authorization` headers).
    Malformed,
    Invalid(TokenError),
    /// A verified client certificate that names no usable identity.
    Certificate(CertError),
}

const REALM: &str = "gatehouse";

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } | Self::NoRoute => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::KeysUnavailable
            | Self::SessionStoreUnavailable
            | Self::IntrospectionUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Framing(why) if why.not_implemented() => StatusCode::NOT_IMPLEMENTED,
            Self::BadRequest(_) | Self::BadPath(_) | Self::Framing(_) | Self::BadBody => {
                StatusCode::BAD_REQUEST
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UpstreamConnect | Self::UpstreamProtocol | Self::UpstreamReset(_) => {
                StatusCode::BAD_GATEWAY
            }
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code, also used as the metric label for upstream errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(Credential::Missing | Credential::NoSession) => "unauthenticated",
            Self::Unauthenticated(Credential::Malformed) => "invalid_request",
            Self::Unauthenticated(Credential::Invalid(_)) => "invalid_token",
            Self::Unauthenticated(Credential::Certificate(_)) => "invalid_client_certificate",
            Self::Forbidden { .. } | Self::NoRoute => "forbidden",
            Self::NotFound => "not_found",
            Self::KeysUnavailable => "keys_unavailable",
            Self::SessionStoreUnavailable => "session_store_unavailable",
            Self::IntrospectionUnavailable => "introspection_unavailable",
            Self::HeadersTooLarge => "headers_too_large",
            Self::BadRequest(_) => "bad_request",
            Self::BadPath(_) => "bad_path",
            Self::Framing(_) => "bad_framing",
            Self::BadBody => "bad_body",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UpstreamConnect => "upstream_connect",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamProtocol => "upstream_protocol",
            Self::UpstreamReset(_) => "upstream_reset",
            Self::Internal => "internal",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unauthenticated(Credential::Missing) => {
                "this route needs authentication".to_owned()
            }
            Self::Unauthenticated(Credential::NoSession) => {
                "this route needs a signed-in session".to_owned()
            }
            Self::Unauthenticated(Credential::Malformed) => {
                "send exactly one `Authorization: Bearer <token>` header".to_owned()
            }
            Self::Unauthenticated(Credential::Invalid(why)) => why.to_string(),
            Self::Unauthenticated(Credential::Certificate(why)) => why.to_string(),
            Self::Forbidden { needed, .. } => format!("this route needs {needed}"),
            Self::NoRoute => "no route allows this request".to_owned(),
            Self::NotFound => "not found".to_owned(),
            Self::KeysUnavailable => {
                "the token issuer's keys are unavailable; try again shortly".to_owned()
            }
            Self::SessionStoreUnavailable => {
                "sessions cannot be checked right now; try again shortly".to_owned()
            }
            Self::IntrospectionUnavailable => {
                "the token issuer cannot be asked about the token; try again shortly".to_owned()
            }
            Self::HeadersTooLarge => "too many header fields".to_owned(),
            Self::BadRequest(why) => (*why).to_owned(),
            Self::BadPath(why) => why.to_string(),
            Self::Framing(why) => why.to_string(),
            Self::BadBody => "the request body is not validly framed".to_owned(),
            Self::MethodNotAllowed => "this method is not served here".to_owned(),
            Self::UpstreamConnect | Self::UpstreamProtocol => {
                "the application is not answering".to_owned()
            }
            Self::UpstreamReset(_) => "the application reset the stream".to_owned(),
            Self::UpstreamTimeout => "the application did not answer in time".to_owned(),
            Self::Internal => "internal error".to_owned(),
        }
    }

    /// The `WWW-Authenticate` challenge for 401s and scope 403s.
    fn challenge(&self) -> Option<String> {
        match self {
            // A certificate problem has no bearer error code: the challenge only says what
            // else the route would take.
            Self::Unauthenticated(Credential::Missing | Credential::Certificate(_)) => {
                Some(format!("Bearer realm=\"{REALM}\""))
            }
            Self::Unauthenticated(Credential::NoSession) => None,
            Self::Unauthenticated(Credential::Malformed | Credential::Invalid(_)) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"{}\", error_description=\"{}\"",
                self.code(),
                self.message()
            )),
            Self::Forbidden { scope: true, .. } => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", error_description=\"{}\"",
                self.message().replace('"', "'")
            )),
            Self::Forbidden { scope: false, .. }
            | Self::NoRoute
            | Self::KeysUnavailable
            | Self::SessionStoreUnavailable
            | Self::IntrospectionUnavailable
            | Self::UpstreamReset(_)
            | Self::NotFound
            | Self::HeadersTooLarge
            | Self::BadRequest(_)
            | Self::Framing(_)
            | Self::BadBody
            | Self::BadPath(_)
            | Self::MethodNotAllowed
            | Self::UpstreamConnect
            | Self::UpstreamTimeout
            | Self::UpstreamProtocol
            | Self::Internal => None,
        }
    }

    /// After this answer nothing more is read from the connection: a message we could not
    /// delimit leaves the rest of the byte stream meaningless (RFC 9112 §6.3, §9.6).
    pub fn closes_connection(&self) -> bool {
        match self {
            Self::Framing(_) | Self::BadBody => true,
            Self::Unauthenticated(_)
            | Self::Forbidden { .. }
            | Self::NoRoute
            | Self::KeysUnavailable
            | Self::SessionStoreUnavailable
            | Self::IntrospectionUnavailable
            | Self::NotFound
            | Self::HeadersTooLarge
            | Self::BadRequest(_)
            | Self::BadPath(_)
            | Self::MethodNotAllowed
            | Self::UpstreamConnect
            | Self::UpstreamTimeout
            | Self::UpstreamProtocol
            | Self::UpstreamReset(_)
            | Self::Internal => false,
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`), for the answers
    /// that mean "not now" rather than "no".
    fn retry_after(&self) -> Option<&'static str> {
        match self {
            Self::IntrospectionUnavailable => Some("5"),
            Self::SessionStoreUnavailable => Some("2"),
            Self::Unauthenticated(_)
            | Self::Forbidden { .. }
            | Self::NoRoute
            | Self::KeysUnavailable
            | Self::NotFound
            | Self::HeadersTooLarge
            | Self::BadRequest(_)
            | Self::Framing(_)
            | Self::BadBody
            | Self::BadPath(_)
            | Self::MethodNotAllowed
            | Self::UpstreamConnect
            | Self::UpstreamTimeout
            | Self::UpstreamProtocol
            | Self::UpstreamReset(_)
            | Self::Internal => None,
        }
    }

    /// The answer for a gRPC client: the same status, challenge and message as
    /// [`Self::into_response`], in gRPC's trailers-only form (see [`grpc::from_answer`]).
    pub fn into_grpc_response(self) -> Response<Body> {
        let message = self.message();
        grpc::from_answer(self.into_response(), Some(&message))
    }

    pub fn into_response(self) -> Response<Body> {
        let payload = serde_json::json!({ "error": self.code(), "message": self.message() });
        let mut response = Response::new(body::full(payload.to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        if let Some(challenge) = self
            .challenge()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_faults_map_to_gateway_statuses() {
        assert_eq!(ProxyError::UpstreamConnect.status(), 502);
        assert_eq!(ProxyError::UpstreamProtocol.status(), 502);
        assert_eq!(ProxyError::UpstreamTimeout.status(), 504);
        assert_eq!(ProxyError::BadRequest("x").status(), 400);
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        let missing = ProxyError::Unauthenticated(Credential::Missing).into_response();
        assert_eq!(missing.status(), 401);
        assert_eq!(
            missing.headers()["www-authenticate"],
            "Bearer realm=\"gatehouse\""
        );
        let expired =
            ProxyError::Unauthenticated(Credential::Invalid(TokenError::Expired)).into_response();
        assert_eq!(
            expired.headers()["www-authenticate"],
            "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let scope = ProxyError::Forbidden {
            needed: "scope orders:write".into(),
            scope: true,
        }
        .into_response();
        assert_eq!(scope.status(), 403);
        assert!(
            scope.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
        let role = ProxyError::Forbidden {
            needed: "role admin".into(),
            scope: false,
        }
        .into_response();
        assert!(!role.headers().contains_key("www-authenticate"));
        assert_eq!(ProxyError::KeysUnavailable.status(), 503);
        let unavailable = ProxyError::IntrospectionUnavailable.into_response();
        assert_eq!(unavailable.status(), 503);
        assert_eq!(unavailable.headers()["retry-after"], "5");
        assert!(!unavailable.headers().contains_key("www-authenticate"));
    }

    #[test]
    fn grpc_answers_carry_the_same_decision() {
        let missing = ProxyError::Unauthenticated(Credential::Missing).into_grpc_response();
        assert_eq!(missing.status(), 200);
        assert_eq!(missing.headers()["grpc-status"], "16");
        assert_eq!(
            missing.headers()["www-authenticate"],
            "Bearer realm=\"gatehouse\""
        );
        assert_eq!(
            missing.headers()["grpc-message"],
            "this route needs authentication"
        );
        let cases = [
            (ProxyError::NoRoute, "7"),
            (ProxyError::HeadersTooLarge, "3"),
            (ProxyError::BadRequest("x"), "3"),
            (ProxyError::KeysUnavailable, "14"),
            (ProxyError::UpstreamConnect, "14"),
            (ProxyError::UpstreamTimeout, "4"),
            (ProxyError::Internal, "13"),
        ];
        for (error, code) in cases {
            assert_eq!(error.into_grpc_response().headers()["grpc-status"], code);
        }
    }

    /// Found by hand (issue 11): a session-only route's 401 asked for a bearer token, which
    /// that route would refuse.
    #[test]
    fn a_session_only_401_has_no_bearer_challenge() {
        let response = ProxyError::Unauthenticated(Credential::NoSession).into_response();
        assert_eq!(response.status(), 401);
        assert!(!response.headers().contains_key("www-authenticate"));
        assert_eq!(
            ProxyError::Unauthenticated(Credential::NoSession).code(),
            "unauthenticated"
        );
    }

    #[test]
    fn bodies_are_small_json() {
        let response = ProxyError::UpstreamConnect.into_response();
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}
