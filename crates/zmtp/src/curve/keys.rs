//! [`CurveKeyPair`]: X25519 key pairs.

use crypto_box::SecretKey;

use super::z85_encode;

/// A CURVE key pair (X25519): the public half is shared, the secret half
/// never leaves its owner.
#[derive(Clone, PartialEq, Eq)]
pub struct CurveKeyPair {
    /// The public key.
    pub public: [u8; 32],
    /// The secret key.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for CurveKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveKeyPair")
            .field("public", &z85_encode(&self.public))
            .finish_non_exhaustive()
    }
}

impl CurveKeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        CurveKeyPair::from_secret(rand::random())
    }

    /// The key pair of a secret key.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let public = *SecretKey::from(secret).public_key().as_bytes();
        CurveKeyPair { public, secret }
    }

    /// The public key, Z85-encoded (40 characters).
    pub fn public_z85(&self) -> String {
        z85_encode(&self.public)
    }

    /// The secret key, Z85-encoded (40 characters).
    pub fn secret_z85(&self) -> String {
        z85_encode(&self.secret)
    }
}
