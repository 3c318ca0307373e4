//! A test browser for login flows: TLS to Gatehouse through the harness [`Client`], plain HTTP
//! to the test OpenID provider, a cookie jar, and redirect following.
//!
//! `https://localhost` resolves to Gatehouse's listener, whatever port it got (like a hosts
//! file entry), so `login.redirect_url` can be `https://localhost/oauth2/callback` and no port
//! has to be known before Gatehouse starts. The jar keeps cookies by name (everything here is
//! one host with `Path=/`), applies `Max-Age=0` deletions, and refuses, by panicking, cookies a
//! real browser would drop: a `__Host-` cookie without `Secure`/`Path=/` or with `Domain`, and
//! a cookie over 4096 bytes. It ignores positive `Max-Age`, so that expiry is Gatehouse's to
//! enforce.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, header};
use hyper_util::rt::TokioIo;
use oauth2::url::Url;
use tokio::net::TcpStream;

use super::{BoxBody, Client, collect, empty};

/// The origin under which the browser reaches Gatehouse.
pub const ORIGIN: &str = "https://localhost";

/// Headers of a top-level navigation (a link, the address bar).
pub const NAVIGATION: [(&str, &str); 3] = [
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
];

/// Headers of a script's `fetch()` asking for JSON.
pub const FETCH: [(&str, &str); 3] = [
    ("accept", "application/json"),
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-dest", "empty"),
];

/// Redirects followed at most, per visit.
const MAX_HOPS: usize = 10;

/// A cookie as stored: its value and the `Set-Cookie` line that set it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub value: String,
    pub line: String,
}

#[derive(Clone)]
pub struct Browser {
    /// Where `https://localhost` goes.
    pub gatehouse: Client,
    /// The OpenID provider, reached over plain HTTP.
    pub idp: SocketAddr,
    jar: BTreeMap<String, Stored>,
    /// Every `Set-Cookie` line received, in order.
    pub set_cookie_log: Vec<String>,
}

/// Where following a navigation ended.
#[derive(Debug)]
pub struct Visit {
    /// Every URL requested, in order.
    pub urls: Vec<Url>,
    /// The last response.
    pub response: Response<Bytes>,
    /// A redirect that was not followed: to another site, or where the caller asked to stop.
    pub next: Option<Url>,
}

impl Visit {
    /// Where the browser is (or was sent, when `next` is set): path and query on Gatehouse,
    /// the whole URL elsewhere.
    pub fn landed(&self) -> String {
        let url = self.next.as_ref().or(self.urls.last()).unwrap();
        if is_gatehouse(url) {
            match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            }
        } else {
            url.to_string()
        }
    }

    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    pub fn body(&self) -> String {
        String::from_utf8_lossy(self.response.body()).into_owned()
    }

    /// Did the browser request a URL on `host:port` (e.g. the provider)?
    pub fn went_to(&self, authority: &str) -> bool {
        self.urls.iter().any(|u| authority_of(u) == authority)
    }
}

fn is_gatehouse(url: &Url) -> bool {
    url.origin() == Url::parse(ORIGIN).unwrap().origin()
}

fn authority_of(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    }
}

impl Browser {
    pub fn new(gatehouse: Client, idp: SocketAddr) -> Self {
        Self {
            gatehouse,
            idp,
            jar: BTreeMap::new(),
            set_cookie_log: Vec::new(),
        }
    }

    /// A URL on Gatehouse for `path` (with its query).
    pub fn url(path: &str) -> Url {
        Url::parse(ORIGIN).unwrap().join(path).unwrap()
    }

    // --- the jar ---------------------------------------------------------------------------

    pub fn cookie(&self, name: &str) -> Option<&Stored> {
        self.jar.get(name)
    }

    /// Names of the cookies in the jar, sorted.
    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.keys().cloned().collect()
    }

    /// Cookies whose name starts with `prefix`.
    pub fn cookies_starting_with(&self, prefix: &str) -> Vec<(String, Stored)> {
        self.jar
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect()
    }

    /// Puts a cookie in the jar as if a page had set it (planted, tampered, restored).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar.insert(
            name.to_owned(),
            Stored {
                value: value.to_owned(),
                line: format!("{name}={value}"),
            },
        );
    }

    pub fn remove_cookie(&mut self, name: &str) {
        self.jar.remove(name);
    }

    /// The `Cookie` header this browser sends (none when the jar is empty).
    pub fn cookie_header(&self) -> Option<String> {
        (!self.jar.is_empty()).then(|| {
            self.jar
                .iter()
                .map(|(n, s)| format!("{n}={}", s.value))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Applies the `Set-Cookie` headers of a Gatehouse response.
    pub fn apply(&mut self, response: &Response<Bytes>) {
        for line in response.headers().get_all(header::SET_COOKIE) {
            let line = line.to_str().unwrap().to_owned();
            self.set_cookie_log.push(line.clone());
            self.store(&line);
        }
    }

    fn store(&mut self, line: &str) {
        let mut parts = line.split(';');
        let (name, value) = parts.next().unwrap().trim().split_once('=').unwrap();
        let attributes: Vec<(String, String)> = parts
            .map(|a| {
                let (k, v) = a.trim().split_once('=').unwrap_or((a.trim(), ""));
                (k.to_ascii_lowercase(), v.to_owned())
            })
            .collect();
        let attribute = |key: &str| attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        assert!(
            name.len() + value.len() <= 4096,
            "a browser drops this cookie ({} bytes): {name}",
            name.len() + value.len()
        );
        if name.starts_with("__Host-") {
            assert!(
                attribute("secure").is_some()
                    && attribute("path").is_some_and(|p| p == "/")
                    && attribute("domain").is_none(),
                "a browser drops this __Host- cookie: {line}"
            );
        }
        let max_age = attribute("max-age").map(|v| v.parse::<i64>().unwrap());
        if max_age.is_some_and(|age| age <= 0) {
            self.jar.remove(name);
        } else {
            self.jar.insert(
                name.to_owned(),
                Stored {
                    value: value.to_owned(),
                    line: line.to_owned(),
                },
            );
        }
    }

    // --- requests --------------------------------------------------------------------------

    /// `GET url` (a path means Gatehouse) with `headers`, this browser's cookies for
    /// Gatehouse, and `Host`.
    pub fn request(&self, url: &str, headers: &[(&str, &str)]) -> Request<BoxBody> {
        let url = Self::url(url);
        let mut builder = Request::get(path_and_query(&url)).header("host", authority_of(&url));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if is_gatehouse(&url)
            && let Some(cookies) = self.cookie_header()
        {
            builder = builder.header(header::COOKIE, cookies);
        }
        builder.body(empty()).unwrap()
    }

    /// Sends a request to Gatehouse and applies the cookies it sets.
    pub async fn send(&mut self, request: Request<BoxBody>) -> Response<Bytes> {
        let response = self.gatehouse.h1(request).await;
        self.apply(&response);
        response
    }

    /// One navigation to `path` on Gatehouse, not following redirects.
    pub async fn navigate(&mut self, path: &str) -> Response<Bytes> {
        self.send(self.request(path, &NAVIGATION)).await
    }

    /// One `fetch()` of `path` on Gatehouse.
    pub async fn fetch(&mut self, path: &str) -> Response<Bytes> {
        self.send(self.request(path, &FETCH)).await
    }

    /// A navigation to `url` (Gatehouse or the provider), not following redirects.
    pub async fn open(&mut self, url: &Url) -> Response<Bytes> {
        if is_gatehouse(url) {
            return self
                .send(self.request(&path_and_query(url), &NAVIGATION))
                .await;
        }
        assert_eq!(
            authority_of(url),
            self.idp.to_string(),
            "the browser knows only Gatehouse and the provider: {url}"
        );
        http_get(self.idp, &path_and_query(url)).await
    }

    /// Navigates to `url` and follows redirects between Gatehouse and the provider; stops at
    /// a page, at a redirect to any other site, or before a URL for which `stop` is true.
    pub async fn visit_until(&mut self, url: &str, stop: impl Fn(&Url) -> bool) -> Visit {
        let mut url = Self::url(url);
        let mut urls = Vec::new();
        for _ in 0..MAX_HOPS {
            let response = self.open(&url).await;
            urls.push(url.clone());
            let location = response
                .status()
                .is_redirection()
                .then(|| response.headers().get(header::LOCATION))
                .flatten();
            let Some(location) = location else {
                return Visit {
                    urls,
                    response,
                    next: None,
                };
            };
            let next = url.join(location.to_str().unwrap()).unwrap();
            let known = is_gatehouse(&next) || authority_of(&next) == self.idp.to_string();
            if !known || stop(&next) {
                return Visit {
                    urls,
                    response,
                    next: Some(next),
                };
            }
            url = next;
        }
        panic!("more than {MAX_HOPS} redirects: {urls:?}");
    }

    /// Navigates to `url`, following every redirect between Gatehouse and the provider.
    pub async fn visit(&mut self, url: &str) -> Visit {
        self.visit_until(url, |_| false).await
    }

    /// Starts a login by navigating to `url` and stops just before the callback: returns the
    /// callback URL the provider sent the browser to.
    pub async fn until_callback(&mut self, url: &str) -> Url {
        let visit = self
            .visit_until(url, |u| is_gatehouse(u) && u.path() == "/oauth2/callback")
            .await;
        visit.next.unwrap_or_else(|| {
            panic!(
                "no callback: {:?} ended with {}",
                visit.urls,
                visit.response.status()
            )
        })
    }
}

fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// `GET path` over plain HTTP/1.1.
pub async fn http_get(addr: SocketAddr, path: &str) -> Response<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::get(path)
        .header("host", addr.to_string())
        .body(empty())
        .unwrap();
    collect(sender.send_request(request).await.unwrap()).await
}
