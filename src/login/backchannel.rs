//! OpenID Connect Back-Channel Logout 1.0: the provider POSTs a `logout_token` (a JWT it
//! signed) to `<prefix>/backchannel_logout`, and every session of that provider session
//! (`sid`) or of that user (`sub`) ends, on every replica (Redis store).
//!
//! The token goes through the same verifier as ID tokens (signature, `iss`, `aud` = our client
//! id, `exp`), then the rules of the spec's section 2.6: `iat` present, the back-channel
//! `events` member, `sid` or `sub`, no `nonce`, and a `jti` never seen before.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::store::Index;
use super::{Backend, Idp, Login, Store};
use crate::auth::jwt::{Expectations, TokenError, verify_signed};
use crate::body::{self, Body};
use crate::telemetry;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The largest form body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Why a logout request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error("send exactly one `logout_token` form field")]
    Form,
    #[error("the logout token is not valid: {0}")]
    Token(TokenError),
    #[error("the logout token lacks `{0}`")]
    Missing(&'static str),
    #[error("the logout token carries a `nonce`")]
    Nonce,
    #[error("the logout token was already used")]
    Replayed,
}

impl Login {
    /// Answers a back-channel logout request whose form held `token`, its one `logout_token`
    /// (`None`: the form did not hold exactly one).
    pub async fn backchannel_logout(&self, token: Option<&str>) -> Response<Body> {
        let Store::Redis(store) = &self.store else {
            return answer(
                StatusCode::NOT_IMPLEMENTED,
                json!({"error": "unsupported", "error_description": "back-channel logout needs `session.store: redis`: sessions in cookies cannot be ended from here"}),
            );
        };
        if matches!(self.backend, Backend::Dev(_)) {
            return answer(StatusCode::NOT_FOUND, json!({"error": "not_found"}));
        }
        let (idp, claims) = match self.logout_claims(token).await {
            Ok(verified) => verified,
            Err(Refusal::Token(TokenError::KeysUnavailable)) => return unavailable(),
            Err(refusal) => {
                telemetry::backchannel_logout("refused");
                tracing::info!(%refusal, "back-channel logout refused");
                return answer(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_request", "error_description": refusal.to_string()}),
                );
            }
        };
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let (Some(jti), Some(exp)) = (text("jti"), claims.get("exp").and_then(Value::as_u64))
        else {
            return answer(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
        };
        let now = (self.clock)();
        let settings = idp.settings();
        let remember = std::time::Duration::from_secs(
            exp.saturating_sub(now) + settings.leeway.as_secs() + 60,
        );
        match store
            .first_use(&jti_hash(&settings.issuer, jti), remember)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                telemetry::backchannel_logout("refused");
                tracing::info!("back-channel logout refused: its jti was already used");
                return answer(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_request", "error_description": Refusal::Replayed.to_string()}),
                );
            }
            Err(error) => {
                tracing::warn!(%error, "back-channel logout failed: the session store is unavailable");
                return unavailable();
            }
        }
        let sealer = self.sealer();
        let kind = |base| self.index_kind(Some(idp.name()), base);
        let (index, tags) = match (text("sid"), text("sub")) {
            (Some(sid), _) => (Index::ProviderSession, sealer.tags(&kind("sid"), sid)),
            (None, Some(sub)) => (Index::Subject, sealer.tags(&kind("sub"), sub)),
            (None, None) => {
                return answer(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
            }
        };
        match store.delete_listed(index, &tags).await {
            Ok(ended) => {
                telemetry::backchannel_logout("ok");
                tracing::info!(sessions = ended, by = ?index, provider = idp.name(), "back-channel logout: sessions ended");
                answer(StatusCode::OK, json!({}))
            }
            Err(error) => {
                tracing::warn!(%error, "back-channel logout failed: the session store is unavailable");
                unavailable()
            }
        }
    }

    /// The verified claims of a logout token, and the provider that signed it. The token's
    /// (unverified) `iss` only picks which provider's keys and client id verify it; with no
    /// provider of that issuer, the first one's verifier refuses it.
    async fn logout_claims(
        &self,
        token: Option<&str>,
    ) -> Result<(&Idp, Map<String, Value>), Refusal> {
        let Some(token) = token else {
            return Err(Refusal::Form);
        };
        let idps = self.idps();
        let named = unverified_issuer(token);
        let Some(idp) = idps
            .iter()
            .find(|idp| named.as_deref() == Some(idp.settings().issuer.as_str()))
            .or_else(|| idps.first())
        else {
            return Err(Refusal::Token(TokenError::KeysUnavailable));
        };
        let settings = idp.settings();
        let audiences = [settings.client_id.clone()];
        let expect = Expectations {
            issuer: &settings.issuer,
            audiences: &audiences,
            algorithms: &settings.algorithms,
            leeway: settings.leeway,
        };
        let (claims, _) = verify_signed(token, idp.jwks(), expect, (self.clock)())
            .await
            .map_err(Refusal::Token)?;
        check_claims(&claims)?;
        Ok((idp, claims))
    }
}

/// The `iss` a JWT's payload claims, before any check: only to choose who verifies it.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// The logout token's own rules (section 2.4 and 2.6 of the spec).
fn check_claims(claims: &Map<String, Value>) -> Result<(), Refusal> {
    if !claims.get("iat").is_some_and(Value::is_u64) {
        return Err(Refusal::Missing("iat"));
    }
    if claims
        .get("jti")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(Refusal::Missing("jti"));
    }
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(EVENT));
    if !event.is_some_and(Value::is_object) {
        return Err(Refusal::Missing("events: back-channel logout"));
    }
    let named = |n: &str| {
        claims
            .get(n)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    if !named("sid") && !named("sub") {
        return Err(Refusal::Missing("sid or sub"));
    }
    if claims.contains_key("nonce") {
        return Err(Refusal::Nonce);
    }
    Ok(())
}

fn jti_hash(issuer: &str, jti: &str) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(issuer.as_bytes());
    context.update(&[0]);
    context.update(jti.as_bytes());
    super::store::hex(context.finish().as_ref())
}

fn unavailable() -> Response<Body> {
    let mut response = answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "temporarily_unavailable"}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

fn answer(status: StatusCode, payload: Value) -> Response<Body> {
    let mut response = Response::new(body::full(payload.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Map<String, Value> {
        json!({
            "iss": "https://idp", "aud": "app", "iat": 1, "exp": 2, "jti": "j1", "sid": "s1",
            "events": {EVENT: {}},
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn the_spec_rules_each_refuse() {
        assert_eq!(check_claims(&good()), Ok(()));
        type Edit = fn(&mut Map<String, Value>);
        let cases: [(Edit, Refusal); 7] = [
            (|c| drop(c.remove("iat")), Refusal::Missing("iat")),
            (|c| drop(c.remove("jti")), Refusal::Missing("jti")),
            (
                |c| drop(c.remove("events")),
                Refusal::Missing("events: back-channel logout"),
            ),
            (
                |c| drop(c.insert("events".into(), json!({EVENT: "yes"}))),
                Refusal::Missing("events: back-channel logout"),
            ),
            (
                |c| drop(c.insert("events".into(), json!({"http://other": {}}))),
                Refusal::Missing("events: back-channel logout"),
            ),
            (|c| drop(c.remove("sid")), Refusal::Missing("sid or sub")),
            (
                |c| drop(c.insert("nonce".into(), json!("n"))),
                Refusal::Nonce,
            ),
        ];
        for (edit, refusal) in cases {
            let mut claims = good();
            edit(&mut claims);
            assert_eq!(check_claims(&claims), Err(refusal));
        }
        let mut by_subject = good();
        by_subject.remove("sid");
        by_subject.insert("sub".into(), json!("alice"));
        assert_eq!(check_claims(&by_subject), Ok(()));
    }

    #[test]
    fn jti_hashes_are_per_issuer() {
        assert_ne!(jti_hash("https://a", "1"), jti_hash("https://b", "1"));
        assert_eq!(jti_hash("https://a", "1").len(), 64);
    }
}
