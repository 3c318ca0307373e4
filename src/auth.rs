//! Identity: who a caller is, as established from a verified credential.
//!
//! Pure: this module and its children never import the server, the stack or the proxy.
//! [`Principal`] is what policy decides on and what the identity headers are built from.

pub mod cert;
pub mod introspect;
pub mod jwks;
pub mod jwt;
pub mod signing;
pub mod unique;

use std::sync::Arc;

use serde_json::Value;

// Claim paths are configuration: `config` declares them, and this module reads claims by them.
pub use crate::config::{ClaimMapping, RolesString};

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    Bearer,
    Session,
    /// A client certificate verified in the TLS handshake (`tls.client_auth`).
    Mtls,
}

impl AuthMethod {
    /// The name used in the signed identity assertion's `auth` claim and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Session => "session",
            Self::Mtls => "mtls",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub subject: String,
    pub issuer: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// All claims of the credential, for claim requirements.
    pub claims: Arc<Value>,
    pub method: AuthMethod,
}

/// Why a set of claims cannot become a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("claim `{0}` is missing or not a non-empty string")]
    Subject(String),
    #[error("claim `{0}` must be a string or an array of strings")]
    WrongType(String),
    #[error("claim `{0}` must be an array of strings (see `claims.roles_string`)")]
    RolesNotArray(String),
    #[error("claim `{0}` must be a string")]
    NotString(String),
}

impl ClaimMapping {
    /// Builds a principal from verified claims. Wrong types are errors, not empty lists: a
    /// token whose roles claim is an object is malformed, and malformed tokens are refused.
    /// Roles must be an array of strings unless `roles_string` says what one string means;
    /// scopes may be the OAuth space-separated string. The values are not checked here for
    /// what the identity headers can carry: `identity::IdentityRules` does that.
    pub fn principal(
        &self,
        claims: Value,
        issuer: &str,
        method: AuthMethod,
    ) -> Result<Principal, ClaimError> {
        let subject = match lookup(&claims, &self.subject) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(ClaimError::Subject(self.subject.clone())),
        };
        let mut roles = Vec::new();
        for path in &self.roles {
            roles.extend(self.roles_at(&claims, path)?);
        }
        let mut scopes = Vec::new();
        for path in &self.scopes {
            scopes.extend(strings(&claims, path)?);
        }
        let email = match lookup(&claims, &self.email) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ClaimError::NotString(self.email.clone())),
        };
        Ok(Principal {
            subject,
            issuer: issuer.to_owned(),
            email,
            roles,
            scopes,
            claims: Arc::new(claims),
            method,
        })
    }
}

impl ClaimMapping {
    /// The roles at `path`: an array of strings, or one string as `roles_string` says.
    fn roles_at(&self, claims: &Value, path: &str) -> Result<Vec<String>, ClaimError> {
        match (lookup(claims, path), self.roles_string) {
            (Some(Value::String(_)), RolesString::Reject) => {
                Err(ClaimError::RolesNotArray(path.to_owned()))
            }
            (Some(Value::String(s)), RolesString::Split) => Ok(s
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect()),
            (Some(Value::String(s)), RolesString::Single) => Ok(vec![s.clone()]),
            _ => strings(claims, path),
        }
    }
}

/// A list of strings at `path`: an array of strings, or one string split on whitespace (as
/// OAuth `scope` is). Absent means empty.
fn strings(claims: &Value, path: &str) -> Result<Vec<String>, ClaimError> {
    match lookup(claims, path) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ClaimError::WrongType(path.to_owned())),
            })
            .collect(),
        Some(_) => Err(ClaimError::WrongType(path.to_owned())),
    }
}

/// Finds a claim by path. The whole path is tried as one key first, so URL-shaped claim names
/// (`https://example.com/roles`) work; otherwise `.` descends into objects.
pub fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    path.split('.')
        .try_fold(claims, |value, key| value.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_roles_scopes_and_email_from_configured_paths() {
        let mapping = ClaimMapping {
            roles: vec!["realm_access.roles".into(), "groups".into()],
            ..ClaimMapping::default()
        };
        let claims = json!({
            "sub": "alice", "email": "a@example.com",
            "realm_access": {"roles": ["admin", "dev"]}, "groups": ["ops"],
            "scope": "orders:read orders:write"
        });
        let p = mapping
            .principal(claims, "https://idp", AuthMethod::Bearer)
            .unwrap();
        assert_eq!(p.subject, "alice");
        assert_eq!(p.roles, ["admin", "dev", "ops"]);
        assert_eq!(p.scopes, ["orders:read", "orders:write"]);
        assert_eq!(p.email.as_deref(), Some("a@example.com"));
    }

    #[test]
    fn scp_arrays_and_url_claim_names() {
        let mapping = ClaimMapping {
            roles: vec!["https://example.com/roles".into()],
            ..ClaimMapping::default()
        };
        let claims = json!({"sub": "x", "scp": ["a", "b"], "https://example.com/roles": ["r"]});
        let p = mapping.principal(claims, "i", AuthMethod::Bearer).unwrap();
        assert_eq!(p.scopes, ["a", "b"]);
        assert_eq!(p.roles, ["r"]);
    }

    #[test]
    fn wrong_types_are_refused() {
        let m = ClaimMapping::default();
        let bad_roles = json!({"sub": "x", "roles": {"admin": true}});
        assert_eq!(
            m.principal(bad_roles, "i", AuthMethod::Bearer),
            Err(ClaimError::WrongType("roles".into()))
        );
        let mixed = json!({"sub": "x", "roles": ["admin", 1]});
        assert!(m.principal(mixed, "i", AuthMethod::Bearer).is_err());
        for sub in [json!({}), json!({"sub": ""}), json!({"sub": 42})] {
            assert!(m.principal(sub, "i", AuthMethod::Bearer).is_err());
        }
        let email = json!({"sub": "x", "email": ["a@example.com"]});
        assert_eq!(
            m.principal(email, "i", AuthMethod::Bearer),
            Err(ClaimError::NotString("email".into()))
        );
        let no_email = json!({"sub": "x", "email": null});
        assert_eq!(
            m.principal(no_email, "i", AuthMethod::Bearer)
                .unwrap()
                .email,
            None
        );
    }

    #[test]
    fn one_roles_string_means_what_roles_string_says() {
        let claims = json!({"sub": "x", "roles": " admin, dev ops,,", "scope": "a b"});
        let with = |roles_string| ClaimMapping {
            roles_string,
            ..ClaimMapping::default()
        };
        let roles = |roles_string| {
            with(roles_string)
                .principal(claims.clone(), "i", AuthMethod::Bearer)
                .map(|p| p.roles)
        };
        assert_eq!(
            roles(RolesString::Reject),
            Err(ClaimError::RolesNotArray("roles".into()))
        );
        assert_eq!(roles(RolesString::Split).unwrap(), ["admin", "dev", "ops"]);
        assert_eq!(roles(RolesString::Single).unwrap(), [" admin, dev ops,,"]);
        // Arrays and absent claims are the same under every setting; scopes keep their string.
        for setting in [RolesString::Reject, RolesString::Split, RolesString::Single] {
            let p = with(setting)
                .principal(
                    json!({"sub": "x", "roles": ["a b"], "scope": "s t"}),
                    "i",
                    AuthMethod::Bearer,
                )
                .unwrap();
            assert_eq!(p.roles, ["a b"]);
            assert_eq!(p.scopes, ["s", "t"]);
            let p = with(setting)
                .principal(json!({"sub": "x"}), "i", AuthMethod::Bearer)
                .unwrap();
            assert!(p.roles.is_empty());
            let wrong = json!({"sub": "x", "roles": 1});
            assert!(
                with(setting)
                    .principal(wrong, "i", AuthMethod::Bearer)
                    .is_err()
            );
        }
    }
}
