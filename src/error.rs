//! Errors that end a request early, and the one place that turns them into HTTP answers.
//!
//! Every variant knows whose fault it was (client, upstream, us), which decides the status.
//! Bodies are small JSON objects that name the problem class and never an internal detail.

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};
use crate::path::PathError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The client sent something we refuse to interpret.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
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
    /// A fault on our side that the client cannot fix.
    #[error("internal error")]
    Internal,
}

impl ProxyError {
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::BadPath(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UpstreamConnect | Self::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code, also used as the metric label for upstream errors.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::BadPath(_) => "bad_path",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UpstreamConnect => "upstream_connect",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamProtocol => "upstream_protocol",
            Self::Internal => "internal",
        }
    }

    fn message(self) -> String {
        match self {
            Self::BadRequest(why) => why.to_owned(),
            Self::BadPath(why) => why.to_string(),
            Self::MethodNotAllowed => "this method is not served here".to_owned(),
            Self::UpstreamConnect | Self::UpstreamProtocol => {
                "the application is not answering".to_owned()
            }
            Self::UpstreamTimeout => "the application did not answer in time".to_owned(),
            Self::Internal => "internal error".to_owned(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let payload = serde_json::json!({ "error": self.code(), "message": self.message() });
        let mut response = Response::new(body::full(payload.to_string()));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
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
    fn bodies_are_small_json() {
        let response = ProxyError::UpstreamConnect.into_response();
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}
