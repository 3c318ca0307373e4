//! The `rd=` check (`gatehouse::login::RedirectPolicy::check`): whatever it accepts is
//! either a path on this site (one `/`, not followed by `/` or `\`) or an `https://` URL on
//! an allow-listed host (exactly, or under a `.domain` entry) or on the request's own host.
//! The check is compared with an independent parse by the `url` crate, resolving `rd`
//! against the login page the way a browser would: the result must be https on an allowed
//! host. Accepted URLs that a browser cannot parse at all are findings too, except for
//! invalid IDNA labels (see below).
//!
//! Input: the first byte says whether the request named its own host; the rest is `rd`.
#![no_main]

use std::sync::LazyLock;

use gatehouse::login::RedirectPolicy;
use libfuzzer_sys::fuzz_target;
use url::Url;

const OWN: &str = "self.example.net";

static POLICY: LazyLock<RedirectPolicy> =
    LazyLock::new(|| RedirectPolicy::new(&["app.example.com".into(), ".example.org".into()]));

fn allowed(host: &str, own: bool) -> bool {
    host == "app.example.com"
        || host
            .strip_suffix(".example.org")
            .is_some_and(|sub| !sub.is_empty())
        || (own && host == OWN)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(rd) = std::str::from_utf8(rest) else {
        return;
    };
    let own = mode & 1 == 1;
    let own_host = own.then(|| format!("{OWN}:8443"));
    let Some(target) = POLICY.check(rd, own_host.as_deref()) else {
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
        let host = parsed
            .as_ref()
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        assert!(
            host.as_deref().is_some_and(|h| allowed(h, own)),
            "accepted {rd:?}, but it parses to {parsed:?}"
        );
    }
    // As a browser on the login page resolves it.
    let base = Url::parse(&format!("https://{OWN}:8443/oauth2/start")).ok();
    let resolved = base.and_then(|b| b.join(rd).ok());
    let ok = resolved
        .as_ref()
        .is_some_and(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| allowed(h, true)));
    assert!(ok, "accepted {rd:?}, a browser goes to {resolved:?}");
    if rd.starts_with('/') {
        assert_eq!(
            resolved.as_ref().and_then(Url::host_str),
            Some(OWN),
            "{rd:?}"
        );
    }
});
