//! `gatehouse dev`: a trusted HTTPS front-end with real authentication for the app you are
//! writing, in one command. A local CA (kept per user, trusted with `gatehouse certs trust`),
//! a short-lived leaf renewed while running, the development token issuer for bearer tokens,
//! and a login page where you pick a user and roles, so browser sessions work with no IdP.
//!
//! Not for production, and it says so: it binds loopback unless forced, and the development
//! issuer, login and inspector exist only here and in `gatehouse demo` (no config file can
//! enable them).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::config::DevUser;
use crate::config::{self, Config, ConfigErrors, Overrides};
use crate::devcerts::{self, DevCertPaths};
use crate::devissuer::DevIssuer;

/// What `gatehouse dev` was asked for.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// The app, `127.0.0.1:3000` or `http://127.0.0.1:3000` or `unix:/path`.
    pub upstream: String,
    pub port: u16,
    /// Extra certificate names (e.g. `myapp.localhost`).
    pub names: Vec<String>,
    /// A plain-HTTP port that redirects to HTTPS.
    pub http_port: Option<u16>,
    pub admin_port: u16,
    /// Where the CA and keys live.
    pub dir: PathBuf,
    /// Listen on every interface instead of loopback.
    pub bind_any: bool,
    pub users: Vec<DevUser>,
    /// A policy directory; default: every route needs a signed-in user or a bearer token.
    pub policies: Option<PathBuf>,
    pub leaf_lifetime: Duration,
}

/// The per-user directory for the development CA: `$XDG_DATA_HOME/gatehouse`, else
/// `~/.local/share/gatehouse`, else `./certs-dev`.
pub fn user_dir() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("gatehouse");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/gatehouse"),
        None => PathBuf::from("certs-dev"),
    }
}

/// The policy used when none is given: everything needs a signed-in user (or a token).
const DEFAULT_POLICY: &str = "\
# gatehouse dev: every route needs a signed-in user (dev login page) or a bearer token from
# `gatehouse dev token`. Pass --policies DIR to use your own.
version: 1
routes:
  - name: everything
    path: /**
    auth: any
";

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("{0}")]
    Certs(#[from] devcerts::DevCertError),
    #[error("{0}")]
    Issuer(#[from] crate::devissuer::DevIssuerError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(ConfigErrors),
}

/// Everything dev mode prepared: the config to serve, and where its files are.
#[derive(Debug)]
pub struct Prepared {
    pub config: Config,
    pub certs: DevCertPaths,
    pub upstream: String,
}

/// Makes the CA, leaf, issuer key, session secret and default policy, and builds the config.
pub fn prepare(options: &DevOptions) -> Result<Prepared, DevError> {
    let (certs, _) = devcerts::ensure_with(&options.dir, &options.names, options.leaf_lifetime)?;
    let issuer = DevIssuer::ensure(&options.dir)?;
    let secret = session_secret(&options.dir)?;
    let policies = match &options.policies {
        Some(dir) => dir.clone(),
        None => {
            let dir = options.dir.join("dev-policies");
            std::fs::create_dir_all(&dir).map_err(|source| DevError::Io {
                path: dir.clone(),
                source,
            })?;
            let file = dir.join("dev.yaml");
            std::fs::write(&file, DEFAULT_POLICY)
                .map_err(|source| DevError::Io { path: file, source })?;
            dir
        }
    };
    let upstream = if options.upstream.contains("://") || options.upstream.starts_with("unix:") {
        options.upstream.clone()
    } else {
        format!("http://{}", options.upstream)
    };
    let host = if options.bind_any {
        IpAddr::from(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::from(Ipv4Addr::LOCALHOST)
    };
    let text = format!(
        "version: 1
listen:
  https: {https}
  admin: 127.0.0.1:{admin}
tls:
  reload_interval: 1s
  certificates:
    - cert_file: {cert}
      key_file: {key}
upstream:
  url: {upstream}
policies: {policies}
{issuers}session:
  secrets: [{{ file: {secret} }}]
identity:
  email_header: X-User-Email
  scopes_header: X-User-Scopes
",
        https = SocketAddr::new(host, options.port),
        admin = options.admin_port,
        cert = certs.cert.display(),
        key = certs.key.display(),
        policies = policies.display(),
        issuers = issuer.config_yaml(),
        secret = secret.display(),
    );
    let mut config = config::parse(&text, Path::new("(gatehouse dev)"), &Overrides::default())
        .map_err(DevError::Config)?;
    config.dev_users = Some(options.users.clone());
    Ok(Prepared {
        config,
        certs,
        upstream,
    })
}

/// The session secret's file in `dir`, made (random, owner-only) when missing.
pub fn session_secret(dir: &Path) -> Result<PathBuf, DevError> {
    let secret = dir.join("session-secret");
    if !secret.exists() {
        write_private(&secret, random_secret().as_bytes())?;
    }
    Ok(secret)
}

/// Renews the leaf while running: checks every `lifetime / 10` (at most a minute) and
/// re-issues it once a third of its life is left; the certificate store picks the new files
/// up without touching the listener.
pub async fn renew_leaf(options: DevOptions) {
    let every =
        (options.leaf_lifetime / 10).clamp(Duration::from_millis(200), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let (dir, names, lifetime) = (
            options.dir.clone(),
            options.names.clone(),
            options.leaf_lifetime,
        );
        match tokio::task::spawn_blocking(move || devcerts::ensure_with(&dir, &names, lifetime))
            .await
        {
            Ok(Ok((_, report))) if report.issued_leaf => {
                tracing::info!("development certificate renewed")
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "development certificate renewal failed"),
            Err(_) => {}
        }
    }
}

/// The plain-HTTP port: every request is redirected to the same path over HTTPS.
pub async fn redirect_to_https(listener: TcpListener, https_port: u16) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: http::Request<hyper::body::Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(https_redirect(&request, https_port))
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn https_redirect<B>(request: &http::Request<B>, https_port: u16) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(h, |(name, _)| name)
        })
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        })
        .unwrap_or("localhost");
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(location) = HeaderValue::from_str(&format!("https://{host}:{https_port}{path}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn random_secret() -> String {
    use aws_lc_rs::rand::SecureRandom;
    use base64::Engine as _;
    let mut bytes = [0u8; 36];
    if aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .is_err()
    {
        // Refusing to start beats a guessable secret: an empty file fails validation.
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), DevError> {
    use std::io::Write as _;
    let io = |source| DevError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_redirects_keep_host_and_path() {
        let request = http::Request::get("/a/b?c=1")
            .header("host", "myapp.localhost:8080")
            .body(())
            .unwrap();
        let response = https_redirect(&request, 8443);
        assert_eq!(response.status(), 308);
        assert_eq!(
            response.headers()["location"],
            "https://myapp.localhost:8443/a/b?c=1"
        );
        let evil = http::Request::get("/")
            .header("host", "evil.com/@x")
            .body(())
            .unwrap();
        assert_eq!(
            https_redirect(&evil, 8443).headers()["location"],
            "https://localhost:8443/"
        );
    }
}
