//! The `rd=` check (`gatehouse::login::RedirectPolicy::check`): whatever it accepts is
//! either a path on this site (one `/`, not followed by `/` or `\`) or an `https://` URL on
//! an allow-listed host and port (exactly, or under a `.domain` entry; 443 unless the entry
//! names a port) or on the request's own origin (host and port).
//! The check is compared with an independent parse by the `url` crate, resolving `rd`
//! against the login page the way a browser would: the result must be https on an allowed
//! host and port. Accepted URLs that a browser cannot parse at all are findings too, except
//! for invalid IDNA labels (see below).
//!
//! Input: the first byte says whether the request named its own host; the rest is `rd`.
#![no_main]

use std::sync::LazyLock;

use gatehouse::login::{Origin, RedirectPolicy};
use libfuzzer_sys::fuzz_target;
use url::Url;

const OWN: &str = "self.example.net";
const OWN_PORT: u16 = 8443;

static POLICY: LazyLock<RedirectPolicy> =
    LazyLock::new(|| RedirectPolicy::new(&["app.example.com".into(), ".example.org:9443".into()]));

fn allowed(url: &Url, own: bool) -> bool {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    (host == "app.example.com" && port == 443)
        || (host
            .strip_suffix(".example.org")
            .is_some_and(|sub| !sub.is_empty())
            && port == 9443)
        || (own && host == OWN && port == OWN_PORT)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(rd) = std::str::from_utf8(rest) else {
        return;
    };
    let own = mode & 1 == 1;
    let origin = own.then(|| Origin::new("https", &format!("{OWN}:{OWN_PORT}")));
    let Some(target) = POLICY.check(rd, origin.flatten().as_ref()) else {
        return;
    };
    assert_eq!(target, rd);
    if let Some(path) = rd.strip_prefix('/') {
        assert!(!path.starts_with(['/', '\\']), "{rd:?}");
    } else {
        assert!(rd.starts_with("https://"), "{rd:?}");
        let parsed = Url::parse(rd);
        if parsed == Err(url::ParseError::IdnaError) {
            // A label that is not valid IDNA (`xn--en`): the check accepts it (it does not
            // implement IDNA), but no browser navigates to it, so it can send nobody away.
            return;
        }
        assert!(
            parsed.as_ref().is_ok_and(|u| allowed(u, own)),
            "accepted {rd:?}, but it parses to {parsed:?}"
        );
    }
    // As a browser on the login page resolves it.
    let base = Url::parse(&format!("https://{OWN}:{OWN_PORT}/oauth2/start")).ok();
    let resolved = base.and_then(|b| b.join(rd).ok());
    let ok = resolved
        .as_ref()
        .is_some_and(|u| u.scheme() == "https" && allowed(u, true));
    assert!(ok, "accepted {rd:?}, a browser goes to {resolved:?}");
    if rd.starts_with('/') {
        assert_eq!(
            resolved.as_ref().and_then(Url::host_str),
            Some(OWN),
            "{rd:?}"
        );
    }
});
