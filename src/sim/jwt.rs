//! The simulated identity platform's signing key and its JWTs: RS256 (RSASSA-PKCS1-v1_5 with
//! SHA-256), a 2048-bit RSA key made once per process and shared by every simulator in it (a test
//! binary starts many; generating a key takes a noticeable fraction of a second at the dev
//! profile's opt-level). The public half is published as a JWKS at `jwks_uri`.

use super::base64url;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::sha2::{Digest, Sha256};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use std::sync::OnceLock;

pub(crate) struct Key {
    /// `kid` in the JWS header and the JWKS: base64url of the first 20 bytes of SHA-256(n).
    pub kid: String,
    signing: SigningKey<Sha256>,
    verifying: VerifyingKey<Sha256>,
    public: RsaPublicKey,
}

static KEY: OnceLock<Key> = OnceLock::new();
static ISSUER_KEY: OnceLock<Key> = OnceLock::new();

/// The process's signing key (made on first use).
pub(crate) fn key() -> &'static Key {
    KEY.get_or_init(generate)
}

/// The key of the simulated external OpenID Connect issuer (a Kubernetes cluster's service
/// account issuer, `{inspect}/oidc`): another key than the identity platform's, so a token of
/// one is never taken for the other's.
pub(crate) fn issuer_key() -> &'static Key {
    ISSUER_KEY.get_or_init(generate)
}

fn generate() -> Key {
    let started = std::time::Instant::now();
    let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .expect("RSA key generation from the OS random source");
    let public = private.to_public_key();
    let kid = base64url(&Sha256::digest(public.n().to_bytes_be())[..20]);
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "simulator signing key generated"
    );
    Key {
        kid,
        signing: SigningKey::<Sha256>::new(private),
        verifying: VerifyingKey::<Sha256>::new(public.clone()),
        public,
    }
}

impl Key {
    /// A compact JWS of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let sig = self.signing.sign(input.as_bytes());
        format!("{input}.{}", base64url(&sig.to_bytes()))
    }

    /// The header and claims of a compact JWS, unverified (None: not three base64url parts of
    /// JSON objects).
    pub fn peek(token: &str) -> Option<(Value, Value)> {
        let mut parts = token.trim().split('.');
        let (h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&base64url_decode(h)?).ok()?;
        let claims: Value = serde_json::from_slice(&base64url_decode(p)?).ok()?;
        (header.is_object() && claims.is_object()).then_some((header, claims))
    }

    /// The claims of a JWS this key signed (RS256, our `kid`, a valid signature); None otherwise.
    pub fn verify(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&base64url_decode(h)?).ok()?;
        if header.get("alg")?.as_str()? != "RS256" || header.get("kid")?.as_str()? != self.kid {
            return None;
        }
        let sig = Signature::try_from(base64url_decode(s)?.as_slice()).ok()?;
        self.verifying
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .ok()?;
        serde_json::from_slice(&base64url_decode(p)?).ok()
    }

    /// The JWKS document (`jwks_uri`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": base64url(&self.public.n().to_bytes_be()),
            "e": base64url(&self.public.e().to_bytes_be()),
        }]})
    }
}

/// base64url (padding optional) → bytes.
pub(crate) fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let k = key();
        let t = k.sign(&json!({"tid": "t1", "exp": 1}));
        assert_eq!(k.verify(&t).unwrap()["tid"], "t1");
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = base64url(br#"{"tid":"t2","exp":1}"#);
        parts[1] = &forged;
        assert!(k.verify(&parts.join(".")).is_none());
        assert!(k.verify("sim-at-opaque").is_none());
        assert_eq!(
            base64url_decode(&base64url(b"hello!?")).unwrap(),
            b"hello!?"
        );
    }
}
