//! Header hygiene over arbitrary header lists, in the order the stack runs it:
//! `headers::remove_hop_by_hop`, `IdentityHeaders::strip_spoofed`, then `headers::set_forwarded`.
//!
//! Input: the first byte picks the peer (trusted proxy or not); the rest is `name:value` lines.
//! After hygiene: no header whose normalised name (lower case, `_` read as `-`) is an identity
//! header survives; no header named in `Connection` and no hop-by-hop header survives (except
//! the `Connection: upgrade` + `Upgrade` pair kept for an upgrade); the forwarding headers are
//! ours alone when the peer is not trusted. Never panics.
#![no_main]

use std::net::IpAddr;

use gatehouse::config::IdentitySettings;
use gatehouse::headers::{self, TrustedProxies};
use gatehouse::identity::IdentityHeaders;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// Written out here rather than imported, so the target checks the module instead of
/// agreeing with it.
const IDENTITY: [&str; 13] = [
    "x-user-id",
    "x-user-roles",
    "x-user-email",
    "x-user-scopes",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    // configured below
    "x-gatehouse-scopes",
];

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const FORWARDING: [&str; 10] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-original-uri",
    "x-original-url",
    "x-real-ip",
];

fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// The names a `Connection` header lists, read independently: comma-separated tokens of
/// the raw bytes, optional whitespace trimmed.
fn connection_names(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .map(|n| n.as_str().to_owned())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut map = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    let original = map.clone();
    let named = connection_names(&original);
    let upgrade_values = original.get_all(http::header::UPGRADE).iter().count();

    let upgrade = headers::remove_hop_by_hop(&mut map);
    let identity = IdentityHeaders::new(IdentitySettings {
        scopes: Some(HeaderName::from_static("x-gatehouse-scopes")),
        ..IdentitySettings::default()
    });
    identity.strip_spoofed(&mut map);

    let kept_for_upgrade =
        |name: &str| upgrade.is_some() && (name == "connection" || name == "upgrade");
    for name in map.keys() {
        let name = name.as_str();
        assert!(
            !IDENTITY.contains(&normalise(name).as_str()),
            "identity header {name:?} survived: {original:?}"
        );
        if !kept_for_upgrade(name) {
            assert!(
                !HOP_BY_HOP.contains(&name),
                "hop-by-hop {name:?} survived: {original:?}"
            );
            assert!(
                !named.iter().any(|n| n == name),
                "{name:?} named in Connection survived: {original:?}"
            );
        }
    }
    if let Some(protocol) = &upgrade {
        assert!(named.iter().any(|n| n == "upgrade"), "{original:?}");
        assert_eq!(upgrade_values, 1, "{original:?}");
        assert_eq!(
            map.get_all("connection").iter().collect::<Vec<_>>(),
            ["upgrade"]
        );
        assert_eq!(
            map.get_all("upgrade").iter().collect::<Vec<_>>(),
            [protocol]
        );
    }

    let peer: IpAddr = if mode & 1 == 0 {
        IpAddr::from([203, 0, 113, 7])
    } else {
        IpAddr::from([10, 0, 0, 1])
    };
    let trusted = TrustedProxies::new("10.0.0.0/8".parse().into_iter().collect());
    let host = (mode & 2 == 0).then(|| HeaderValue::from_static("app.example.com"));
    let before = map.clone();
    headers::set_forwarded(&mut map, peer, "https", host.clone(), &trusted);
    let xff: Vec<&HeaderValue> = map.get_all("x-forwarded-for").iter().collect();
    assert_eq!(xff.len(), 1, "{before:?}");
    let chain = xff[0].to_str().unwrap_or_default();
    assert!(
        chain.ends_with(&peer.to_string()),
        "{before:?} -> {chain:?}"
    );
    if !trusted.contains(peer) {
        assert_eq!(chain, peer.to_string(), "{before:?}");
        assert_eq!(
            map.get_all("x-forwarded-proto").iter().collect::<Vec<_>>(),
            ["https"],
            "{before:?}"
        );
        let forwarded_host: Vec<&HeaderValue> = map.get_all("x-forwarded-host").iter().collect();
        assert_eq!(
            forwarded_host,
            host.iter().collect::<Vec<_>>(),
            "{before:?}"
        );
        for name in FORWARDING.iter().skip(4) {
            assert!(!map.contains_key(*name), "client {name} kept: {before:?}");
        }
        assert!(!map.contains_key("forwarded"), "{before:?}");
    }
});
