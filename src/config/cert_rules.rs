//! How `tls.client_auth` turns a client certificate into a subject and roles: which names
//! are the subject, and the role patterns on it. Pure data the config validates and owns;
//! `auth::cert` applies it to a verified certificate.

/// Which name of the certificate is the subject (`tls.client_auth.subject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectSource {
    /// The first URI SAN, e.g. a SPIFFE id `spiffe://example.org/ns/a/sa/b`.
    UriSan,
    /// The first DNS SAN.
    DnsSan,
    /// The subject's common name.
    Cn,
}

impl SubjectSource {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "uri_san" => Some(Self::UriSan),
            "dns_san" => Some(Self::DnsSan),
            "cn" => Some(Self::Cn),
            _ => None,
        }
    }
}

/// A pattern on the subject: `*` matches within one label or path segment (no `.` or `/`),
/// `**` matches anything; everything else matches itself, ASCII case ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPattern(String);

impl SubjectPattern {
    pub fn new(text: &str) -> Result<Self, &'static str> {
        if text.is_empty() {
            return Err("is empty");
        }
        if text.contains("***") {
            return Err("`***` means nothing: use `*` (one label or segment) or `**` (anything)");
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    pub fn matches(&self, subject: &str) -> bool {
        glob(self.0.as_bytes(), subject.to_ascii_lowercase().as_bytes())
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern {
        [] => text.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        [b'*', rest @ ..] => {
            let run = text
                .iter()
                .position(|&b| b == b'.' || b == b'/')
                .unwrap_or(text.len());
            (0..=run).any(|i| glob(rest, &text[i..]))
        }
        [p, rest @ ..] => text.first() == Some(p) && glob(rest, &text[1..]),
    }
}

/// Roles granted to the subjects a pattern matches (`tls.client_auth.roles[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRole {
    pub pattern: SubjectPattern,
    pub roles: Vec<String>,
}

/// How a certificate becomes a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRules {
    pub subject: Vec<SubjectSource>,
    pub roles: Vec<CertRole>,
}

impl Default for CertRules {
    fn default() -> Self {
        Self {
            subject: vec![
                SubjectSource::UriSan,
                SubjectSource::DnsSan,
                SubjectSource::Cn,
            ],
            roles: Vec::new(),
        }
    }
}
