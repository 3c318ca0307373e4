//! Header hygiene: hop-by-hop removal, `X-Forwarded-*` and request ids.
//!
//! Pure functions over `http::HeaderMap`; nothing here knows about sockets, TLS or the upstream.
//! The stack calls these before anything else reads the request, so no later step can be
//! influenced by a header that a client meant for "the next hop".

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// Headers that describe one connection and must never be forwarded (RFC 9110 §7.6.1), plus
/// the historical ones that proxies still see (`Proxy-Connection`, `Keep-Alive`) and the
/// settings of an `h2c` upgrade (`HTTP2-Settings`, RFC 7540 §3.2.1), which is never forwarded.
pub static HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

/// Removes hop-by-hop headers and every header named in `Connection` (in any case), in either
/// direction. When the message asked for a protocol upgrade (`Connection: upgrade` and an
/// `Upgrade` header), the upgrade is kept as exactly `Connection: upgrade` + `Upgrade: <value>`,
/// and the value is returned so the caller knows to splice the connections.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    // Most messages carry none of these: one pass of cheap name comparisons, no hashing.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return None;
    }
    // One pass over the names present, matched against `Connection`'s tokens as bytes (not
    // text: a non-ASCII token must not hide the names beside it), rather than parsing each
    // token into a name and removing every candidate, present or not (~2,800 instructions a
    // request when the app answers `Connection: keep-alive`, bench/profile).
    let tokens = || {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|value| {
                value
                    .as_bytes()
                    .split(|b| *b == b',')
                    .map(<[u8]>::trim_ascii)
            })
    };
    // Names are lower case, so `X-User-Id` and `x-USER-id` in `Connection` name one header.
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            HOP_BY_HOP.contains(name)
                || tokens().any(|token| token.eq_ignore_ascii_case(name.as_str().as_bytes()))
        })
        .cloned()
        .collect();
    let upgrade = if tokens().any(|token| token.eq_ignore_ascii_case(b"upgrade")) {
        single_value(headers, &header::UPGRADE).cloned()
    } else {
        None
    };
    for name in &doomed {
        headers.remove(name);
    }
    if let Some(protocol) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    upgrade
}

/// Whether `text` is one upgrade protocol (RFC 9110 §7.8): a token, optionally `/version`.
pub fn is_upgrade_token(text: &str) -> bool {
    let token = |part: &str| !part.is_empty() && part.bytes().all(is_tchar);
    match text.split_once('/') {
        Some((name, version)) => token(name) && token(version),
        None => token(text),
    }
}

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The value of a header that must appear at most once; `None` when absent or repeated.
pub fn single_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// Headers a client could use to lie about where a request came from or what it asked for.
/// They are honoured only from trusted proxies; from anyone else they are removed.
static FORWARDING_HEADERS: [HeaderName; 10] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-real-ip"),
];

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The verified client certificate, in Envoy's format (`tls.client_auth.forward_client_cert`).
pub const X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// Which peers may tell us about the original client (`X-Forwarded-*`, `Forwarded`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// `::ffff:10.0.0.1` is the IPv4 peer `10.0.0.1` seen through a dual-stack socket.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Appends `ip` as text. IPv4 by hand: every request writes its peer's address, and
/// `Display` through the formatting machinery was ~1,000 instructions (bench/profile).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(_) => out.extend_from_slice(ip.to_string().as_bytes()),
    }
}

/// Sets `X-Forwarded-For`, `-Proto` and `-Host` for the upstream.
///
/// From an untrusted peer, every client-sent forwarding header is removed first and ours are
/// built from the socket alone. From a trusted proxy, the chain is extended with the peer and
/// the proxy's `-Proto`/`-Host` are kept.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    proto: &'static str,
    host: Option<HeaderValue>,
    trusted: &TrustedProxies,
) {
    let peer = canonical_ip(peer);
    let mut chain = Vec::with_capacity(16);
    if trusted.contains(peer) {
        for value in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(text) = value.to_str() {
                for hop in text.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                    chain.extend_from_slice(hop.as_bytes());
                    chain.extend_from_slice(b", ");
                }
            }
        }
    } else if headers.keys().any(|name| FORWARDING_HEADERS.contains(name)) {
        for name in &FORWARDING_HEADERS {
            headers.remove(name);
        }
    }
    push_ip(&mut chain, peer);
    if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(chain)) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if single_value(headers, &X_FORWARDED_PROTO).is_none() {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if single_value(headers, &X_FORWARDED_HOST).is_none() {
        match host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host),
            None => headers.remove(&X_FORWARDED_HOST),
        };
    }
}

/// The request id: the client's `X-Request-Id` when it is one short token of safe characters,
/// otherwise a fresh one (a random per-process prefix and a counter: unique, and cheap enough
/// for every request).
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(value) = single_value(headers, &X_REQUEST_ID) {
        let bytes = value.as_bytes();
        let safe = |b: &u8| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b);
        if (1..=128).contains(&bytes.len()) && bytes.iter().all(safe) {
            return value.clone();
        }
    }
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        let random = rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut bytes);
        // Without randomness the ids are still unique within this process.
        let bytes = random.map(|()| bytes).unwrap_or_default();
        bytes.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(fresh_id(prefix, n)))
        .unwrap_or(HeaderValue::from_static("unknown"))
}

/// `format!("{prefix}-{n:08x}")`, written by hand: it runs for every request without an id
/// of its own, and the formatting machinery plus `from_str`'s copy were ~1,500 instructions.
fn fresh_id(prefix: &str, n: u64) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - n.leading_zeros() / 4).max(8);
    let mut id = Vec::with_capacity(prefix.len() + 1 + 16);
    id.extend_from_slice(prefix.as_bytes());
    id.push(b'-');
    for i in (0..digits).rev() {
        id.push(HEX[((n >> (4 * i)) & 0xf) as usize]);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let octets = [0u8, 1, 9, 10, 42, 99, 100, 199, 200, 255];
        for &a in &octets {
            for &b in &octets {
                let ip = IpAddr::from([a, b, 255 - a, 9u8.wrapping_add(b)]);
                let mut out = Vec::new();
                push_ip(&mut out, ip);
                assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
            }
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut out = b"10.0.0.1, ".to_vec();
        push_ip(&mut out, v6);
        assert_eq!(out, b"10.0.0.1, 2001:db8::1");
    }

    /// Found by `fuzz/` (target `headers`): a `Connection` value with a non-ASCII byte was
    /// skipped whole, so the headers it named were forwarded.
    #[test]
    fn connection_names_count_even_beside_non_ascii_bytes() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::CONNECTION,
            HeaderValue::from_bytes(b"\xe6\xaa, X-Foo").unwrap(),
        );
        headers.append("x-foo", HeaderValue::from_static("1"));
        headers.append("x-bar", HeaderValue::from_static("2"));
        remove_hop_by_hop(&mut headers);
        assert!(!headers.contains_key("x-foo"), "{headers:?}");
        assert!(headers.contains_key("x-bar"));
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn removes_standard_hop_by_hop_headers() {
        let mut h = map(&[
            ("keep-alive", "timeout=5"),
            ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"),
            ("Proxy-Connection", "keep-alive"),
            ("Proxy-Authorization", "Basic Zm9v"),
            ("Trailer", "x-sum"),
            ("Upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        assert_eq!(remove_hop_by_hop(&mut h), None);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn removes_headers_named_in_connection_in_any_case() {
        let mut h = map(&[
            ("Connection", "keep-alive, X-Secret ,x-other"),
            ("connection", "X-USER-ID"),
            ("x-secret", "1"),
            ("X-Other", "2"),
            ("x-user-id", "mallory"),
            ("x-kept", "3"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn keeps_a_requested_upgrade_as_exactly_two_headers() {
        let mut h = map(&[
            ("Connection", "Upgrade, x-drop"),
            ("Upgrade", "websocket"),
            ("x-drop", "1"),
            ("sec-websocket-key", "abc"),
        ]);
        assert_eq!(
            remove_hop_by_hop(&mut h),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert!(!h.contains_key("x-drop"));
        assert!(h.contains_key("sec-websocket-key"));
    }

    #[test]
    fn upgrade_without_connection_token_is_dropped() {
        let mut h = map(&[("Upgrade", "websocket")]);
        assert_eq!(remove_hop_by_hop(&mut h), None);
        assert!(h.is_empty());
    }

    #[test]
    fn untrusted_peer_cannot_set_forwarding_headers() {
        let mut h = map(&[
            ("X-Forwarded-For", "1.2.3.4"),
            ("x-forwarded-proto", "http"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Uri", "/admin"),
            ("X-Real-IP", "1.2.3.4"),
            ("Forwarded", "for=1.2.3.4"),
        ]);
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let host = Some(HeaderValue::from_static("app.example"));
        set_forwarded(
            &mut h,
            "192.0.2.7".parse().unwrap(),
            "https",
            host,
            &trusted,
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "app.example");
        for gone in ["x-forwarded-uri", "x-real-ip", "forwarded"] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
    }

    #[test]
    fn trusted_peer_extends_the_chain() {
        let mut h = map(&[
            ("X-Forwarded-For", "203.0.113.1, 198.51.100.2"),
            ("X-Forwarded-For", "198.51.100.3"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "public.example"),
        ]);
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        set_forwarded(&mut h, peer, "https", None, &trusted);
        assert_eq!(
            h["x-forwarded-for"],
            "203.0.113.1, 198.51.100.2, 198.51.100.3, 10.1.2.3"
        );
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "public.example");
    }

    #[test]
    fn fresh_ids_are_the_prefix_and_the_counter_in_hex() {
        for n in [
            0,
            1,
            0xabc,
            0xffff_ffff,
            0x1_0000_0000,
            0x0123_4567_89ab_cdef,
            u64::MAX,
        ] {
            let want = format!("0a1b2c3d4e5f-{n:08x}");
            assert_eq!(fresh_id("0a1b2c3d4e5f", n), want.as_bytes(), "{n:#x}");
        }
    }

    #[test]
    fn request_id_passes_safe_ids_and_replaces_others() {
        let safe = map(&[("x-request-id", "abc-123_x.y")]);
        assert_eq!(request_id(&safe), "abc-123_x.y");
        for bad in [
            &[("x-request-id", "has space")][..],
            &[("x-request-id", "a"), ("x-request-id", "b")],
        ] {
            let id = request_id(&map(bad));
            assert_ne!(id, "has space");
            assert!(id.len() > 8);
        }
        let long = "a".repeat(129);
        assert_ne!(request_id(&map(&[("x-request-id", &long)])), long.as_str());
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }
}
