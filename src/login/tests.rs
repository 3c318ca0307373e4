use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in pairs {
        map.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

#[test]
fn only_browser_navigations_count_as_navigations() {
    let html = "text/html,application/xhtml+xml,*/*;q=0.8";
    assert!(is_navigation(&headers(&[
        ("accept", html),
        ("sec-fetch-mode", "navigate")
    ])));
    assert!(
        is_navigation(&headers(&[("accept", html)])),
        "older browsers send no Sec-Fetch-Mode"
    );
    for h in [
        headers(&[("accept", html), ("sec-fetch-mode", "cors")]),
        headers(&[("accept", html), ("sec-fetch-mode", "no-cors")]),
        headers(&[("accept", html), ("x-requested-with", "XMLHttpRequest")]),
        headers(&[("accept", "application/json")]),
        headers(&[("accept", "image/avif,image/webp,*/*")]),
        headers(&[]),
    ] {
        assert!(!is_navigation(&h), "{h:?}");
    }
}

#[test]
fn set_cookies_carry_the_safe_attributes() {
    let cookie = set_cookie("__Host-gatehouse", "v1.abc", 60).unwrap();
    assert_eq!(
        cookie,
        "__Host-gatehouse=v1.abc; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=60"
    );
}

#[test]
fn random_ids_differ() {
    let a = random_hex(16).unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, random_hex(16).unwrap());
}
