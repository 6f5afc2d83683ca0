//! [`MessageId`]: an event's id, compared by its bytes.

use super::*;

/// A message id. Compared by its bytes; remembers whether it travelled as
/// msgpack str or bin so that `response_to` echoes the type we received.
#[derive(Clone)]
pub struct MessageId(Raw);

/// Ids up to this long (ours and Python's: 32 hex digits; Node's UUIDs:
/// 36 characters) are kept inline: decoding, cloning and dropping one
/// costs no allocation and no reference count. (36, and the str flag in
/// each variant, keep an id at 40 bytes: every open call holds three,
/// two of them in the connections' tables.)
const INLINE: usize = 36;

#[derive(Clone)]
enum Raw {
    Inline {
        len: u8,
        is_str: bool,
        buf: [u8; INLINE],
    },
    Shared {
        bytes: Bytes,
        is_str: bool,
    },
}

impl Raw {
    fn copy(b: &[u8], is_str: bool) -> Raw {
        match Raw::inline(b, is_str) {
            Some(r) => r,
            None => Raw::Shared {
                bytes: Bytes::copy_from_slice(b),
                is_str,
            },
        }
    }

    fn inline(b: &[u8], is_str: bool) -> Option<Raw> {
        let mut buf = [0u8; INLINE];
        buf.get_mut(..b.len())?.copy_from_slice(b);
        Some(Raw::Inline {
            len: b.len() as u8,
            is_str,
            buf,
        })
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Raw::Inline { len, buf, .. } => &buf[..usize::from(*len)],
            Raw::Shared { bytes, .. } => bytes,
        }
    }
}

impl MessageId {
    /// A fresh id shaped like Python 3's: 32 hex characters, sent as bin.
    /// Like Python, a random prefix plus a counter: unique, and cheap
    /// enough for every stream item. Prefix and counter are per thread
    /// (a random prefix each), so threads making ids do not contend for
    /// one counter's cache line.
    pub fn random() -> Self {
        use std::cell::Cell;
        fn hex16(n: u64, out: &mut [u8]) {
            crate::hex::encode_into(out, &n.to_be_bytes());
        }
        std::thread_local! {
            // (the prefix in hex, then the counter)
            static NEXT: ([u8; 16], Cell<u64>) = {
                let mut prefix = [0u8; 16];
                hex16(rand::random(), &mut prefix);
                (prefix, Cell::new(0))
            };
        }
        let mut id = [0u8; 32];
        NEXT.with(|(prefix, counter)| {
            let n = counter.get();
            counter.set(n.wrapping_add(1));
            id[..16].copy_from_slice(prefix);
            hex16(n, &mut id[16..]);
        });
        MessageId(Raw::copy(&id, false))
    }

    /// An id of these bytes, sent as str or bin.
    pub(super) fn from_slice(b: &[u8], is_str: bool) -> Self {
        MessageId(Raw::copy(b, is_str))
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        if self.is_str() {
            let _ = rmp::encode::write_str_len(out, self.as_bytes().len() as u32);
        } else {
            let _ = rmp::encode::write_bin_len(out, self.as_bytes().len() as u32);
        }
        out.extend_from_slice(self.as_bytes());
    }

    /// An id sent as msgpack str (what Node does).
    pub fn from_str_id(s: &str) -> Self {
        MessageId::from_slice(s.as_bytes(), true)
    }

    /// An id sent as msgpack bin.
    pub fn from_bin(b: impl Into<Bytes>) -> Self {
        let b: Bytes = b.into();
        MessageId(Raw::inline(&b, false).unwrap_or(Raw::Shared {
            bytes: b,
            is_str: false,
        }))
    }

    /// Reads an id from a header value (str or bin; Node's ids are strings,
    /// Python's bytes). Other types are not ids.
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Binary(b) => Some(MessageId::from_slice(b, false)),
            Value::String(s) => Some(MessageId::from_slice(s.as_bytes(), true)),
            _ => None,
        }
    }

    /// The id as a msgpack value of the type it arrived as.
    pub fn to_value(&self) -> Value {
        if self.is_str() {
            Value::String(String::from_utf8_lossy(self.as_bytes()).into_owned().into())
        } else {
            Value::Binary(self.as_bytes().to_vec())
        }
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Whether it travels as msgpack str.
    pub fn is_str(&self) -> bool {
        match self.0 {
            Raw::Inline { is_str, .. } | Raw::Shared { is_str, .. } => is_str,
        }
    }
}

impl PartialEq for MessageId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for MessageId {}
impl Hash for MessageId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(self.as_bytes()))
    }
}
