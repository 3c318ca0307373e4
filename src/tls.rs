//! TLS termination: the rustls server configuration and the certificate store behind it.
//!
//! TLS 1.2 and 1.3 only (or 1.3 only, `tls.min_version`), the cipher suites that
//! `tls.cipher_suites` allows, ALPN `h2` then `http/1.1`, certificates chosen by SNI with the
//! first configured one as default, session resumption by tickets. Certificates reload from disk
//! without touching open connections; a broken new file keeps the old certificate. Client
//! certificates (`tls.client_auth`) are verified against CAs that reload the same way.
//! Depends on `config` for its settings and `telemetry` for metrics; nothing else.

mod clients;
mod store;
pub mod x509;

use std::sync::Arc;

use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::{ServerConfig, SupportedProtocolVersion};

use crate::config::{TlsSettings, TlsVersion};

pub use clients::ClientVerifier;
pub use store::{CertStore, LoadedCert, load_certificate};

/// The ALPN protocols we offer, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto provider with only the suites `tls.cipher_suites` allows.
pub fn provider(settings: &TlsSettings) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: settings.cipher_suites.clone(),
        ..aws_lc_rs::default_provider()
    })
}

/// Builds the server configuration around a certificate store (and, with `tls.client_auth`,
/// a client verifier): the versions from `tls.min_version` up to 1.3, and only the suites
/// `tls.cipher_suites` allows.
pub fn server_config(
    store: Arc<CertStore>,
    clients: Option<Arc<ClientVerifier>>,
    settings: &TlsSettings,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let versions: &[&'static SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder =
        ServerConfig::builder_with_provider(provider(settings)).with_protocol_versions(versions)?;
    let builder = match clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(store);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.ticketer = aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}
