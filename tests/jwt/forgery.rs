//! Forged tokens: `alg: none`, HMAC keyed with the RSA public key, headers that bring their own
//! keys, and all-zero signatures. Each would pass a verifier that trusts the token header.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

const HEADER_REFUSED: &str = "the token header is not accepted";
const ALGORITHM_REFUSED: &str = "the token's algorithm is not accepted";
const BAD_SIGNATURE: &str = "the token's signature is invalid";

#[tokio::test]
async fn alg_none_in_every_spelling_is_refused() {
    let fx = Fixture::start(&[], "").await;
    let valid = fx.token("mallory", &["admin"]);
    let (_, payload, signature) = parts(&valid);
    for alg in ["none", "None", "NONE", "nOnE"] {
        for header in [
            json!({"alg": alg, "typ": "JWT"}),
            json!({"alg": alg, "typ": "JWT", "kid": fx.rsa.kid()}),
        ] {
            let header = b64(header.to_string());
            for signature in ["", signature.as_str()] {
                let token = format!("{header}.{payload}.{signature}");
                fx.unauthorized(with_token("GET", "/api/me", &token), ALGORITHM_REFUSED)
                    .await;
                fx.unauthorized(with_token("GET", "/admin/x", &token), ALGORITHM_REFUSED)
                    .await;
            }
        }
    }
    // No `alg` at all, and an `alg` that is not a string.
    for header in [
        json!({"typ": "JWT", "kid": fx.rsa.kid()}),
        json!({"alg": ["RS256"], "kid": fx.rsa.kid()}),
    ] {
        let token = format!("{}.{payload}.{signature}", b64(header.to_string()));
        fx.unauthorized(with_token("GET", "/api/me", &token), ALGORITHM_REFUSED)
            .await;
    }
    // The untouched token passes: the refusals above are about the header alone.
    fx.passes(with_token("GET", "/api/me", &valid)).await;
}

/// PEM with 64-character lines.
fn pem(label: &str, der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[tokio::test]
async fn hmac_keyed_with_the_rsa_public_key_is_refused() {
    let fx = Fixture::start(&[], "").await;
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(fx.rsa.pkcs8()).unwrap();
    let pkcs1 = pair.public_key().as_ref().to_vec();
    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
    let jwk = fx.rsa.jwk();
    let n = jwk["n"].as_str().unwrap();
    let e = jwk["e"].as_str().unwrap();
    // Every form of the public key a verifier might hand to HMAC as its "secret".
    let secrets: Vec<Vec<u8>> = vec![
        spki.clone(),
        pem("PUBLIC KEY", &spki).into_bytes(),
        pem("PUBLIC KEY", &spki).trim_end().as_bytes().to_vec(),
        pkcs1.clone(),
        pem("RSA PUBLIC KEY", &pkcs1).into_bytes(),
        jwk.to_string().into_bytes(),
        URL_SAFE_NO_PAD.decode(n).unwrap(),
        format!("{n}{e}").into_bytes(),
    ];
    let claims = fx.claims("mallory", &["admin"]);
    for (alg, hmac_alg) in [
        ("HS256", hmac::HMAC_SHA256),
        ("HS384", hmac::HMAC_SHA384),
        ("HS512", hmac::HMAC_SHA512),
    ] {
        for kid in [Some(fx.rsa.kid()), None] {
            let mut header = json!({"alg": alg, "typ": "JWT"});
            if let Some(kid) = kid {
                header["kid"] = json!(kid);
            }
            for secret in &secrets {
                let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
                let tag = hmac::sign(&hmac::Key::new(hmac_alg, secret), input.as_bytes());
                let token = format!("{input}.{}", b64(tag.as_ref()));
                fx.unauthorized(with_token("GET", "/admin/x", &token), ALGORITHM_REFUSED)
                    .await;
            }
        }
    }
}

#[tokio::test]
async fn headers_that_bring_keys_or_critical_extensions_are_refused() {
    let fx = Fixture::start(&[], "").await;
    let claims = fx.claims("mallory", &["admin"]);
    let ca_der = {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_file(&fx.pki.paths.ca_cert).unwrap()
    };
    // An attacker's IdP with the attacker's key, named by `jku` and `x5u`: it must never be
    // asked for anything.
    let attacker = Signer::generate(Algorithm::RS256, "attacker").unwrap();
    let attacker_idp = Idp::start(&[&attacker]).await;
    let attacker_jwks = format!("{}/jwks", attacker_idp.issuer());

    let header = |signer: &Signer, name: &str, value: Value| {
        let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": signer.kid()});
        header[name] = value;
        header
    };
    let extensions = [
        ("jku", json!(attacker_jwks)),
        ("x5u", json!(attacker_jwks)),
        ("jwk", attacker.jwk()),
        ("x5c", json!([STANDARD.encode(&ca_der)])),
        ("crit", json!(["exp"])),
    ];
    // Signed by the trusted key, otherwise valid.
    for (name, value) in &extensions {
        let token = fx
            .rsa
            .sign_with_header(&header(&fx.rsa, name, value.clone()), &claims)
            .unwrap();
        fx.unauthorized(with_token("GET", "/api/me", &token), HEADER_REFUSED)
            .await;
    }
    // `jwk` with the trusted key itself, and `crit` naming a real extension.
    let mut own_jwk = header(&fx.rsa, "jwk", fx.rsa.jwk());
    let token = fx.rsa.sign_with_header(&own_jwk, &claims).unwrap();
    fx.unauthorized(with_token("GET", "/api/me", &token), HEADER_REFUSED)
        .await;
    own_jwk = header(&fx.rsa, "crit", json!(["x-tenant"]));
    own_jwk["x-tenant"] = json!("acme");
    let token = fx.rsa.sign_with_header(&own_jwk, &claims).unwrap();
    fx.unauthorized(with_token("GET", "/api/me", &token), HEADER_REFUSED)
        .await;

    // Signed by the attacker, pointing at the attacker's key, under the attacker's kid, the
    // trusted kid, and no kid.
    for kid in [Some(attacker.kid()), Some(fx.rsa.kid()), None] {
        for (name, value) in &extensions {
            let mut forged = header(&attacker, name, value.clone());
            match kid {
                Some(kid) => forged["kid"] = json!(kid),
                None => {
                    forged.as_object_mut().unwrap().remove("kid");
                }
            }
            let token = attacker.sign_with_header(&forged, &claims).unwrap();
            fx.unauthorized(with_token("GET", "/admin/x", &token), HEADER_REFUSED)
                .await;
        }
    }
    // Without the extra headers the attacker's token fails on the key: under the trusted kid
    // its signature does not verify, under its own kid there is no such key.
    let trusted_kid = json!({"alg": "RS256", "typ": "JWT", "kid": fx.rsa.kid()});
    let token = attacker.sign_with_header(&trusted_kid, &claims).unwrap();
    fx.unauthorized(with_token("GET", "/admin/x", &token), BAD_SIGNATURE)
        .await;
    let token = attacker.sign(&claims).unwrap();
    fx.unauthorized(
        with_token("GET", "/admin/x", &token),
        "no key of the issuer matches the token",
    )
    .await;

    assert_eq!(
        attacker_idp.jwks_fetches(),
        0,
        "the jku/x5u URL was fetched"
    );
    assert_eq!(attacker_idp.discovery_fetches(), 0);
}

#[tokio::test]
async fn zero_and_empty_signatures_are_refused() {
    let fx = Fixture::start(&[], "").await;
    let claims = fx.claims("mallory", &["admin"]);
    let es = fx.es.sign(&claims).unwrap();
    let (header, payload, _) = parts(&es);
    // ECDSA with r = s = 0, fixed-width (JWS) and DER-encoded; and r = 0 with s = 1.
    let mut r0_s1 = [0u8; 64];
    r0_s1[63] = 1;
    for signature in [
        b64([0u8; 64]),
        b64([0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]),
        b64(r0_s1),
        b64([0u8; 32]),
        String::new(),
    ] {
        let token = format!("{header}.{payload}.{signature}");
        fx.unauthorized(with_token("GET", "/admin/x", &token), BAD_SIGNATURE)
            .await;
    }
    // The same for EdDSA and RS256.
    for (valid, zeros) in [
        (fx.ed.sign(&claims).unwrap(), b64([0u8; 64])),
        (fx.rsa.sign(&claims).unwrap(), b64([0u8; 256])),
    ] {
        let (header, payload, _) = parts(&valid);
        for signature in [zeros, String::new()] {
            let token = format!("{header}.{payload}.{signature}");
            fx.unauthorized(with_token("GET", "/admin/x", &token), BAD_SIGNATURE)
                .await;
        }
    }
    fx.passes(with_token("GET", "/admin/x", &es)).await;
}
