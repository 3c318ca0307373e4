//! Just enough DER to read what the certificate store and client authentication need from a
//! certificate: its expiry, its subject alternative names (DNS, IP, URI) and its subject's
//! common name. Client certificates are read only after rustls verified their chain, but the
//! reader treats every input as untrusted: every length is checked and nothing panics.

use std::net::IpAddr;

/// What we read from one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// `notAfter` as Unix seconds.
    pub not_after: i64,
    /// DNS names from the subject alternative names, lowercased.
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// URI names from the subject alternative names (`spiffe://...`), as written.
    pub uris: Vec<String>,
    /// The subject's first common name (`CN`), when it is a text string.
    pub common_name: Option<String>,
}

const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03]; // 2.5.4.3

pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (_, certificate) = Der(der).next_tagged(0x30)?;
    let mut tbs = Der(Der(certificate).next_tagged(0x30)?.1);
    let (tag, _) = tbs.peek()?;
    if tag == 0xa0 {
        tbs.next()?; // version
    }
    tbs.next_tagged(0x02)?; // serialNumber
    tbs.next_tagged(0x30)?; // signature algorithm
    tbs.next_tagged(0x30)?; // issuer
    let mut validity = Der(tbs.next_tagged(0x30)?.1);
    validity.next()?; // notBefore
    let not_after = time_value(validity.next()?)?;
    let (_, subject) = tbs.next_tagged(0x30)?;
    tbs.next_tagged(0x30)?; // subjectPublicKeyInfo
    let mut info = CertInfo {
        not_after,
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        uris: Vec::new(),
        common_name: common_name(subject),
    };
    while let Some((tag, value)) = tbs.next() {
        if tag == 0xa3 {
            read_extensions(value, &mut info)?;
        }
    }
    Some(info)
}

fn read_extensions(explicit: &[u8], info: &mut CertInfo) -> Option<()> {
    let mut extensions = Der(Der(explicit).next_tagged(0x30)?.1);
    while let Some((_, extension)) = extensions.next() {
        let mut fields = Der(extension);
        let (_, oid) = fields.next_tagged(0x06)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        let mut value = fields.next()?;
        if value.0 == 0x01 {
            value = fields.next()?; // critical flag
        }
        let mut names = Der(Der(value.1).next_tagged(0x30)?.1);
        while let Some((tag, name)) = names.next() {
            match tag {
                0x82 => {
                    if let Ok(dns) = std::str::from_utf8(name) {
                        info.dns_names.push(dns.to_ascii_lowercase());
                    }
                }
                0x86 => {
                    if let Ok(uri) = std::str::from_utf8(name) {
                        info.uris.push(uri.to_owned());
                    }
                }
                0x87 => match name.len() {
                    4 => info
                        .ip_addresses
                        .push(IpAddr::from(<[u8; 4]>::try_from(name).ok()?)),
                    16 => info
                        .ip_addresses
                        .push(IpAddr::from(<[u8; 16]>::try_from(name).ok()?)),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Some(())
}

/// The first `CN` of a Name (a SEQUENCE of SETs of `{type, value}`), when it is a
/// UTF8String, PrintableString, IA5String or TeletexString read as UTF-8.
fn common_name(name: &[u8]) -> Option<String> {
    let mut sets = Der(name);
    while let Some((_, set)) = sets.next() {
        let mut attributes = Der(set);
        while let Some((_, attribute)) = attributes.next() {
            let mut fields = Der(attribute);
            let Some((_, oid)) = fields.next_tagged(0x06) else {
                continue;
            };
            if oid != COMMON_NAME {
                continue;
            }
            let (tag, value) = fields.next()?;
            return match tag {
                0x0c | 0x13 | 0x16 | 0x14 => std::str::from_utf8(value).ok().map(str::to_owned),
                _ => None,
            };
        }
    }
    None
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) to Unix seconds.
fn time_value((tag, value): (u8, &[u8])) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i32 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| rest.get(i..i + 2)?.parse::<u8>().ok();
    let month = time::Month::try_from(field(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, field(2)?).ok()?;
    let clock = time::Time::from_hms(field(4)?, field(6)?, field(8)?).ok()?;
    Some(date.with_time(clock).assume_utc().unix_timestamp())
}

/// A cursor over consecutive DER TLVs.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (tag, len, header) = self.header()?;
        let (value, rest) = self.0.get(header..)?.split_at_checked(len)?;
        self.0 = rest;
        Some((tag, value))
    }

    fn peek(&self) -> Option<(u8, usize)> {
        self.header().map(|(tag, len, _)| (tag, len))
    }

    fn next_tagged(&mut self, tag: u8) -> Option<(u8, &'a [u8])> {
        self.next().filter(|(t, _)| *t == tag)
    }

    fn header(&self) -> Option<(u8, usize, usize)> {
        let tag = *self.0.first()?;
        let first = *self.0.get(1)?;
        if first < 0x80 {
            return Some((tag, usize::from(first), 2));
        }
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = self
            .0
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        Some((tag, len, 2 + n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_expiry_from_an_rcgen_certificate() {
        let mut params = rcgen::CertificateParams::new(vec![
            "localhost".to_owned(),
            "App.Example".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = parse(cert.der()).unwrap();
        assert_eq!(info.dns_names, ["localhost", "app.example"]);
        assert_eq!(
            info.ip_addresses,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(info.not_after, 1_940_889_600); // 2031-07-04T00:00:00Z
    }

    #[test]
    fn reads_uri_names_and_the_common_name() {
        let mut params = rcgen::CertificateParams::new(vec!["svc.test".to_owned()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://example.org/ns/a/sa/b".try_into().unwrap(),
        ));
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "billing-job");
        let key = rcgen::KeyPair::generate().unwrap();
        let info = parse(params.self_signed(&key).unwrap().der()).unwrap();
        assert_eq!(info.uris, ["spiffe://example.org/ns/a/sa/b"]);
        assert_eq!(info.dns_names, ["svc.test"]);
        assert_eq!(info.common_name.as_deref(), Some("billing-job"));
        let mut bare = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        bare.distinguished_name = rcgen::DistinguishedName::new();
        let info = parse(bare.self_signed(&key).unwrap().der()).unwrap();
        assert_eq!(info.common_name, None);
        assert!(info.uris.is_empty());
    }

    #[test]
    fn garbage_and_truncation_yield_none() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        for cut in 0..der.len() {
            let _ = parse(&der[..cut]); // must not panic
        }
        assert_eq!(parse(b"\x30\x84\xff\xff\xff\xff"), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn both_time_forms() {
        assert_eq!(time_value((0x17, b"700101000000Z")), Some(0));
        assert_eq!(time_value((0x18, b"20500101000000Z")), Some(2_524_608_000));
        assert_eq!(time_value((0x17, b"7001010000Z")), None);
        assert_eq!(time_value((0x17, b"701301000000Z")), None);
    }
}
