//! Encryption at rest for people's GitHub tokens: XChaCha20-Poly1305 with a 256-bit key
//! from `RELEASE_SECRET_KEY` (64 hex digits). A random 192-bit nonce per value, stored
//! in front of the ciphertext, so the same token never encrypts to the same text twice.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// A credential held in memory (an Argo token, a webhook's URL or signing key): `Debug`
/// prints `<redacted>`, so a struct holding one can derive `Debug` and no log shows it.
/// Read it only where it is sent: `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone)]
pub struct TokenCipher(XChaCha20Poly1305);

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher(key redacted)")
    }
}

impl TokenCipher {
    pub fn from_hex(key: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(key.trim())
            .map_err(|_| anyhow::anyhow!("RELEASE_SECRET_KEY must be 64 hex digits"))?;
        anyhow::ensure!(
            bytes.len() == 32,
            "RELEASE_SECRET_KEY must be 64 hex digits (32 bytes), got {} bytes",
            bytes.len()
        );
        Ok(Self(
            XChaCha20Poly1305::new_from_slice(&bytes).expect("32-byte key"),
        ))
    }

    /// A fresh random key, for development and tests.
    pub fn random() -> Self {
        Self(XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(
            &mut OsRng,
        )))
    }

    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .0
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("encryption does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        hex::encode(out)
    }

    pub fn decrypt(&self, stored: &str) -> anyhow::Result<String> {
        let bytes = hex::decode(stored).map_err(|_| anyhow::anyhow!("stored token is not hex"))?;
        anyhow::ensure!(bytes.len() > 24, "stored token is too short");
        let (nonce, ct) = bytes.split_at(24);
        let pt = self.0.decrypt(XNonce::from_slice(nonce), ct).map_err(|_| {
            anyhow::anyhow!(
                "stored token does not decrypt with this key (was RELEASE_SECRET_KEY changed?)"
            )
        })?;
        Ok(String::from_utf8(pt)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let c = TokenCipher::random();
        let a = c.encrypt("gho_secret");
        assert_ne!(a, c.encrypt("gho_secret"), "a fresh nonce each time");
        assert!(!a.contains("secret"));
        assert_eq!(c.decrypt(&a).unwrap(), "gho_secret");
        let mut t = a.clone().into_bytes();
        let last = t.len() - 1;
        t[last] = if t[last] == b'0' { b'1' } else { b'0' };
        assert!(c.decrypt(std::str::from_utf8(&t).unwrap()).is_err());
        assert!(TokenCipher::random().decrypt(&a).is_err());
        assert!(TokenCipher::from_hex("abcd").is_err());
        assert!(TokenCipher::from_hex(&"ab".repeat(32)).is_ok());
        assert_eq!(format!("{c:?}"), "TokenCipher(key redacted)");
        let s = super::Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }
}
