#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn cors(origins: &[&str], credentials: bool) -> Cors {
    Cors {
        preflight: PreflightMode::Answer,
        origins: match origins {
            ["*"] => Origins::Any,
            list => Origins::List(
                list.iter()
                    .map(|o| OriginPattern::parse(o).unwrap())
                    .collect(),
            ),
        },
        methods: vec![Method::PUT, Method::DELETE],
        headers: vec!["x-custom".into(), "content-type".into()],
        allow_credentials: credentials,
        max_age: Some(600),
    }
}

fn origin(o: &str) -> HeaderValue {
    HeaderValue::from_str(o).unwrap()
}

fn preflight(o: &str, method: &str, headers: &str) -> Preflight {
    let mut map = HeaderMap::new();
    map.insert(header::ORIGIN, origin(o));
    map.insert(REQUEST_METHOD, HeaderValue::from_str(method).unwrap());
    if !headers.is_empty() {
        map.insert(REQUEST_HEADERS, HeaderValue::from_str(headers).unwrap());
    }
    Preflight::of(&Method::OPTIONS, &map, true)
        .unwrap()
        .unwrap()
}

#[test]
fn exact_origins_match_their_serialization_only() {
    let c = cors(&["https://app.example.com", "http://localhost:3000"], true);
    assert!(c.allows_origin(&origin("https://app.example.com")));
    assert!(c.allows_origin(&origin("https://APP.example.com")));
    assert!(c.allows_origin(&origin("http://localhost:3000")));
    for other in [
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com.evil.test",
        "https://evilapp.example.com",
        "https://x.app.example.com",
        "http://localhost:3001",
        "http://localhost",
        "null",
        "https://app.example.com/",
        "",
    ] {
        assert!(!c.allows_origin(&origin(other)), "{other}");
    }
}

#[test]
fn a_default_port_is_the_same_origin() {
    let c = cors(&["https://app.example.com:443"], false);
    assert!(c.allows_origin(&origin("https://app.example.com")));
    assert!(c.allows_origin(&origin("https://app.example.com:443")));
    assert!(!c.allows_origin(&origin("https://app.example.com:444")));
}

#[test]
fn wildcards_match_subdomains_never_the_apex_scheme_or_port() {
    let c = cors(&["https://*.example.com"], true);
    assert!(c.allows_origin(&origin("https://app.example.com")));
    assert!(c.allows_origin(&origin("https://a.b.example.com")));
    for other in [
        "https://example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://badexample.com",
        "https://app.example.com.evil.test",
        "https://.example.com",
        "https://app.example.co",
    ] {
        assert!(!c.allows_origin(&origin(other)), "{other}");
    }
    let ported = cors(&["https://*.example.com:8443"], true);
    assert!(ported.allows_origin(&origin("https://app.example.com:8443")));
    assert!(!ported.allows_origin(&origin("https://app.example.com")));
}

#[test]
fn malformed_patterns_are_refused() {
    for bad in [
        "example.com",
        "ftp://example.com",
        "https://example.com/",
        "https://example.com/path",
        "https://user@example.com",
        "https://example.com:0",
        "https://example.com:99999",
        "https://example.com:x",
        "https://*",
        "https://*.com",
        "https://a.*.example.com",
        "https://*example.com",
        "https://exa mple.com",
        "https://[::1",
        "https://",
        "*",
    ] {
        assert!(OriginPattern::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        OriginPattern::parse("https://[::1]:8443").unwrap(),
        OriginPattern::Exact("https://[::1]:8443".into())
    );
    assert_eq!(
        OriginPattern::parse("HTTP://127.0.0.1:80").unwrap(),
        OriginPattern::Exact("http://127.0.0.1".into())
    );
}

#[test]
fn a_preflight_is_options_with_origin_and_method_and_no_body() {
    let mut map = HeaderMap::new();
    map.insert(header::ORIGIN, origin("https://a.example"));
    assert_eq!(Preflight::of(&Method::OPTIONS, &map, true), Ok(None));
    map.insert(REQUEST_METHOD, HeaderValue::from_static("PUT"));
    assert!(
        Preflight::of(&Method::OPTIONS, &map, true)
            .unwrap()
            .is_some()
    );
    assert_eq!(Preflight::of(&Method::OPTIONS, &map, false), Ok(None));
    assert_eq!(Preflight::of(&Method::GET, &map, true), Ok(None));
    map.append(header::ORIGIN, origin("https://b.example"));
    assert!(Preflight::of(&Method::OPTIONS, &map, true).is_err());
    map.remove(header::ORIGIN);
    map.insert(header::ORIGIN, origin("https://a.example"));
    map.insert(REQUEST_METHOD, HeaderValue::from_static("P(T"));
    assert!(Preflight::of(&Method::OPTIONS, &map, true).is_err());
}

#[test]
fn answers_check_origin_method_and_headers() {
    let c = cors(&["https://app.example.com"], true);
    let (ok, why) = c.answer(&preflight(
        "https://app.example.com",
        "PUT",
        "X-Custom, content-type",
    ));
    assert_eq!(why, Ok(()));
    assert_eq!(ok.status(), 204);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-allow-methods"], "PUT, DELETE");
    assert_eq!(h["access-control-allow-headers"], "x-custom, content-type");
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h["vary"].to_str().unwrap().starts_with("Origin"));

    for (p, why) in [
        (
            preflight("https://evil.example.com", "PUT", ""),
            Refused::Origin,
        ),
        (
            preflight("https://app.example.com", "PATCH", ""),
            Refused::Method(Method::PATCH),
        ),
        (
            preflight("https://app.example.com", "GET", "x-other"),
            Refused::Header("x-other".into()),
        ),
    ] {
        let (answer, refused) = c.answer(&p);
        assert_eq!(refused, Err(why));
        assert_eq!(answer.status(), 403);
        assert!(
            answer
                .headers()
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{:?}",
            answer.headers()
        );
        assert!(answer.headers().contains_key("vary"));
    }
    // Safelisted methods need no listing.
    assert_eq!(
        c.check(&preflight("https://app.example.com", "POST", "")),
        Ok(())
    );
}

#[test]
fn any_origin_is_answered_with_a_star_and_no_credentials() {
    let c = cors(&["*"], false);
    let (ok, _) = c.answer(&preflight("https://anything.test", "GET", ""));
    assert_eq!(ok.headers()["access-control-allow-origin"], "*");
    assert!(
        !ok.headers()
            .contains_key("access-control-allow-credentials")
    );
    assert!(!ok.headers()["vary"].to_str().unwrap().contains("Origin,"));
}

#[test]
fn denials_carry_cors_headers_for_allowed_origins_only() {
    let c = cors(&["https://app.example.com"], true);
    let denial = |o: Option<&str>, status: StatusCode| {
        let request = o.map(origin);
        let mut response = Response::new(body::empty());
        *response.status_mut() = status;
        c.decorate_denial(request.as_ref(), &mut response);
        response
    };
    for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
        let r = denial(Some("https://app.example.com"), status);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
        assert_eq!(r.headers()["vary"], "Origin");
        let r = denial(Some("https://evil.example.com"), status);
        assert!(!r.headers().contains_key("access-control-allow-origin"));
        assert_eq!(r.headers()["vary"], "Origin");
    }
    let r = denial(Some("https://app.example.com"), StatusCode::FOUND);
    assert!(r.headers().is_empty());
    let r = denial(None, StatusCode::UNAUTHORIZED);
    assert!(r.headers().is_empty());
}

#[test]
fn forwarded_answers_are_decorated_in_answer_mode_only() {
    let mut c = cors(&["https://app.example.com"], true);
    let request = Some(origin("https://app.example.com"));
    let mut response = HeaderMap::new();
    c.decorate_forwarded(request.as_ref(), &mut response);
    assert_eq!(
        response["access-control-allow-origin"],
        "https://app.example.com"
    );
    let mut own = HeaderMap::new();
    own.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin("https://other"));
    c.decorate_forwarded(request.as_ref(), &mut own);
    assert_eq!(own["access-control-allow-origin"], "https://other");
    c.preflight = PreflightMode::Pass;
    let mut passed = HeaderMap::new();
    c.decorate_forwarded(request.as_ref(), &mut passed);
    assert!(passed.is_empty());
}
