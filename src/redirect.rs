//! Where a login or logout may send the browser afterwards (`rd=`): a path on this site, an
//! `https://` URL on this very origin (scheme, host and port), or one on an allow-listed
//! `host[:port]`. Everything else is refused, because an open redirect on a login page is a
//! phishing tool.
//!
//! Hosts are compared as a browser compares origins: names case-insensitively, IP addresses
//! by value, ports exactly (no port means 443). What a browser would read differently from us
//! is refused rather than interpreted: userinfo (`user@`), a trailing dot (`host.`, which
//! resolves like `host` but is another origin), empty labels, IPv4 in any form but dotted
//! decimal (`2130706433`, `0x7f.1`), and non-ASCII.
//!
//! Pure and shared: `config` checks `login.allowed_redirect_hosts` with it at load, `login`
//! applies it to each `rd=`.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The port of an `https://` URL that names none.
const HTTPS_PORT: u16 = 443;
const HTTP_PORT: u16 = 80;

/// A host as origins compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A DNS name in lower case, without a trailing dot.
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// The origin a request came to: the listener's scheme and the `Host` header. Only an
/// `https` origin has same-origin absolute `rd=` URLs (they must be `https://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    host: Host,
    port: u16,
}

impl Origin {
    /// The origin of a request that came in over `scheme` (`https` or `http`) with this `Host`;
    /// `None` when the header is not a plain `host[:port]` (then only paths are same-origin).
    pub fn new(scheme: &str, host_header: &str) -> Option<Self> {
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let (host, port) = authority(host_header)?;
        let default = if https { HTTPS_PORT } else { HTTP_PORT };
        Some(Self {
            https,
            host,
            port: port.unwrap_or(default),
        })
    }
}

/// One `login.allowed_redirect_hosts` entry.
#[derive(Debug, Clone)]
struct Allowed {
    pattern: Pattern,
    /// The one port it allows: the entry's, or 443 when it names none.
    port: u16,
}

#[derive(Debug, Clone)]
enum Pattern {
    /// `app.example.com`, `127.0.0.1`, `[::1]`: this host only.
    Exact(Host),
    /// `.example.com`: any subdomain (never `example.com` itself, nor `badexample.com`).
    Subdomains(String),
}

impl Allowed {
    fn parse(entry: &str) -> Result<Self, &'static str> {
        let entry = entry.trim();
        if entry.contains("://") {
            return Err("is a host, not a URL: write `app.example.com` or `app.example.com:8443`");
        }
        let (subdomains, rest) = match entry.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        let (host, port) = authority(rest).ok_or(
            "must be `host`, `.domain` or either with `:port` (no scheme, path, user or trailing dot; IPv6 in brackets)",
        )?;
        if port == Some(0) {
            return Err("has port 0, which no browser goes to");
        }
        let pattern = match (subdomains, host) {
            (true, Host::Name(domain)) => Pattern::Subdomains(domain),
            (true, Host::V4(_) | Host::V6(_)) => {
                return Err("`.domain` needs a domain name, not an IP address");
            }
            (false, host) => Pattern::Exact(host),
        };
        Ok(Self {
            pattern,
            port: port.unwrap_or(HTTPS_PORT),
        })
    }

    fn allows(&self, host: &Host, port: u16) -> bool {
        port == self.port
            && match (&self.pattern, host) {
                (Pattern::Exact(allowed), host) => allowed == host,
                (Pattern::Subdomains(domain), Host::Name(name)) => name
                    .strip_suffix(domain.as_str())
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                (Pattern::Subdomains(_), Host::V4(_) | Host::V6(_)) => false,
            }
    }
}

/// Why a `login.allowed_redirect_hosts` entry is not one, for the config check.
pub fn allowed_host_problem(entry: &str) -> Option<&'static str> {
    Allowed::parse(entry).err()
}

/// Allowed hosts: `app.example.com` matches exactly, `.example.com` any subdomain; each on
/// port 443 unless the entry names a port (`app.example.com:8443`), then on that port only.
#[derive(Debug, Clone, Default)]
pub struct RedirectPolicy {
    hosts: Vec<Allowed>,
}

impl RedirectPolicy {
    /// Entries that are not hosts (the config check reports them) allow nothing.
    pub fn new(hosts: &[String]) -> Self {
        Self {
            hosts: hosts
                .iter()
                .filter_map(|h| Allowed::parse(h).ok())
                .collect(),
        }
    }

    /// The target to redirect to, or `None` when `rd` is not safe. `own` is the origin the
    /// request came to (absolute URLs on exactly that origin are accepted).
    pub fn check(&self, rd: &str, own: Option<&Origin>) -> Option<String> {
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
        let (host, port) = authority(&rest[..end])?;
        let port = port.unwrap_or(HTTPS_PORT);
        let same_origin = own.is_some_and(|o| o.https && o.host == host && o.port == port);
        if same_origin || self.hosts.iter().any(|a| a.allows(&host, port)) {
            Some(rd.to_owned())
        } else {
            None
        }
    }
}

/// `host[:port]` as origins compare it; `None` for anything else (userinfo, a trailing dot,
/// an empty label, a bracket that holds no IPv6 address, a port no browser can parse).
/// An empty port (`host:`) means the default, as in a URL.
fn authority(text: &str) -> Option<(Host, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        // `[v6]` or `[v6]:port`, nothing else: `[app.example.com]evil` is not a host.
        let (ip, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            after => port(after.strip_prefix(':')?)?,
        };
        return Some((Host::V6(ip.parse().ok()?), port));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, digits)) => (host, port(digits)?),
        None => (text, None),
    };
    Some((name_or_ipv4(host)?, port))
}

/// Digits that fit a port; `Some(None)` for none at all. A port past 65535 no browser follows.
fn port(digits: &str) -> Option<Option<u16>> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.is_empty() {
        return Some(None);
    }
    digits.parse().ok().map(Some)
}

fn name_or_ipv4(host: &str) -> Option<Host> {
    let labels_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return None;
    }
    // A browser reads a host whose last label is a number as IPv4, in forms we do not want
    // to second-guess (`2130706433`, `0x7f.1`, `010.0.0.1`): only dotted decimal passes.
    let last = host.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x"));
    if numeric {
        return host.parse().ok().map(Host::V4);
    }
    Some(Host::Name(host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RedirectPolicy {
        RedirectPolicy::new(&[
            "app.example.com".into(),
            ".example.com".into(),
            "other.test:8443".into(),
        ])
    }

    fn own(host: &str) -> Origin {
        Origin::new("https", host).unwrap()
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
            "https://self.local:8443/z",
            "https://SELF.Local:08443/z",
        ] {
            assert_eq!(
                p.check(ok, Some(&own("self.local:8443"))).as_deref(),
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
            assert_eq!(p.check(bad, Some(&own("self.local"))), None, "{bad:?}");
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
        let high = RedirectPolicy::new(&["app.example.com:65535".into()]);
        assert!(high.check("https://app.example.com:65535/", None).is_some());
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
            assert_eq!(p.check(bad, Some(&own("[::1]:8443"))), None, "{bad:?}");
        }
        assert!(
            p.check("https://[::1]:8443/x", Some(&own("[::1]:8443")))
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

    /// Found by hand (issue 11): on `ourhost:8443`, `https://ourhost:9999/x` was accepted as
    /// same-origin, though another port is another origin (and maybe another program).
    #[test]
    fn same_origin_means_scheme_host_and_port() {
        let p = RedirectPolicy::default();
        let here = own("ourhost:8443");
        for bad in [
            "https://ourhost:9999/x",
            "https://ourhost/x",
            "https://ourhost:443/x",
            "https://ourhost.:8443/x",
            "https://ourhost..:8443/x",
            "https://user@ourhost:8443/x",
            "https://ourhost:8443@evil.com/x",
            "https://ourhost:8443:8443/x",
        ] {
            assert_eq!(p.check(bad, Some(&here)), None, "{bad:?}");
        }
        for ok in [
            "https://ourhost:8443/x",
            "https://OurHost:8443",
            "https://ourhost:8443?q",
        ] {
            assert!(p.check(ok, Some(&here)).is_some(), "{ok:?}");
        }
        // Without a port, `Host` means the scheme's default port.
        let default = own("ourhost");
        assert!(p.check("https://ourhost/x", Some(&default)).is_some());
        assert!(p.check("https://ourhost:443/x", Some(&default)).is_some());
        assert!(p.check("https://ourhost:/x", Some(&default)).is_some());
        assert!(p.check("https://ourhost:8443/x", Some(&default)).is_none());
        // Over plain HTTP, an `https://` URL on our host is another origin.
        let plain = Origin::new("http", "ourhost:8443").unwrap();
        assert!(p.check("https://ourhost:8443/x", Some(&plain)).is_none());
        assert!(p.check("/x", Some(&plain)).is_some());
        // A `Host` that is no host gives no origin.
        for bad in [
            "",
            "ourhost.",
            "a@ourhost",
            "ourhost:99999",
            "[ourhost]",
            "our host",
        ] {
            assert_eq!(Origin::new("https", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn allowed_hosts_allow_their_port_and_443_when_they_name_none() {
        let p = RedirectPolicy::new(&[
            "app.example.com".into(),
            "api.example.com:8443".into(),
            ".apps.test:9443".into(),
            "[::1]:7443".into(),
            "10.0.0.1".into(),
            " Upper.Example.COM ".into(),
        ]);
        for ok in [
            "https://app.example.com/",
            "https://app.example.com:443/",
            "https://api.example.com:8443/",
            "https://a.apps.test:9443/",
            "https://[::1]:7443/",
            "https://[0:0::1]:7443/",
            "https://10.0.0.1/",
            "https://upper.example.com/",
        ] {
            assert!(p.check(ok, None).is_some(), "{ok:?}");
        }
        for bad in [
            "https://app.example.com:8443/",
            "https://api.example.com/",
            "https://api.example.com:443/",
            "https://api.example.com:9443/",
            "https://a.apps.test/",
            "https://apps.test:9443/",
            "https://[::1]/",
            "https://10.0.0.1:8443/",
            "https://010.0.0.1/",
            "https://167772161/",
            "https://0xa.0.0.1/",
            "https://app.example.com./",
            "https://api.example.com.:8443/",
        ] {
            assert_eq!(p.check(bad, None), None, "{bad:?}");
        }
    }

    #[test]
    fn allow_list_entries_are_hosts_with_an_optional_port() {
        for ok in [
            "app.example.com",
            ".example.com",
            "app.example.com:8443",
            ".example.com:8443",
            "[::1]:8443",
            "[::1]",
            "10.0.0.1:8443",
        ] {
            assert_eq!(allowed_host_problem(ok), None, "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "https://app.example.com",
            "app.example.com/",
            "app.example.com.",
            "app..example.com",
            "user@app.example.com",
            "app.example.com:99999",
            "app.example.com:0",
            "app.example.com:x",
            ".10.0.0.1",
            ".[::1]",
            "[app.example.com]",
            "*.example.com",
            "2130706433",
        ] {
            assert!(allowed_host_problem(bad).is_some(), "{bad:?}");
        }
    }
}
