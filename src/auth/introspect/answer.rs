//! What an introspection answer (RFC 7662 §2.2) means. Pure: no I/O, time passed in.
//!
//! The body must be one JSON object with distinct member names and a boolean `active`;
//! anything else is the endpoint's fault and becomes [`Malformed`] (a 503), never the
//! caller's (a 401). An active token must still fit the issuer as a JWT would: `iss` exactly
//! when the answer names one, `aud` naming one of the audiences (the JWT path's own check),
//! `exp` and `nbf` with the leeway. Tokens that are not bearer access tokens (`token_type`
//! other than `Bearer`) or that are bound to a key (`cnf`, a proof we cannot check here) are
//! refused. The principal comes from the issuer's claim mapping, with the subject taken from
//! its subject claim, else `username`, else `client_id` (a client-credentials token acts as
//! its client), and must pass the identity rules like every other principal.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::auth::jwt::{TokenError, audience_accepted, numeric_date};
use crate::auth::{AuthMethod, ClaimMapping, Principal, lookup, unique};
use crate::identity::IdentityRules;

/// What an active token must fit, from the issuer's settings.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub audiences: &'a [String],
    pub leeway: Duration,
    pub claims: &'a ClaimMapping,
    pub rules: IdentityRules,
}

/// An answer that is usable, whatever it says about the token.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The token is active and fits; `exp` when the answer states one.
    Active {
        principal: Principal,
        exp: Option<u64>,
    },
    /// Inactive, or active but not for us: a 401.
    Refused(TokenError),
}

/// Why an answer cannot be used: for the log, never for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub &'static str);

/// Reads an introspection answer about a token, at `now` (Unix seconds).
pub fn judge(body: &[u8], expect: &Expect<'_>, now: u64) -> Result<Answer, Malformed> {
    let answer = match unique::from_slice(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(_) => {
            return Err(Malformed("not one JSON object with distinct member names"));
        }
    };
    match answer.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Answer::Refused(TokenError::Inactive)),
        Some(_) => return Err(Malformed("`active` is not a boolean")),
        None => return Err(Malformed("`active` is missing")),
    }
    let refused = |why| Ok(Answer::Refused(why));
    match answer.get("token_type") {
        None => {}
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(_)) => return refused(TokenError::TokenType),
        Some(_) => return Err(Malformed("`token_type` is not a string")),
    }
    if answer.contains_key("cnf") {
        return refused(TokenError::TokenType);
    }
    match answer.get("iss") {
        None => {}
        Some(Value::String(iss)) if iss == expect.issuer => {}
        Some(_) => return refused(TokenError::Issuer),
    }
    let date = |name| numeric_date(&answer, name).map_err(|_| Malformed("a date is not a number"));
    let leeway = expect.leeway.as_secs();
    let exp = date("exp")?;
    if exp.is_some_and(|exp| exp.saturating_add(leeway) <= now) {
        return refused(TokenError::Expired);
    }
    if date("nbf")?.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return refused(TokenError::NotYetValid);
    }
    if !audience_accepted(answer.get("aud"), expect.audiences) {
        return refused(TokenError::Audience);
    }
    let principal = match principal(answer, expect) {
        Ok(principal) => principal,
        Err(why) => return refused(why),
    };
    Ok(Answer::Active { principal, exp })
}

/// The principal of an active answer, by the issuer's claim mapping.
fn principal(answer: Map<String, Value>, expect: &Expect<'_>) -> Result<Principal, TokenError> {
    let claims = Value::Object(answer);
    let present =
        |path: &&str| matches!(lookup(&claims, path), Some(Value::String(s)) if !s.is_empty());
    let subject = [expect.claims.subject.as_str(), "username", "client_id"]
        .into_iter()
        .find(present)
        .unwrap_or(expect.claims.subject.as_str())
        .to_owned();
    let mapping = ClaimMapping {
        subject,
        ..expect.claims.clone()
    };
    let principal = mapping
        .principal(claims, expect.issuer, AuthMethod::Bearer)
        .map_err(|error| {
            tracing::info!(issuer = %expect.issuer, %error, "introspected token refused");
            TokenError::Claims
        })?;
    if let Err(error) = expect.rules.check(&principal) {
        tracing::info!(
            issuer = %expect.issuer,
            subject = ?principal.subject,
            %error,
            "introspected token refused: its identity cannot be sent to the app unambiguously"
        );
        return Err(TokenError::Claims);
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn judged(answer: Value) -> Result<Answer, Malformed> {
        judged_with(answer, &ClaimMapping::default())
    }

    fn judged_with(answer: Value, claims: &ClaimMapping) -> Result<Answer, Malformed> {
        let audiences = ["orders-api".to_owned()];
        let expect = Expect {
            issuer: "https://idp.example",
            audiences: &audiences,
            leeway: Duration::from_secs(30),
            claims,
            rules: IdentityRules::default(),
        };
        judge(answer.to_string().as_bytes(), &expect, NOW)
    }

    fn refused(answer: Value) -> TokenError {
        match judged(answer) {
            Ok(Answer::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    fn active() -> Value {
        json!({
            "active": true, "sub": "alice", "client_id": "web", "scope": "orders:read orders:write",
            "aud": "orders-api", "iss": "https://idp.example", "exp": NOW + 600,
            "token_type": "Bearer", "roles": ["admin"]
        })
    }

    fn with(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut answer = active();
        if let Value::Object(map) = &mut answer {
            edit(map);
        }
        answer
    }

    #[test]
    fn an_active_answer_is_a_principal_by_the_claim_mapping() {
        let Ok(Answer::Active { principal, exp }) = judged(active()) else {
            panic!("not active");
        };
        assert_eq!(principal.subject, "alice");
        assert_eq!(principal.issuer, "https://idp.example");
        assert_eq!(principal.roles, ["admin"]);
        assert_eq!(principal.scopes, ["orders:read", "orders:write"]);
        assert_eq!(principal.method, AuthMethod::Bearer);
        assert_eq!(principal.claims["client_id"], "web");
        assert_eq!(exp, Some(NOW + 600));
        let mapping = ClaimMapping {
            roles: vec!["realm_access.roles".into()],
            ..ClaimMapping::default()
        };
        let answer = with(|a| {
            a.insert("realm_access".into(), json!({"roles": ["ops"]}));
        });
        let Ok(Answer::Active { principal, .. }) = judged_with(answer, &mapping) else {
            panic!("not active");
        };
        assert_eq!(principal.roles, ["ops"]);
    }

    #[test]
    fn the_subject_is_sub_else_username_else_client_id() {
        let subject = |answer| match judged(answer) {
            Ok(Answer::Active { principal, .. }) => principal.subject,
            other => panic!("not active: {other:?}"),
        };
        let no_sub = with(|a| {
            a.remove("sub");
            a.insert("username".into(), json!("bob"));
        });
        assert_eq!(subject(no_sub), "bob");
        let machine = with(|a| {
            a.remove("sub");
        });
        assert_eq!(subject(machine), "web");
        let nobody = with(|a| {
            a.remove("sub");
            a.remove("client_id");
        });
        assert_eq!(refused(nobody), TokenError::Claims);
    }

    #[test]
    fn inactive_expired_and_foreign_tokens_are_refused() {
        assert_eq!(refused(json!({"active": false})), TokenError::Inactive);
        let expired = with(|a| {
            a.insert("exp".into(), json!(NOW - 31));
        });
        assert_eq!(refused(expired), TokenError::Expired);
        let within_leeway = with(|a| {
            a.insert("exp".into(), json!(NOW - 29));
        });
        assert!(matches!(judged(within_leeway), Ok(Answer::Active { .. })));
        let early = with(|a| {
            a.insert("nbf".into(), json!(NOW + 60));
        });
        assert_eq!(refused(early), TokenError::NotYetValid);
        for aud in [
            json!("billing-api"),
            json!(["billing-api"]),
            json!(null),
            json!(7),
        ] {
            let answer = with(|a| {
                a.insert("aud".into(), aud.clone());
            });
            assert_eq!(refused(answer), TokenError::Audience, "{aud}");
        }
        let no_aud = with(|a| {
            a.remove("aud");
        });
        assert_eq!(refused(no_aud), TokenError::Audience);
        let among = with(|a| {
            a.insert("aud".into(), json!(["billing-api", "orders-api"]));
        });
        assert!(matches!(judged(among), Ok(Answer::Active { .. })));
        let other_issuer = with(|a| {
            a.insert("iss".into(), json!("https://evil.example"));
        });
        assert_eq!(refused(other_issuer), TokenError::Issuer);
    }

    #[test]
    fn refresh_and_key_bound_tokens_are_refused() {
        let refresh = with(|a| {
            a.insert("token_type".into(), json!("refresh_token"));
        });
        assert_eq!(refused(refresh), TokenError::TokenType);
        let dpop = with(|a| {
            a.insert("token_type".into(), json!("DPoP"));
        });
        assert_eq!(refused(dpop), TokenError::TokenType);
        let bound = with(|a| {
            a.insert("cnf".into(), json!({"x5t#S256": "abc"}));
        });
        assert_eq!(refused(bound), TokenError::TokenType);
        let lower = with(|a| {
            a.insert("token_type".into(), json!("bearer"));
        });
        assert!(matches!(judged(lower), Ok(Answer::Active { .. })));
    }

    #[test]
    fn a_malformed_answer_is_the_endpoints_fault() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"active": "true"}"#,
            br#"{"active": 1}"#,
            br#"{"active": true, "active": false}"#,
            br#"{"active": true, "aud": "orders-api", "sub": "a", "exp": "soon"}"#,
            br#"{"active": true, "aud": "orders-api", "sub": "a", "token_type": 1}"#,
        ] {
            let expect = Expect {
                issuer: "https://idp.example",
                audiences: &["orders-api".to_owned()],
                leeway: Duration::from_secs(30),
                claims: &ClaimMapping::default(),
                rules: IdentityRules::default(),
            };
            assert!(
                judge(body, &expect, NOW).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn identities_the_app_would_misread_are_refused() {
        let comma = with(|a| {
            a.insert("roles".into(), json!(["reader,admin"]));
        });
        assert_eq!(refused(comma), TokenError::Claims);
        let wrong_type = with(|a| {
            a.insert("roles".into(), json!({"admin": true}));
        });
        assert_eq!(refused(wrong_type), TokenError::Claims);
    }
}
