//! What each side is configured with: the server's
//! [`CurveAuthenticator`] ([`AllowAny`], [`AllowList`]) and keys.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::Result;

use super::{load_public_keys, z85_encode, CurveKeyPair};

/// Decides whether a client may connect, from its long-term public key.
pub trait CurveAuthenticator: Send + Sync + 'static {
    /// `Ok(user id)` to accept the client (the id is what the connection
    /// is known by: a name, or the key's Z85 text), `Err(reason)` to refuse
    /// it.
    fn authenticate(&self, client_key: &[u8; 32]) -> std::result::Result<String, String>;
}

/// Accepts every client; its user id is its public key in Z85.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAny;

impl CurveAuthenticator for AllowAny {
    fn authenticate(&self, client_key: &[u8; 32]) -> std::result::Result<String, String> {
        Ok(z85_encode(client_key))
    }
}

/// Accepts the keys it lists (for example a directory of public
/// certificates), known by their names.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    keys: HashMap<[u8; 32], String>,
}

impl AllowList {
    /// An allow-list of named keys.
    pub fn new(keys: HashMap<[u8; 32], String>) -> Self {
        AllowList { keys }
    }

    /// The certificates (`NAME.key`) in a directory, each known by its NAME.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Ok(AllowList::new(load_public_keys(dir)?))
    }

    /// Adds a key.
    pub fn allow(&mut self, key: [u8; 32], name: impl Into<String>) {
        self.keys.insert(key, name.into());
    }
}

impl CurveAuthenticator for AllowList {
    fn authenticate(&self, client_key: &[u8; 32]) -> std::result::Result<String, String> {
        self.keys
            .get(client_key)
            .cloned()
            .ok_or_else(|| format!("key {} is not allowed", z85_encode(client_key)))
    }
}

/// A CURVE server's settings: its long-term key pair, and who may connect.
#[derive(Clone)]
pub struct CurveServerConfig {
    /// The server's long-term keys (clients must know the public half).
    pub keys: CurveKeyPair,
    /// Decides on each client's key.
    pub authenticator: Arc<dyn CurveAuthenticator>,
}

impl std::fmt::Debug for CurveServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveServerConfig")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// A CURVE client's settings: its long-term key pair and the server's
/// public key.
#[derive(Debug, Clone)]
pub struct CurveClientConfig {
    /// The client's long-term keys.
    pub keys: CurveKeyPair,
    /// The server's long-term public key.
    pub server_key: [u8; 32],
}
