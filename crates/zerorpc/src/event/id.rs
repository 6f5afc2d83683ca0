//! [`MessageId`]: an event's id, compared by its bytes.

use super::*;

/// A message id. Compared by its bytes; remembers whether it travelled as
/// msgpack str or bin so that `response_to` echoes the type we received.
#[derive(Clone)]
pub struct MessageId {
    pub(super) raw: Bytes,
    pub(super) is_str: bool,
}

impl MessageId {
    /// A fresh id shaped like Python 3's: 32 hex characters, sent as bin.
    /// Like Python, a random per-process prefix plus a counter: unique,
    /// and cheap enough for every stream item.
    pub fn random() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::OnceLock;
        static PREFIX: OnceLock<[u8; 16]> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let prefix = PREFIX.get_or_init(|| {
            let r: u64 = rand::random();
            let mut p = [0u8; 16];
            for (i, b) in p.iter_mut().enumerate() {
                *b = HEX[((r >> (60 - 4 * i)) & 0xF) as usize];
            }
            p
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 32];
        id[..16].copy_from_slice(prefix);
        for i in 0..16 {
            id[16 + i] = HEX[((n >> (60 - 4 * i)) & 0xF) as usize];
        }
        MessageId {
            raw: Bytes::copy_from_slice(&id),
            is_str: false,
        }
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        if self.is_str {
            let _ = rmp::encode::write_str_len(out, self.raw.len() as u32);
        } else {
            let _ = rmp::encode::write_bin_len(out, self.raw.len() as u32);
        }
        out.extend_from_slice(&self.raw);
    }

    /// An id sent as msgpack str (what Node does).
    pub fn from_str_id(s: &str) -> Self {
        MessageId {
            raw: Bytes::copy_from_slice(s.as_bytes()),
            is_str: true,
        }
    }

    /// An id sent as msgpack bin.
    pub fn from_bin(b: impl Into<Bytes>) -> Self {
        MessageId {
            raw: b.into(),
            is_str: false,
        }
    }

    /// Reads an id from a header value (str or bin; Node's ids are strings,
    /// Python's bytes). Other types are not ids.
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Binary(b) => Some(MessageId::from_bin(b.clone())),
            Value::String(s) => Some(MessageId {
                raw: Bytes::copy_from_slice(s.as_bytes()),
                is_str: true,
            }),
            _ => None,
        }
    }

    /// The id as a msgpack value of the type it arrived as.
    pub fn to_value(&self) -> Value {
        if self.is_str {
            Value::String(String::from_utf8_lossy(&self.raw).into_owned().into())
        } else {
            Value::Binary(self.raw.to_vec())
        }
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// Whether it travels as msgpack str.
    pub fn is_str(&self) -> bool {
        self.is_str
    }
}

impl PartialEq for MessageId {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for MessageId {}
impl Hash for MessageId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.raw.hash(state)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.raw))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.raw))
    }
}
