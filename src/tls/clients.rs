//! Client certificate verification (`tls.client_auth`): rustls' WebPKI verifier over the CAs
//! in `ca_file`, swapped whole when the file changes, as the server certificates are.
//!
//! The CertificateRequest carries no CA names (`root_hint_subjects` is empty): the verifier
//! behind it changes on reload, and clients with one configured certificate send it anyway.
//! Expired certificates, or those of other CAs, fail the handshake in both modes; only a
//! client that sends no certificate at all is let through by `mode: optional`.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::config::{ClientAuthMode, ClientAuthSettings, ConfigError};
use crate::reload::{self, FileWatch};
use crate::telemetry;

struct Current(Arc<dyn ClientCertVerifier>);

/// The live client-certificate verifier.
pub struct ClientVerifier {
    current: ArcSwap<Current>,
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientVerifier")
            .field("mandatory", &self.mandatory)
            .finish_non_exhaustive()
    }
}

fn build(
    settings: &ClientAuthSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Current, ConfigError> {
    let fail = |what: String| settings.origin.error(what);
    let shown = settings.ca_file.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.ca_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| fail(format!("cannot read {shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| fail(format!("{shown} holds an unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail(format!("no CA certificate in {shown}")));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = match settings.mode {
        ClientAuthMode::Optional => builder.allow_unauthenticated(),
        ClientAuthMode::Required => builder,
    };
    let verifier = builder
        .build()
        .map_err(|e| fail(format!("cannot verify clients with {shown}: {e}")))?;
    Ok(Current(verifier))
}

impl ClientVerifier {
    pub fn load(
        settings: &ClientAuthSettings,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, ConfigError> {
        let current = build(settings, &provider)?;
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(current),
            mandatory: settings.mode == ClientAuthMode::Required,
            provider,
        }))
    }

    /// Verifies a chain (leaf first) again, against the CAs in use now and the clock now. A
    /// resumed TLS session skips the handshake's check, while the CAs may have been replaced
    /// or the certificate expired since the session began.
    pub fn still_trusted(&self, chain: &[CertificateDer<'_>]) -> bool {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return false;
        };
        self.current
            .load()
            .0
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .is_ok()
    }

    /// Reloads the CAs whenever `ca_file` changes; a file that does not load keeps the CAs in
    /// use and logs why.
    pub fn watch(
        self: &Arc<Self>,
        settings: &ClientAuthSettings,
        interval: std::time::Duration,
        trigger: &reload::Trigger,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::downgrade(self);
        let settings = settings.clone();
        reload::spawn(
            FileWatch::new(vec![settings.ca_file.clone()]),
            interval,
            trigger,
            move || {
                let Some(this) = this.upgrade() else { return };
                match build(&settings, &this.provider) {
                    Ok(current) => {
                        this.current.store(Arc::new(current));
                        telemetry::reloaded("client_cas", true);
                        tracing::info!("client certificate CAs reloaded");
                    }
                    Err(error) => {
                        telemetry::reloaded("client_cas", false);
                        tracing::warn!(%error, "client CA reload failed; still verifying with the previous CAs");
                    }
                }
            },
        )
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current
            .load()
            .0
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .load()
            .0
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .load()
            .0
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current.load().0.supported_verify_schemes()
    }
}
