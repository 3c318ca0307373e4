//! Signing JWTs with our own keys: the development issuer (`gatehouse dev token`, the demo)
//! and the tests' token minting. Never used to verify: verification goes through the issuer's
//! published keys in `jwks`, like any other issuer.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("unsupported signing algorithm {0:?}")]
    Unsupported(Algorithm),
    #[error("the private key is not a usable PKCS#8 key for {0:?}")]
    BadKey(Algorithm),
    #[error("signing failed")]
    Failed,
}

enum Inner {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key with its `kid` and algorithm.
pub struct Signer {
    alg: Algorithm,
    kid: String,
    inner: Inner,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn ec_alg(alg: Algorithm) -> Option<&'static signature::EcdsaSigningAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Some(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

fn rsa_padding(alg: Algorithm) -> Option<&'static dyn signature::RsaEncoding> {
    match alg {
        Algorithm::RS256 => Some(&signature::RSA_PKCS1_SHA256),
        Algorithm::RS384 => Some(&signature::RSA_PKCS1_SHA384),
        Algorithm::RS512 => Some(&signature::RSA_PKCS1_SHA512),
        Algorithm::PS256 => Some(&signature::RSA_PSS_SHA256),
        Algorithm::PS384 => Some(&signature::RSA_PSS_SHA384),
        Algorithm::PS512 => Some(&signature::RSA_PSS_SHA512),
        _ => None,
    }
}

impl Signer {
    /// A fresh key for `alg` (RSA keys are 2048 bits).
    pub fn generate(alg: Algorithm, kid: &str) -> Result<Self, SigningError> {
        let rng = SystemRandom::new();
        let pkcs8 = if let Some(ec) = ec_alg(alg) {
            EcdsaKeyPair::generate_pkcs8(ec, &rng)
                .map_err(|_| SigningError::Failed)?
                .as_ref()
                .to_vec()
        } else if alg == Algorithm::EdDSA {
            Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| SigningError::Failed)?
                .as_ref()
                .to_vec()
        } else if rsa_padding(alg).is_some() {
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| SigningError::Failed)?;
            key.as_der()
                .map_err(|_| SigningError::Failed)?
                .as_ref()
                .to_vec()
        } else {
            return Err(SigningError::Unsupported(alg));
        };
        Self::from_pkcs8(alg, kid, &pkcs8)
    }

    pub fn from_pkcs8(alg: Algorithm, kid: &str, pkcs8: &[u8]) -> Result<Self, SigningError> {
        let bad = |_| SigningError::BadKey(alg);
        let inner = if let Some(ec) = ec_alg(alg) {
            Inner::Ec(EcdsaKeyPair::from_pkcs8(ec, pkcs8).map_err(bad)?)
        } else if alg == Algorithm::EdDSA {
            Inner::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?)
        } else if rsa_padding(alg).is_some() {
            Inner::Rsa(aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map_err(bad)?)
        } else {
            return Err(SigningError::Unsupported(alg));
        };
        Ok(Self {
            alg,
            kid: kid.to_owned(),
            inner,
            pkcs8: pkcs8.to_vec(),
        })
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key, PKCS#8 DER (for saving it).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK (with `kid`, `alg` and `use: sig`).
    pub fn jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = match &self.inner {
            Inner::Rsa(key) => json!({
                "kty": "RSA",
                "n": b64(key.public_key().modulus().big_endian_without_leading_zero()),
                "e": b64(key.public_key().exponent().big_endian_without_leading_zero()),
            }),
            Inner::Ec(key) => {
                let point = key.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                let crv = if self.alg == Algorithm::ES384 {
                    "P-384"
                } else {
                    "P-256"
                };
                json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=half]), "y": b64(&point[half + 1..])})
            }
            Inner::Ed(key) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref())})
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(format!("{:?}", self.alg));
        jwk["use"] = json!("sig");
        jwk
    }

    /// `{"keys": [jwk]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk()] })
    }

    /// A compact JWS with header `{alg, typ: JWT, kid}`.
    pub fn sign(&self, claims: &Value) -> Result<String, SigningError> {
        let header = json!({"alg": format!("{:?}", self.alg), "typ": "JWT", "kid": self.kid});
        self.sign_with_header(&header, claims)
    }

    /// A compact JWS with exactly the given header (tests use this to forge odd headers).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> Result<String, SigningError> {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign_bytes(signing_input.as_bytes())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Rsa(key) => {
                let padding = rsa_padding(self.alg).ok_or(SigningError::Unsupported(self.alg))?;
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(padding, &rng, message, &mut signature)
                    .map_err(|_| SigningError::Failed)?;
                Ok(signature)
            }
            Inner::Ec(key) => Ok(key
                .sign(&rng, message)
                .map_err(|_| SigningError::Failed)?
                .as_ref()
                .to_vec()),
            Inner::Ed(key) => Ok(key.sign(message).as_ref().to_vec()),
        }
    }
}
