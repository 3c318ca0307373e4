//! The embedded demo: Gatehouse's main job with nothing to bring. Development certificates
//! (made if missing), HTTPS on `127.0.0.1:8443`, and a built-in echo application that answers
//! with what it received, so you can see exactly what an application behind Gatehouse sees.
//! Browsers sign in on dev mode's login page (users alice and bob, editable there); bearer
//! tokens from `gatehouse dev token` work too.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::config::{self, Config, ConfigErrors, Overrides};
use crate::devcerts::DevCertPaths;
use crate::devissuer::DevIssuer;
use crate::html::escape;
use crate::login::DevUser;

/// The users the demo's login page offers (any other can be typed there).
pub fn users() -> Vec<DevUser> {
    let user = |name: &str, roles: &[&str]| DevUser {
        name: name.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    vec![user("alice", &["admin", "dev"]), user("bob", &["dev"])]
}

/// The sample policy, for when the demo runs outside the repository.
pub const SAMPLE_POLICY: &str = include_str!("../policies/demo.yaml");

/// The policy directory for the demo: `preferred` when it exists (the repository's
/// `policies/`), otherwise a copy of the sample written under `certs_dir`.
pub fn policy_dir(preferred: &Path, certs_dir: &Path) -> std::io::Result<std::path::PathBuf> {
    if preferred.is_dir() {
        return Ok(preferred.to_owned());
    }
    let dir = certs_dir.join("policies");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("demo.yaml"), SAMPLE_POLICY)?;
    Ok(dir)
}

/// The demo's config, with the echo app's address filled in, and the dev login on (with the
/// session secret in `session_secret`).
pub fn config(
    certs: &DevCertPaths,
    issuer: &DevIssuer,
    session_secret: &Path,
    policies: &Path,
    listen: &str,
    admin: &str,
    echo: SocketAddr,
) -> Result<Config, ConfigErrors> {
    let text = format!(
        "version: 1
listen:
  https: {listen}
  admin: {admin}
tls:
  certificates:
    - cert_file: {cert}
      key_file: {key}
upstream:
  url: http://{echo}
policies: {policies}
{issuers}session:
  secrets: [{{ file: {secret} }}]
identity:
  email_header: X-User-Email
  scopes_header: X-User-Scopes
",
        cert = certs.cert.display(),
        key = certs.key.display(),
        policies = policies.display(),
        issuers = issuer.config_yaml(),
        secret = session_secret.display(),
    );
    let mut config = config::parse(&text, Path::new("(demo config)"), &Overrides::default())?;
    config.dev_users = Some(users());
    Ok(config)
}

/// Serves the echo application on `listener` until the task is aborted.
pub async fn echo(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|request| async move {
                Ok::<_, Infallible>(answer(request).await)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // Count the body without keeping it: uploads of any size pass through flat.
    let mut body_bytes = 0u64;
    let mut body = body;
    while let Some(Ok(frame)) = body.frame().await {
        body_bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
    }
    let wants_html = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let (content_type, body) = if wants_html {
        (
            "text/html; charset=utf-8",
            html(&parts.method, &parts.uri, &parts.headers, body_bytes),
        )
    } else {
        let headers: serde_json::Map<String, serde_json::Value> = parts
            .headers
            .keys()
            .map(|name| {
                let values: Vec<String> = parts
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                (name.to_string(), serde_json::json!(values.join(", ")))
            })
            .collect();
        let json = serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body_bytes": body_bytes,
        });
        ("application/json", format!("{json:#}\n"))
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Is `name` a header Gatehouse adds on the way to the app (identity, forwarding, request id)?
fn injected(name: &str) -> bool {
    ["x-user-", "x-forwarded-", "x-gatehouse-"]
        .iter()
        .any(|p| name.starts_with(p))
        || matches!(name, "forwarded" | "x-request-id" | "traceparent")
}

fn html(method: &http::Method, uri: &http::Uri, headers: &HeaderMap, body_bytes: u64) -> String {
    let mut rows = String::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        let class = if injected(name.as_str()) {
            " class=added"
        } else {
            ""
        };
        let _ = write!(
            rows,
            "<tr{class}><th>{}</th><td>{}</td></tr>",
            escape(name.as_str()),
            escape(&value)
        );
    }
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let did = match header("x-user-id") {
        Some(user) => format!(
            "<p class=verdict>Gatehouse checked who you are and let this request in as \
<b>{}</b> (roles: {}). It told the app so in the <mark>highlighted</mark> headers below; \
the app never sees your cookie or token.</p>",
            escape(&user),
            escape(&header("x-user-roles").unwrap_or_else(|| "none".into()))
        ),
        None => "<p class=verdict>This route is <b>public</b>: Gatehouse let the request through \
without asking who you are, and sent no identity (any <code>X-User-*</code> header a client \
sends is removed). The headers it added are <mark>highlighted</mark> below.</p>"
            .to_owned(),
    };
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Gatehouse demo</title>\
<style>body{{font:15px system-ui;margin:2rem auto;max-width:52rem;padding:0 1rem}}th{{text-align:left;padding-right:1rem;vertical-align:top}}td{{word-break:break-all}}\
tr.added{{background:#fff3bf}}li{{margin:.3rem 0}}.verdict{{font-size:1.05rem}}</style></head>\
<body><h1>Gatehouse demo</h1>{did}\
<p id=who>Who you are: <span id=user>checking&hellip;</span></p>\
<h2>Try it</h2><ul>\
<li><a href=\"/public/hello\">/public/hello</a>: public, anyone gets in and no identity is sent.</li>\
<li><a href=\"/me\">/me</a>: anyone signed in. Not signed in? You are sent to the login page first, then back here with your identity headers.</li>\
<li><a href=\"/admin/\">/admin/</a>: admin only. alice gets in; bob sees a 403 page saying which role is missing.</li>\
<li><a href=\"/oauth2/start?rd=/me\">Sign in</a> (pick alice or bob, or type a user and roles) &middot; <a href=\"/oauth2/sign_out?rd=/\">Sign out</a></li>\
<li><a href=\"/.gatehouse/\">/.gatehouse/</a>: the inspector, every decision live with its route and reason.</li>\
<li>API calls (no <code>Accept: text/html</code>) get 401 JSON instead of the login page; <code>gatehouse dev token --sub alice --roles admin</code> makes a bearer token.</li>\
</ul>\
<h2>What the app received</h2>\
<p><code>{} {}</code> ({} body bytes)</p><table>{}</table>\
<script>fetch('/oauth2/userinfo',{{headers:{{accept:'application/json'}}}}).then(r=>r.ok?r.json():null).then(u=>{{\
const s=document.getElementById('user');\
s.textContent=u?('signed in as '+u.user+' (roles: '+((u.groups||[]).join(', ')||'none')+')'):'anonymous (not signed in)';}})\
.catch(()=>{{document.getElementById('user').textContent='unknown';}});</script></body></html>\n",
        escape(method.as_str()),
        escape(&uri.to_string()),
        body_bytes,
        rows
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_what_it_echoes_and_marks_what_gatehouse_added() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-demo",
            HeaderValue::from_static("<script>alert(1)</script>"),
        );
        headers.insert("x-user-id", HeaderValue::from_static("<b>alice</b>"));
        let page = html(&http::Method::GET, &"/me".parse().unwrap(), &headers, 0);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("<tr class=added><th>x-user-id</th>"));
        assert!(page.contains("<tr><th>x-demo</th>"));
        assert!(page.contains("as <b>&lt;b&gt;alice&lt;/b&gt;</b>"));
    }
}
