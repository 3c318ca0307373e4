//! The embedded demo: Gatehouse's main job with nothing to bring. Development certificates
//! (made if missing), HTTPS on `127.0.0.1:8443`, and a built-in echo application that answers
//! with what it received, so you can see exactly what an application behind Gatehouse sees.

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

/// The demo's config, with the echo app's address filled in.
pub fn config(
    certs: &DevCertPaths,
    issuer: &DevIssuer,
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
{issuers}identity:
  email_header: X-User-Email
  scopes_header: X-User-Scopes
",
        cert = certs.cert.display(),
        key = certs.key.display(),
        policies = policies.display(),
        issuers = issuer.config_yaml(),
    );
    config::parse(&text, Path::new("(demo config)"), &Overrides::default())
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

fn html(method: &http::Method, uri: &http::Uri, headers: &HeaderMap, body_bytes: u64) -> String {
    let mut rows = String::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        let _ = write!(
            rows,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name.as_str()),
            escape(&value)
        );
    }
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Gatehouse demo</title>\
<style>body{{font:15px system-ui;margin:2rem auto;max-width:52rem}}th{{text-align:left;padding-right:1rem;vertical-align:top}}td{{word-break:break-all}}</style></head>\
<body><h1>Gatehouse demo</h1><p>This is the built-in echo application. It is what an app behind Gatehouse receives:</p>\
<p><code>{} {}</code> ({} body bytes)</p><table>{}</table></body></html>\n",
        escape(method.as_str()),
        escape(&uri.to_string()),
        body_bytes,
        rows
    )
}
