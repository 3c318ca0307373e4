//! TLS termination: the rustls server configuration and the certificate store behind it.
//!
//! TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`, certificates chosen by SNI with the first
//! configured one as default, session resumption by tickets. Certificates reload from disk
//! without touching open connections; a broken new file keeps the old certificate.
//! Depends on `config` for its settings and `telemetry` for metrics; nothing else.

mod store;
pub mod x509;

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;

pub use store::{CertStore, LoadedCert, load_certificate};

/// The ALPN protocols we offer, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Builds the server configuration around a certificate store.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.ticketer = aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}
