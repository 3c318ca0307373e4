//! Listeners and connections: binding, the open-connection cap, TLS handshakes with a
//! timeout, HTTP/1.1 and HTTP/2 serving with header limits, idle timeouts, and graceful
//! shutdown. Each request is handed to [`stack::handle`].

mod accept_backoff;
mod descriptors;
mod linger;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use crate::activity::ActiveRequest;
use crate::activity::Activity;
use linger::Lingering;

use arc_swap::ArcSwap;

use crate::admin::{self, Readiness};
use crate::assertion::Assertions;
use crate::audit::{self, Audit};
use crate::auth::cert::CertError;
use crate::auth::jwt::{TokenMemo, Verifier};
use crate::config::{Config, ConfigErrors, Limits, UpstreamHealth};
use crate::headers::TrustedProxies;
use crate::identity::{IdentityHeaders, IdentityRules};
use crate::login::{Login, SessionMemo};
use crate::otel;
use crate::policy::{self, Policy};
use crate::proxy::Slot;
use crate::proxy::Upstream;
use crate::reload::{self as file_reload, FileWatch};
use crate::stack::{self, App, ClientAuth, ConnInfo, Connection, PeerCert};
use crate::telemetry;
use crate::tls::{self, CertStore, ClientVerifier};
use rustls::HandshakeKind;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client setup failed: {0}")]
    Client(#[from] reqwest::Error),
    #[error("trace export setup failed: {0}")]
    Telemetry(String),
}

/// The HTTP client for identity providers: no redirects, bounded time.
pub fn idp_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A started Gatehouse: its bound addresses and the means to stop it.
#[derive(Debug)]
pub struct Running {
    pub https_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    stopped: JoinHandle<bool>,
    reload: file_reload::Trigger,
}

impl Running {
    /// Starts a graceful shutdown: stop accepting, report not ready, let in-flight requests
    /// finish up to the drain timeout.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Re-reads certificates and policies now (SIGHUP), instead of at the next poll.
    pub fn reload(&self) {
        tracing::info!("reload requested");
        self.reload.fire();
    }

    /// Waits for the shutdown to finish. True when every connection drained in time.
    pub async fn stopped(self) -> bool {
        self.stopped.await.unwrap_or(false)
    }
}

/// Shared by every connection of every listener.
struct Shared {
    app: Arc<App>,
    http: auto::Builder<TokioExecutor>,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
    handshake_timeout: Duration,
}

/// Loads certificates, binds every listener and starts serving.
pub async fn start(config: Config) -> Result<Running, StartError> {
    telemetry::metrics();
    let reload = file_reload::Trigger::default();
    let policy = policy::load_for(&config).map_err(|e| StartError::Config(ConfigErrors(e)))?;
    for warning in &policy.warnings {
        tracing::warn!("{warning}");
    }
    let policy = Arc::new(ArcSwap::from_pointee(policy));
    let mut identity = IdentityHeaders::new(config.identity.clone());
    let assertions = match &config.assertion {
        Some(settings) => {
            let assertions = Assertions::new(settings).map_err(|message| {
                StartError::Config(ConfigErrors(vec![settings.origin.error(message)]))
            })?;
            identity.also_strip(assertions.header());
            Some(assertions)
        }
        None => None,
    };
    let verifier = Arc::new(Verifier::new(
        &config.issuers,
        config.tokens,
        identity.rules(),
        idp_client()?,
    ));
    let mut key_conditions: Vec<String> = verifier
        .key_sets()
        .map(|k| format!("keys of {}", k.issuer()))
        .collect();
    // Browser login needs the provider discovered, and its keys unless a bearer issuer
    // shares them: conditions are only awaited if they are registered here.
    if config.session.is_some() && config.dev_users.is_none() {
        for login in &config.login {
            key_conditions.push(login_condition("login provider", &config.login, login));
            if verifier.jwks_for(&login.issuer).is_none() {
                key_conditions.push(login_condition(
                    "keys of the login provider",
                    &config.login,
                    login,
                ));
            }
        }
    }
    if config.upstream.health == UpstreamHealth::Grpc {
        key_conditions.push(APP_HEALTH.to_owned());
    }
    let readiness = Readiness::new(
        ["listeners", "certificates"]
            .into_iter()
            .chain(key_conditions.iter().map(String::as_str)),
    );

    let mut background = Vec::new();
    let mut client_verifier = None;
    let (acceptor, cert_watch) = match &config.tls {
        Some(settings) => {
            let store =
                CertStore::load(settings).map_err(|e| StartError::Config(ConfigErrors(e)))?;
            let clients = match &settings.client_auth {
                Some(client_auth) => {
                    let verifier = ClientVerifier::load(client_auth, tls::provider(settings))
                        .map_err(|e| StartError::Config(ConfigErrors(vec![e])))?;
                    background.push(verifier.watch(client_auth, settings.reload_interval, &reload));
                    client_verifier = Some(verifier.clone());
                    Some(verifier)
                }
                None => None,
            };
            let config = tls::server_config(store.clone(), clients, settings)?;
            let acceptor = TlsAcceptor::from(config);
            (Some(acceptor), Some(store.watch(settings, &reload)))
        }
        None => (None, None),
    };
    if let (Some(assertions), Some(settings)) = (&assertions, &config.assertion) {
        let interval = config
            .tls
            .as_ref()
            .map_or(Duration::from_secs(5), |t| t.reload_interval);
        background.extend(assertions.watch(settings, interval, &reload));
    }
    readiness.met("certificates");

    let https = bind("https", config.listen.https).await?;
    let http = bind("http", config.listen.http).await?;
    let admin = bind("admin", Some(config.listen.admin)).await?;
    let addr = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let (https_addr, http_addr) = (addr(&https), addr(&http));
    let admin_addr = addr(&admin).unwrap_or(config.listen.admin);

    for jwks in verifier.key_sets() {
        background.push(tokio::spawn(jwks.clone().run()));
        let mut loaded = jwks.loaded();
        let readiness = readiness.clone();
        let condition = format!("keys of {}", jwks.issuer());
        background.push(tokio::spawn(async move {
            if loaded.wait_for(|l| *l).await.is_ok() {
                readiness.met(&condition);
            }
        }));
    }
    // Demo and dev mode only (no config file sets `dev_users`): `run` never has an inspector.
    let inspector = config
        .dev_users
        .is_some()
        .then(|| crate::inspector::Inspector::new(policy.clone()));
    background.push(watch_policy(
        &config,
        policy.clone(),
        &reload,
        inspector.clone(),
    ));
    background.push(telemetry::spawn_upkeep());
    let audit = Arc::new(Audit::new(config.log.audit));
    if let Some(inspector) = &inspector {
        background.push(inspector.feed(audit.subscribe()));
    }
    let (tracing, exporting) =
        match otel::start(&config.telemetry).map_err(StartError::Telemetry)? {
            Some((tracing, exporting)) => (Some(tracing), Some(exporting)),
            None => (None, None),
        };
    background.push(audit::spawn_flush(audit.clone()));
    let login = start_login(
        &config,
        &verifier,
        identity.rules(),
        &readiness,
        &mut background,
        &reload,
    )?;
    // Upgraded tunnels run outside any HTTP connection; this tells them when the drain is over.
    let (close_tunnels, tunnels_closing) = watch::channel(false);
    // No more connections, to clients and to the app, than the descriptor limit allows.
    let budget = descriptors::budget(config.limits.max_connections, descriptors::raise());
    let max_connections = budget.connections;

    let shared = Arc::new(Shared {
        app: Arc::new(App {
            endpoints: crate::endpoints::router(login.as_deref()),
            upstream: Upstream::new(&config.upstream, budget.upstream, tunnels_closing),
            trusted_proxies: TrustedProxies::new(config.trusted_proxies.clone()),
            policy,
            verifier,
            identity,
            max_headers: config.limits.max_headers,
            login,
            dev_mode: config.dev_users.is_some(),
            client_auth: config
                .tls
                .as_ref()
                .and_then(|t| t.client_auth.as_ref())
                .zip(client_verifier)
                .map(|(c, verifier)| ClientAuth {
                    rules: c.rules.clone(),
                    verifier,
                    forward: c.forward_client_cert,
                }),
            assertions: assertions.clone(),
            forward_auth: config.forward_auth,
            probes: config
                .compat_oauth2_proxy
                .then(|| crate::compat::Probes::new(readiness.clone())),
            audit: audit.clone(),
            tracing,
            inspector: inspector.clone(),
        }),
        http: http_builder(&config.limits),
        permits: Arc::new(Semaphore::new(max_connections)),
        idle_timeout: config.limits.idle_timeout,
        handshake_timeout: config
            .tls
            .as_ref()
            .map_or(Duration::from_secs(10), |t| t.handshake_timeout),
    });
    if config.upstream.health == UpstreamHealth::Grpc {
        background.push(tokio::spawn(watch_app_health(
            shared.clone(),
            readiness.clone(),
        )));
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut accepting = Vec::new();
    if let Some(listener) = https {
        accepting.push(tokio::spawn(accept(
            listener,
            acceptor,
            shared.clone(),
            shutdown_rx.clone(),
        )));
    }
    if let Some(listener) = http {
        accepting.push(tokio::spawn(accept(
            listener,
            None,
            shared.clone(),
            shutdown_rx.clone(),
        )));
    }
    let admin_task =
        admin.map(|listener| tokio::spawn(admin::serve(listener, readiness.clone(), assertions)));
    readiness.met("listeners");
    let shown = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_owned(), |a| a.to_string());
    tracing::info!(
        https = %shown(https_addr),
        http = %shown(http_addr),
        admin = %admin_addr,
        "gatehouse is serving"
    );

    let drain_timeout = config.limits.drain_timeout;
    let mut signal = shutdown_rx;
    let stopped = tokio::spawn(async move {
        let _ = signal.wait_for(|stop| *stop).await;
        readiness.start_draining();
        // The inspector's event streams never end by themselves.
        if let Some(inspector) = &inspector {
            inspector.close();
        }
        let draining = std::time::Instant::now();
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        for task in accepting {
            let _ = task.await;
        }
        // Every open connection holds a permit: having them all back means all are closed.
        let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(drain_timeout, shared.permits.acquire_many(all))
            .await
            .is_ok();
        if drained {
            tracing::info!("all connections drained");
        } else {
            tracing::warn!(timeout = ?drain_timeout, "drain timeout reached; closing remaining connections");
        }
        let _ = close_tunnels.send(true);
        if let Some(task) = cert_watch {
            task.abort();
        }
        for task in background {
            task.abort();
        }
        if let Some(task) = admin_task {
            task.abort();
        }
        // Spans of the last requests go out within what is left of the drain timeout.
        if let Some(exporting) = exporting {
            let left = drain_timeout.saturating_sub(draining.elapsed());
            if !exporting.flush(left.max(Duration::from_millis(100))).await {
                tracing::warn!("spans not exported before the drain timeout");
            }
        }
        drained
    });

    Ok(Running {
        https_addr,
        http_addr,
        admin_addr,
        shutdown,
        stopped,
        reload,
    })
}

async fn bind(
    what: &'static str,
    addr: Option<SocketAddr>,
) -> Result<Option<TcpListener>, StartError> {
    let Some(addr) = addr else { return Ok(None) };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Browser login, when configured: with an OpenID provider, or (dev mode only) the local
/// user picker. Starts discovery and key loading in the background.
fn start_login(
    config: &Config,
    verifier: &Verifier,
    rules: IdentityRules,
    readiness: &Arc<Readiness>,
    background: &mut Vec<JoinHandle<()>>,
    reload: &file_reload::Trigger,
) -> Result<Option<Arc<Login>>, StartError> {
    let Some(session) = &config.session else {
        return Ok(None);
    };
    let fail = |message: String| {
        StartError::Config(ConfigErrors(vec![
            config.policies_origin.error(message).with_field("session"),
        ]))
    };
    let login = match (config.login.first(), &config.dev_users) {
        (_, Some(users)) => Login::new_dev(session.clone(), users.clone(), rules).map_err(fail)?,
        (Some(first), None) => {
            let providers = config
                .login
                .iter()
                .map(|settings| (settings.clone(), verifier.jwks_for(&settings.issuer)))
                .collect();
            let login =
                Login::new(providers, session.clone(), rules, idp_client()?).map_err(fail)?;
            for idp in login.idps() {
                let settings = idp.settings();
                let provider = idp.provider();
                background.push(tokio::spawn(provider.clone().run()));
                background.push(when_loaded(
                    provider.loaded(),
                    readiness.clone(),
                    &login_condition("login provider", &config.login, settings),
                ));
                if verifier.jwks_for(&settings.issuer).is_none() {
                    let jwks = idp.jwks();
                    background.push(tokio::spawn(jwks.clone().run()));
                    background.push(when_loaded(
                        jwks.loaded(),
                        readiness.clone(),
                        &login_condition("keys of the login provider", &config.login, settings),
                    ));
                }
            }
            if first.sends_access_token() && session.store == crate::config::SessionStore::Cookie {
                tracing::warn!(
                    "login sends the access token to the app and sessions live in cookies: the token makes each session cookie larger (several cookies past 3 KB); `session.store: redis` keeps only a ticket in the cookie"
                );
            }
            login
        }
        (None, None) => return Ok(None),
    };
    let login = Arc::new(login);
    if let Some(store) = login.redis() {
        background.push(tokio::spawn(store.clone().run_health()));
        let store = store.clone();
        readiness.probe("redis session store", move || store.healthy());
    }
    // Secrets rotate without a restart: their files are watched like certificates.
    let files = login.secret_files();
    if !files.is_empty() {
        let interval = config
            .tls
            .as_ref()
            .map_or(Duration::from_secs(10), |t| t.reload_interval);
        let weak = Arc::downgrade(&login);
        background.push(file_reload::spawn(
            file_reload::FileWatch::new(files),
            interval,
            reload,
            move || {
                if let Some(login) = weak.upgrade() {
                    login.reload_secrets();
                }
            },
        ));
    }
    Ok(Some(login))
}

/// Marks `condition` met once `loaded` turns true.
fn when_loaded(
    mut loaded: watch::Receiver<bool>,
    readiness: Arc<Readiness>,
    condition: &str,
) -> JoinHandle<()> {
    let condition = condition.to_owned();
    tokio::spawn(async move {
        if loaded.wait_for(|l| *l).await.is_ok() {
            readiness.met(&condition);
        }
    })
}

/// The readiness condition of `upstream.health: grpc`.
const APP_HEALTH: &str = "app health (grpc.health.v1)";

/// Asks the app's gRPC health service until the process ends: ready while it says `SERVING`,
/// not ready otherwise. A failing app is asked again sooner than a serving one.
async fn watch_app_health(shared: Arc<Shared>, readiness: Arc<Readiness>) {
    loop {
        let serving = shared.app.upstream.grpc_serving().await;
        if serving {
            readiness.met(APP_HEALTH);
        } else {
            readiness.unmet(APP_HEALTH);
        }
        let pause = if serving { 5 } else { 1 };
        tokio::time::sleep(Duration::from_secs(pause)).await;
    }
}

/// Reloads the policy when its files change; a policy that fails validation is not used.
fn watch_policy(
    config: &Config,
    current: Arc<ArcSwap<Policy>>,
    trigger: &file_reload::Trigger,
    inspector: Option<Arc<crate::inspector::Inspector>>,
) -> JoinHandle<()> {
    let config = config.clone();
    let watch = FileWatch::new(vec![config.policies.clone()]);
    file_reload::spawn(
        watch,
        Duration::from_secs(2),
        trigger,
        move || match policy::load_for(&config) {
            Ok(policy) => {
                for warning in &policy.warnings {
                    tracing::warn!("{warning}");
                }
                current.store(Arc::new(policy));
                telemetry::reloaded("policies", true);
                tracing::info!(dir = %config.policies.display(), "policies reloaded");
                if let Some(inspector) = &inspector {
                    inspector.reloaded(Ok(config.policies.display().to_string()));
                }
            }
            Err(errors) => {
                telemetry::reloaded("policies", false);
                if let Some(inspector) = &inspector {
                    inspector.reloaded(Err(errors.iter().map(ToString::to_string).collect()));
                }
                for error in errors {
                    tracing::warn!(%error, "policy reload failed; keeping the previous policy");
                }
            }
        },
    )
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The header-read timeout needs a timer, or hyper panics at the first connection.
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        // RFC 8441: WebSockets over HTTP/2 arrive as extended CONNECT.
        .enable_connect_protocol();
    builder
}

async fn accept(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let mut backoff = accept_backoff::AcceptBackoff::default();
    loop {
        // Take a connection slot before accepting: at the cap, new clients wait in the
        // kernel's accept queue instead of being accepted and starved.
        let permit = tokio::select! {
            permit = shared.permits.clone().acquire_owned() => permit,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning, and do not log every failure.
                let kind = accept_backoff::kind(&e);
                telemetry::accept_failed(kind);
                let failure = backoff.failed(std::time::Instant::now());
                if let Some(failures) = failure.log {
                    tracing::warn!(error = %e, kind, failures, "accept failed; backing off (logged at most every 10 s)");
                }
                tokio::select! {
                    () = tokio::time::sleep(failure.wait) => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Closed gracefully when dropped, so that a last refusal reaches the client.
        let stream = Lingering::new(stream);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // Shared with the requests of the connection: an upgraded tunnel keeps it.
            let slot: Slot = Arc::new(permit);
            telemetry::connection_opened();
            let conn = ConnInfo { peer, scheme };
            match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(shared.handshake_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => serve_tls(tls, conn, slot, &shared, shutdown).await,
                        Ok(Err(e)) => {
                            telemetry::tls_handshake_failed("error");
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            telemetry::tls_handshake_failed("timeout");
                            tracing::debug!(%peer, "TLS handshake timed out");
                        }
                    }
                }
                None => serve(stream, conn, PeerCert::None, slot, &shared, shutdown).await,
            }
            telemetry::connection_closed();
        });
    }
    // Dropping the listener here closes the port: new connections are refused from now on.
}

/// Serves a handshaken TLS connection once its client certificate, if any, says who it is. A
/// resumed session whose certificate is no longer trusted is closed, as its full handshake
/// would now fail.
async fn serve_tls<IO>(
    tls: tokio_rustls::server::TlsStream<IO>,
    conn: ConnInfo,
    slot: Slot,
    shared: &Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let session = tls.get_ref().1;
    let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
    let peer_cert = shared
        .app
        .identify_client(session.peer_certificates(), resumed);
    if let PeerCert::Unusable(CertError::Untrusted) = peer_cert {
        telemetry::tls_handshake_failed("error");
        tracing::debug!(peer = %conn.peer, "resumed TLS session whose client certificate is no longer trusted");
        return;
    }
    serve(tls, conn, peer_cert, slot, shared, shutdown).await;
}

/// Serves HTTP on one accepted (and, for HTTPS, handshaken) connection until it closes, goes
/// idle, or shutdown asks it to finish its requests and close.
async fn serve<IO>(
    io: IO,
    conn: ConnInfo,
    peer_cert: PeerCert,
    slot: Slot,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let peer = conn.peer;
    let service = {
        let shared = shared.clone();
        let activity = activity.clone();
        let connection = Arc::new(Connection {
            info: conn,
            memo: TokenMemo::default(),
            session: SessionMemo::default(),
            slot,
            peer_cert,
        });
        // Boxed: hyper keeps a slot for the service's future in every connection from the
        // start, so an idle keep-alive connection would hold a whole request's state
        // (about 7.7 KiB) unboxed. One allocation per request instead (bench/README.md).
        hyper::service::service_fn(move |request| {
            let shared = shared.clone();
            let connection = connection.clone();
            let active = activity.begin();
            Box::pin(async move {
                let mut response = stack::handle(&shared.app, &connection, request).await?;
                response.body_mut().hold(active);
                Ok::<_, stack::Reset>(response)
            })
        })
    };
    let connection = shared
        .http
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.wait_for(|stop| *stop), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(shared.idle_timeout), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A readiness condition about one login provider: `what` alone with a single provider (the
/// names `/readyz` always had), `what \`name\`` with several.
fn login_condition(
    what: &str,
    all: &[crate::config::LoginSettings],
    login: &crate::config::LoginSettings,
) -> String {
    if all.len() > 1 {
        format!("{what} `{}`", login.name)
    } else {
        what.to_owned()
    }
}
