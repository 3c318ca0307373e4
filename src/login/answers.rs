//! The answers about the caller that the stack authenticated: `/oauth2/userinfo` (JSON) and
//! `/oauth2/auth` (nginx `auth_request`, Traefik forward-auth: 202 with oauth2-proxy's
//! `X-Auth-Request-*` headers).
//!
//! The principal passed the identity rules where it was made (bearer verification, login,
//! session restore). `X-Auth-Request-Groups` is comma-joined whatever `identity.list_format`
//! says, as oauth2-proxy sends it, so `/oauth2/auth` also holds the roles to the comma rules.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::json;

use super::status;
use crate::auth::Principal;
use crate::body::{self, Body};
use crate::identity::{Field, IdentityError, IdentityRules};

/// `/oauth2/userinfo`: the principal as JSON.
pub fn userinfo(principal: &Principal) -> Response<Body> {
    let body = json!({
        "user": principal.subject,
        "email": principal.email,
        "groups": principal.roles,
        "issuer": principal.issuer,
    });
    let mut response = Response::new(body::full(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `/oauth2/auth`: 202 with the identity, or why it cannot be said in these headers (then
/// the caller must be refused: an answer with a header missing would still say "allowed").
pub fn auth_answer(
    principal: &Principal,
    rules: IdentityRules,
) -> Result<Response<Body>, IdentityError> {
    rules.check_groups(principal)?;
    let value = |text: &str, field: Field| {
        HeaderValue::from_bytes(text.as_bytes()).map_err(|_| IdentityError::Control(field))
    };
    let mut response = status(StatusCode::ACCEPTED);
    let headers = response.headers_mut();
    headers.insert(
        "x-auth-request-user",
        value(&principal.subject, Field::Subject)?,
    );
    headers.insert(
        "x-auth-request-groups",
        value(&principal.roles.join(","), Field::Role(0))?,
    );
    if let Some(email) = &principal.email {
        headers.insert("x-auth-request-email", value(email, Field::Email)?);
    }
    if let Some(name) = crate::identity::preferred_username(principal) {
        headers.insert(
            "x-auth-request-preferred-username",
            value(name, Field::Subject)?,
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::AuthMethod;
    use crate::config::{IdentitySettings, ListFormat};

    #[test]
    fn groups_that_a_comma_join_would_change_are_refused_under_json_too() {
        let json = IdentityRules::new(&IdentitySettings {
            list_format: ListFormat::Json,
            ..IdentitySettings::default()
        });
        let mut principal = Principal {
            subject: "alice".into(),
            issuer: "i".into(),
            email: None,
            roles: vec!["a".into(), "b".into()],
            scopes: Vec::new(),
            claims: Arc::new(json!({})),
            method: AuthMethod::Session,
        };
        let answer = auth_answer(&principal, json).unwrap();
        assert_eq!(answer.status(), 202);
        assert_eq!(answer.headers()["x-auth-request-groups"], "a,b");
        principal.roles.push("reader,admin".into());
        assert_eq!(
            auth_answer(&principal, json).err(),
            Some(IdentityError::Separator(Field::Role(2)))
        );
    }
}
