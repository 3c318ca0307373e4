//! Where a login or logout may send the browser afterwards (`rd=`): a path on this site, or an
//! `https://` URL on an allow-listed host. Everything else is refused, because an open redirect
//! on a login page is a phishing tool.

/// Allowed hosts: `app.example.com` matches exactly; `.example.com` matches any subdomain (and
/// never `badexample.com`).
#[derive(Debug, Clone, Default)]
pub struct RedirectPolicy {
    hosts: Vec<String>,
}

impl RedirectPolicy {
    pub fn new(hosts: &[String]) -> Self {
        Self {
            hosts: hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// The target to redirect to, or `None` when `rd` is not safe. `own_host` is the host the
    /// request came to (same-origin absolute URLs are accepted for it).
    pub fn check(&self, rd: &str, own_host: Option<&str>) -> Option<String> {
        if rd.is_empty() || !rd.bytes().all(|b| b.is_ascii_graphic()) || rd.contains('\\') {
            return None;
        }
        if let Some(rest) = rd.strip_prefix('/') {
            // `//evil` and `/\evil` are protocol-relative URLs to another host.
            if rest.starts_with('/') {
                return None;
            }
            return Some(rd.to_owned());
        }
        let rest = rd.strip_prefix("https://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') || authority.is_empty() {
            return None;
        }
        let host = strip_port(authority)?.to_ascii_lowercase();
        let same_origin = own_host
            .and_then(strip_port)
            .is_some_and(|own| own.eq_ignore_ascii_case(&host));
        if same_origin || self.allows(&host) {
            Some(rd.to_owned())
        } else {
            None
        }
    }

    fn allows(&self, host: &str) -> bool {
        self.hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix('.') {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => allowed == host,
            })
    }
}

fn strip_port(authority: &str) -> Option<&str> {
    if let Some(rest) = authority.strip_prefix('[') {
        // `[v6]` or `[v6]:port`, nothing else: `[app.example.com]evil` is not a host.
        let (ip, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
        return (port_ok && ip.parse::<std::net::Ipv6Addr>().is_ok()).then_some(ip);
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if valid_port(port) => host,
        Some(_) => return None,
        None => authority,
    };
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some(host)
}

/// Digits that fit a port; empty means the default. A port past 65535 no browser follows.
fn valid_port(port: &str) -> bool {
    port.bytes().all(|b| b.is_ascii_digit()) && (port.is_empty() || port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RedirectPolicy {
        RedirectPolicy::new(&[
            "app.example.com".into(),
            ".example.com".into(),
            "other.test".into(),
        ])
    }

    #[test]
    fn paths_and_allowed_hosts_pass() {
        let p = policy();
        for ok in [
            "/",
            "/dashboard?tab=1#top",
            "/%2F%2Fevil.com",
            "https://app.example.com/x",
            "https://deep.sub.example.com",
            "https://other.test:8443/y",
            "https://self.local/z",
        ] {
            assert_eq!(
                p.check(ok, Some("self.local:8443")).as_deref(),
                Some(ok),
                "{ok}"
            );
        }
    }

    #[test]
    fn every_open_redirect_spelling_is_refused() {
        let p = policy();
        for bad in [
            "",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "https:evil.com",
            "https:/evil.com",
            "http://app.example.com/",
            "javascript:alert(1)",
            "data:text/html,x",
            "evil.com",
            "https://evil.com",
            "https://badexample.com",
            "https://example.com.evil.com",
            "https://evilexample.com",
            "https://.example.com",
            "https://app.example.com@evil.com",
            "https://user:pass@app.example.com/",
            "https://evil.com\\@app.example.com",
            "https://evil.com#@app.example.com",
            "/\tevil",
            " /x",
            "/x\n",
            "https://app.example.com /x",
            "https://app.example.com\t/x",
            "/caf\u{e9}",
            "https://app.example.com:x/",
        ] {
            assert_eq!(p.check(bad, Some("self.local")), None, "{bad:?}");
        }
    }

    /// Found by `fuzz/` (target `redirect`): a port past 65535 was accepted, though no browser
    /// can follow such a URL (the `url` crate refuses it too).
    #[test]
    fn ports_no_browser_can_parse_are_refused() {
        let p = policy();
        for bad in [
            "https://app.example.com:65536/",
            "https://a.example.com:422121/x",
            "https://app.example.com:99999999999999999999/",
        ] {
            assert_eq!(p.check(bad, None), None, "{bad:?}");
        }
        assert!(p.check("https://app.example.com:65535/", None).is_some());
        assert!(p.check("https://app.example.com:/", None).is_some());
    }

    /// Found by `fuzz/` (target `redirect`): anything in brackets passed as a host, so
    /// `https://[app.example.com]evil/` was accepted as `app.example.com`.
    #[test]
    fn brackets_hold_an_ipv6_address_and_nothing_follows_but_a_port() {
        let p = policy();
        for bad in [
            "https://[app.example.com]:44",
            "https://[app.example.com]evil.com/",
            "https://[::1]evil/",
            "https://[::1]:99999/",
        ] {
            assert_eq!(p.check(bad, Some("[::1]:8443")), None, "{bad:?}");
        }
        assert!(
            p.check("https://[::1]:8443/x", Some("[::1]:8443"))
                .is_some()
        );
    }

    #[test]
    fn suffix_entries_need_a_real_subdomain() {
        let p = RedirectPolicy::new(&[".example.com".into()]);
        assert!(p.check("https://a.example.com/", None).is_some());
        assert!(p.check("https://example.com/", None).is_none());
        assert!(p.check("https://aexample.com/", None).is_none());
    }
}
