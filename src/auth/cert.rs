//! Client certificates as credentials: the subject taken from a verified leaf certificate, as
//! `tls.client_auth.subject` orders the names (URI SAN, DNS SAN, CN; the first present wins),
//! roles from `tls.client_auth.roles` patterns on that subject, and the
//! `X-Forwarded-Client-Cert` value in Envoy's format.
//!
//! Pure: the chain was verified by rustls (`tls`) before anything here sees the leaf; this
//! module only reads it. Roles come from patterns in the config rather than a mapping file:
//! the name a certificate proves is its SAN, and the CA that vouches for it is configured in
//! the same section, so the trust and what it grants are reviewed and validated together, with
//! line numbers, and there is no second file to keep in sync with the CA.

use std::fmt::Write as _;
use std::sync::Arc;

use http::HeaderValue;
use serde_json::json;

use super::{AuthMethod, Principal};
use crate::tls::x509;

/// The `issuer` of principals made from client certificates.
pub const CERT_ISSUER: &str = "client-certificate";

pub use crate::config::cert_rules::{CertRole, CertRules, SubjectPattern, SubjectSource};

/// Why a verified certificate gives no usable identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the certificate of a resumed TLS session is no longer trusted")]
    Untrusted,
    #[error("the certificate cannot be read")]
    Unreadable,
    #[error("the certificate has none of the names `tls.client_auth.subject` lists")]
    NoSubject,
    #[error("the certificate's names cannot be written in X-Forwarded-Client-Cert")]
    Unwritable,
}

/// The identity a connection's client certificate proves. Made once per connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCert {
    pub principal: Arc<Principal>,
    /// `X-Forwarded-Client-Cert` for this certificate (Envoy's format: `Hash`, `URI`, `DNS`).
    pub xfcc: HeaderValue,
}

impl CertRules {
    /// The identity of a verified leaf certificate (DER).
    pub fn identify(&self, leaf: &[u8]) -> Result<ClientCert, CertError> {
        let info = x509::parse(leaf).ok_or(CertError::Unreadable)?;
        let subject = self
            .subject
            .iter()
            .find_map(|source| match source {
                SubjectSource::UriSan => info.uris.first(),
                SubjectSource::DnsSan => info.dns_names.first(),
                SubjectSource::Cn => info.common_name.as_ref(),
            })
            .filter(|s| !s.is_empty())
            .ok_or(CertError::NoSubject)?
            .clone();
        let mut roles: Vec<String> = Vec::new();
        for rule in self.roles.iter().filter(|r| r.pattern.matches(&subject)) {
            for role in &rule.roles {
                if !roles.contains(role) {
                    roles.push(role.clone());
                }
            }
        }
        let hash = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf).as_ref());
        let mut xfcc = format!("Hash={hash}");
        for uri in &info.uris {
            let _ = write!(xfcc, ";URI={}", xfcc_value(uri));
        }
        for dns in &info.dns_names {
            let _ = write!(xfcc, ";DNS={}", xfcc_value(dns));
        }
        let xfcc = HeaderValue::try_from(xfcc).map_err(|_| CertError::Unwritable)?;
        let claims = json!({
            "sub": subject,
            "uri_sans": info.uris,
            "dns_sans": info.dns_names,
            "cn": info.common_name,
            "x5t#S256": hash,
        });
        Ok(ClientCert {
            principal: Arc::new(Principal {
                subject,
                issuer: CERT_ISSUER.to_owned(),
                email: None,
                roles,
                scopes: Vec::new(),
                claims: Arc::new(claims),
                method: AuthMethod::Mtls,
            }),
            xfcc,
        })
    }
}

/// Envoy quotes a value holding `,`, `;` or `=` and escapes `"` and `\` inside it.
fn xfcc_value(value: &str) -> String {
    if !value.contains([',', ';', '=', '"', '\\']) {
        return value.to_owned();
    }
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(names: &[&str], uris: &[&str], cn: Option<&str>) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        for uri in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI((*uri).try_into().unwrap()));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_first_present_name_is_the_subject() {
        let spiffe = "spiffe://example.org/ns/billing/sa/job";
        let cert = leaf(&["job.billing.svc"], &[spiffe], Some("job"));
        let rules = CertRules::default();
        let id = rules.identify(&cert).unwrap();
        assert_eq!(id.principal.subject, spiffe);
        assert_eq!(id.principal.method, AuthMethod::Mtls);
        let dns_first = CertRules {
            subject: vec![SubjectSource::DnsSan, SubjectSource::UriSan],
            ..CertRules::default()
        };
        assert_eq!(
            dns_first.identify(&cert).unwrap().principal.subject,
            "job.billing.svc"
        );
        let cn_only = CertRules {
            subject: vec![SubjectSource::Cn],
            ..CertRules::default()
        };
        let no_cn = leaf(&["a.test"], &[], None);
        assert_eq!(cn_only.identify(&no_cn), Err(CertError::NoSubject));
        assert_eq!(rules.identify(b"junk"), Err(CertError::Unreadable));
    }

    #[test]
    fn patterns_grant_roles_and_stay_within_labels() {
        let p = |s: &str| SubjectPattern::new(s).unwrap();
        assert!(
            p("spiffe://example.org/ns/*/sa/job").matches("spiffe://example.org/ns/billing/sa/job")
        );
        assert!(
            !p("spiffe://example.org/ns/*/sa/job").matches("spiffe://example.org/ns/a/b/sa/job")
        );
        assert!(p("spiffe://example.org/**").matches("spiffe://example.org/ns/a/sa/b.c"));
        assert!(p("*.svc.test").matches("A.SVC.test"));
        assert!(!p("*.svc.test").matches("a.b.svc.test"));
        assert!(!p("*.svc.test").matches("svc.test.evil"));
        assert!(!p("exact").matches("exact2"));
        assert!(SubjectPattern::new("").is_err());
        let rules = CertRules {
            roles: vec![
                CertRole {
                    pattern: p("spiffe://example.org/ns/billing/**"),
                    roles: vec!["billing".into(), "reader".into()],
                },
                CertRole {
                    pattern: p("**"),
                    roles: vec!["reader".into()],
                },
            ],
            ..CertRules::default()
        };
        let cert = leaf(&[], &["spiffe://example.org/ns/billing/sa/job"], None);
        assert_eq!(
            rules.identify(&cert).unwrap().principal.roles,
            ["billing", "reader"]
        );
    }

    #[test]
    fn xfcc_is_in_envoys_format() {
        let cert = leaf(&["a.test", "b.test"], &["spiffe://td/x;y"], None);
        let id = CertRules::default().identify(&cert).unwrap();
        let hash = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert).as_ref());
        assert_eq!(
            id.xfcc,
            format!("Hash={hash};URI=\"spiffe://td/x;y\";DNS=a.test;DNS=b.test").as_str()
        );
    }
}
