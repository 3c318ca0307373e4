//! Validation of the settings for callers beyond bearer tokens and sessions: client
//! certificates (`tls.client_auth`) and the signed identity assertion (`identity.assertion`).
//! Files are only checked for presence (and the assertion key for its mode) here; `tls` and
//! `assertion` read them when they load.

use std::time::Duration;

use http::HeaderName;
use serde_saphyr::Spanned;

use super::cert_rules::{CertRole, CertRules, SubjectPattern, SubjectSource};
use super::raw;
use super::validate::Validator;
use super::*;

impl Validator<'_> {
    pub(super) fn client_auth(
        &mut self,
        raw: Spanned<raw::RawClientAuth>,
    ) -> Option<ClientAuthSettings> {
        const F: &str = "tls.client_auth";
        let (raw, at) = (raw.value, raw.referenced);
        let mode = match &raw.mode {
            None => ClientAuthMode::Optional,
            Some(m) => match m.value.as_str() {
                "optional" => ClientAuthMode::Optional,
                "required" => ClientAuthMode::Required,
                _ => {
                    self.error(
                        &m.referenced,
                        &format!("{F}.mode"),
                        "must be `optional` or `required`",
                    );
                    ClientAuthMode::Optional
                }
            },
        };
        let mut rules = CertRules::default();
        if let Some(list) = raw.subject {
            if list.is_empty() {
                self.error(
                    &at,
                    &format!("{F}.subject"),
                    "needs at least one of `uri_san`, `dns_san`, `cn`",
                );
            }
            rules.subject.clear();
            for (i, item) in list.iter().enumerate() {
                match SubjectSource::parse(item.value.trim()) {
                    Some(source) if !rules.subject.contains(&source) => rules.subject.push(source),
                    Some(_) => self.error(
                        &item.referenced,
                        &format!("{F}.subject[{i}]"),
                        "is listed twice",
                    ),
                    None => self.error(
                        &item.referenced,
                        &format!("{F}.subject[{i}]"),
                        format!("`{}` is not one of `uri_san`, `dns_san`, `cn`", item.value),
                    ),
                }
            }
        }
        for (i, entry) in raw.roles.unwrap_or_default().into_iter().enumerate() {
            let field = format!("{F}.roles[{i}]");
            let Some(subject) = entry.subject else {
                self.error(
                    &at,
                    &format!("{field}.subject"),
                    "is required: a pattern on the subject",
                );
                continue;
            };
            let pattern = match SubjectPattern::new(subject.value.trim()) {
                Ok(pattern) => pattern,
                Err(problem) => {
                    self.error(&subject.referenced, &format!("{field}.subject"), problem);
                    continue;
                }
            };
            let mut roles = Vec::new();
            for (j, role) in entry.roles.unwrap_or_default().into_iter().enumerate() {
                let bad = role.value.is_empty()
                    || role.value.trim() != role.value
                    || role.value.contains(',')
                    || role.value.chars().any(char::is_control);
                if bad {
                    let message = "must be a non-empty role without `,`, control characters or outer whitespace";
                    self.error(&role.referenced, &format!("{field}.roles[{j}]"), message);
                } else {
                    roles.push(role.value);
                }
            }
            if roles.is_empty() {
                self.error(
                    &subject.referenced,
                    &format!("{field}.roles"),
                    "needs at least one role",
                );
            }
            rules.roles.push(CertRole { pattern, roles });
        }
        let Some(ca) = raw.ca_file else {
            self.error(
                &at,
                &format!("{F}.ca_file"),
                "is required: the CA that client certificates must chain to",
            );
            return None;
        };
        Some(ClientAuthSettings {
            ca_file: self.path(&ca.value),
            mode,
            rules,
            forward_client_cert: raw.forward_client_cert.is_some_and(|b| b.value),
            origin: self.origin(&ca.referenced, &format!("{F}.ca_file")),
        })
    }

    pub(super) fn assertion(
        &mut self,
        raw: Spanned<raw::RawAssertion>,
    ) -> Option<AssertionSettings> {
        const F: &str = "identity.assertion";
        let (raw, at) = (raw.value, raw.referenced);
        let header = match raw.header {
            None => HeaderName::from_static("x-gatehouse-assertion"),
            Some(h) => match HeaderName::from_bytes(h.value.trim().as_bytes()) {
                Ok(name) => name,
                Err(_) => {
                    self.error(
                        &h.referenced,
                        &format!("{F}.header"),
                        format!("`{}` is not a header name", h.value),
                    );
                    HeaderName::from_static("x-gatehouse-assertion")
                }
            },
        };
        let ttl_at = raw.ttl.as_ref().map(|t| t.referenced);
        let ttl = self.duration(raw.ttl, &format!("{F}.ttl"), Duration::from_secs(60));
        if let Some(at) = ttl_at
            && (ttl.subsec_nanos() != 0 || ttl < Duration::from_secs(1))
        {
            self.error(
                &at,
                &format!("{F}.ttl"),
                "must be whole seconds, at least `1s` (`iat` and `exp` are in seconds)",
            );
        }
        let issuer = raw
            .issuer
            .map_or_else(|| "gatehouse".to_owned(), |i| i.value);
        if issuer.is_empty() {
            self.error(&at, &format!("{F}.issuer"), "must not be empty");
        }
        let mut origin = self.origin(&at, F);
        let key_file = raw.key_file.map(|k| {
            origin = self.origin(&k.referenced, &format!("{F}.key_file"));
            let path = self.path(&k.value);
            if let Err(problem) = crate::assertion::check_key_file(&path) {
                self.errors.push(origin.error(problem));
            }
            path
        });
        let Some(audience) = raw.audience.filter(|a| !a.value.is_empty()) else {
            self.error(
                &at,
                &format!("{F}.audience"),
                "is required: the app's name, checked by the app as `aud`",
            );
            return None;
        };
        Some(AssertionSettings {
            header,
            audience: audience.value,
            issuer,
            ttl,
            key_file,
            origin,
            publish: raw.publish.is_some_and(|b| b.value),
        })
    }
}
