//! The development token issuer: an ES256 key kept beside the development certificates, its
//! public JWKS written next to it, and tokens for `gatehouse dev token`. Gatehouse verifies
//! these tokens exactly like any other issuer's, through the JWKS file.
//!
//! Only the demo (and, later, dev mode) configures this issuer; a production config never
//! names it, so its tokens are worthless anywhere else.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::auth::jwt::system_clock;
use crate::auth::signing::{Signer, SigningError};

/// The `iss` of development tokens. Only an identifier: keys come from the JWKS file.
pub const ISSUER: &str = "https://localhost/gatehouse-dev";
/// The `aud` of development tokens.
pub const AUDIENCE: &str = "gatehouse-demo";

#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a usable EC P-256 private key")]
    BadKey { path: PathBuf },
    #[error("{0}")]
    Signing(#[from] SigningError),
}

#[derive(Debug)]
pub struct DevIssuer {
    signer: Signer,
    pub key_file: PathBuf,
    pub jwks_file: PathBuf,
}

/// What a development token says about its holder.
#[derive(Debug, Clone, Default)]
pub struct DevClaims {
    pub subject: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub email: Option<String>,
    pub ttl: Duration,
}

impl DevIssuer {
    /// Loads the issuer key from `dir` or creates it (mode 0600), and (re)writes the JWKS.
    pub fn ensure(dir: &Path) -> Result<Self, DevIssuerError> {
        let key_file = dir.join("issuer-key.pem");
        let jwks_file = dir.join("issuer-jwks.json");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DevIssuerError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let pkcs8 = if key_file.exists() {
            let pem = std::fs::read_to_string(&key_file).map_err(io(&key_file))?;
            let key = rcgen::KeyPair::from_pem(&pem).map_err(|_| DevIssuerError::BadKey {
                path: key_file.clone(),
            })?;
            key.serialize_der()
        } else {
            let key = rcgen::KeyPair::generate().map_err(|_| DevIssuerError::BadKey {
                path: key_file.clone(),
            })?;
            std::fs::write(&key_file, key.serialize_pem()).map_err(io(&key_file))?;
            key.serialize_der()
        };
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
            .map_err(io(&key_file))?;
        let probe = Signer::from_pkcs8(Algorithm::ES256, "", &pkcs8)?;
        // A stable key id: a digest of the public key.
        let public = probe.jwk().to_string();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public.as_bytes());
        let kid: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let signer = Signer::from_pkcs8(Algorithm::ES256, &kid, &pkcs8)?;
        let jwks = serde_json::to_string_pretty(&signer.jwks()).unwrap_or_default();
        std::fs::write(&jwks_file, jwks).map_err(io(&jwks_file))?;
        Ok(Self {
            signer,
            key_file,
            jwks_file,
        })
    }

    /// A signed token for `claims`, valid from now for `claims.ttl`.
    pub fn token(&self, claims: &DevClaims) -> Result<String, SigningError> {
        let now = system_clock();
        let mut body = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": claims.subject,
            "roles": claims.roles,
            "scope": claims.scopes.join(" "),
            "iat": now,
            "nbf": now,
            "exp": now + claims.ttl.as_secs(),
        });
        if let Some(email) = &claims.email {
            body["email"] = json!(email);
        }
        self.signer.sign(&body)
    }

    /// The issuer section of a config that accepts these tokens.
    pub fn config_yaml(&self) -> String {
        format!(
            "issuers:\n  - issuer: {ISSUER}\n    audiences: [{AUDIENCE}]\n    jwks_file: {}\n",
            self.jwks_file.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DevIssuer::ensure(dir.path()).unwrap();
        let mode = std::fs::metadata(&first.key_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let jwks = std::fs::read_to_string(&first.jwks_file).unwrap();
        let again = DevIssuer::ensure(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&again.jwks_file).unwrap(), jwks);
        assert!(
            !jwks.contains("\"d\""),
            "the JWKS must hold only the public key"
        );
    }
}
