//! The 64-byte ZMTP 3.x greeting, decoded incrementally.
//!
//! ```text
//! 0      1..9      9     10     11     12..32      32         33..64
//! FF  | padding | 7F | major | minor | mechanism | as-server | filler
//! ```
//!
//! libzmq sends its greeting in stages (signature, then the major version once
//! it has seen ours, then the rest), so the decoder accepts any chunking and
//! reports a bad signature or version as soon as the offending byte arrives.

use bytes::{Buf, BytesMut};

use crate::error::{Result, ZmtpError};

/// Length of a ZMTP 3.x greeting.
pub const GREETING_LEN: usize = 64;

/// Length of the mechanism field.
pub const MECHANISM_LEN: usize = 20;

/// The ZMTP version we speak: 3.1 (we also accept 3.0 peers).
pub const OUR_VERSION: (u8, u8) = (3, 1);

/// A decoded greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Major and minor protocol version.
    pub version: (u8, u8),
    /// Mechanism name (`NULL`, `PLAIN`, `CURVE`), without padding.
    pub mechanism: String,
    /// The as-server flag.
    pub as_server: bool,
}

impl Greeting {
    /// Our greeting for `mechanism`.
    pub fn new(mechanism: &str, as_server: bool) -> Self {
        Greeting {
            version: OUR_VERSION,
            mechanism: mechanism.to_owned(),
            as_server,
        }
    }

    /// Encodes the greeting into its 64 wire bytes.
    ///
    /// # Panics
    /// Never for the mechanisms this crate defines; a custom mechanism name
    /// longer than 20 bytes is truncated.
    pub fn encode(&self) -> [u8; GREETING_LEN] {
        let mut g = [0u8; GREETING_LEN];
        g[0] = 0xFF;
        // libzmq puts (identity length + 1) in the padding for ZMTP 1.0
        // peers; 1 is what it sends with no identity.
        g[8] = 1;
        g[9] = 0x7F;
        g[10] = self.version.0;
        g[11] = self.version.1;
        let name = self.mechanism.as_bytes();
        let n = name.len().min(MECHANISM_LEN);
        g[12..12 + n].copy_from_slice(&name[..n]);
        g[32] = u8::from(self.as_server);
        g
    }

    /// The version both sides will speak: 3.0 if either side is 3.0, else 3.1.
    pub fn negotiated_minor(&self) -> u8 {
        if self.version.0 > 3 {
            OUR_VERSION.1
        } else {
            self.version.1.min(OUR_VERSION.1)
        }
    }
}

/// Incremental greeting decoder.
#[derive(Debug)]
pub struct GreetingDecoder {
    buf: [u8; GREETING_LEN],
    len: usize,
}

impl Default for GreetingDecoder {
    fn default() -> Self {
        GreetingDecoder {
            buf: [0; GREETING_LEN],
            len: 0,
        }
    }
}

impl GreetingDecoder {
    /// A decoder waiting for the first byte.
    pub fn new() -> Self {
        GreetingDecoder::default()
    }

    /// How many more bytes are needed.
    pub fn remaining(&self) -> usize {
        GREETING_LEN - self.len
    }

    /// Consumes greeting bytes from `input` (and nothing past the greeting).
    /// Returns the greeting once all 64 bytes arrived.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Greeting>> {
        let take = self.remaining().min(input.len());
        let start = self.len;
        self.buf[start..start + take].copy_from_slice(&input[..take]);
        input.advance(take);
        self.len += take;
        self.validate_prefix(start)?;
        if self.len < GREETING_LEN {
            return Ok(None);
        }
        let mech = &self.buf[12..32];
        let end = mech.iter().position(|&b| b == 0).unwrap_or(MECHANISM_LEN);
        if mech[end..].iter().any(|&b| b != 0) {
            return Err(ZmtpError::InvalidGreeting(
                "mechanism name is not NUL-padded",
            ));
        }
        let name = &mech[..end];
        if name.is_empty()
            || !name
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.+".contains(b))
        {
            return Err(ZmtpError::InvalidGreeting("malformed mechanism name"));
        }
        let as_server = match self.buf[32] {
            0 => false,
            1 => true,
            _ => {
                return Err(ZmtpError::InvalidGreeting(
                    "as-server byte is neither 0 nor 1",
                ))
            }
        };
        Ok(Some(Greeting {
            version: (self.buf[10], self.buf[11]),
            mechanism: String::from_utf8_lossy(name).into_owned(),
            as_server,
        }))
    }

    /// Checks the bytes that arrived since `from`, so that garbage is refused
    /// as early as possible.
    fn validate_prefix(&self, from: usize) -> Result<()> {
        if from == 0 && self.len > 0 && self.buf[0] != 0xFF {
            return Err(ZmtpError::InvalidGreeting(
                "bad signature (not a ZMTP 2.0+ peer)",
            ));
        }
        if from <= 9 && self.len > 9 && self.buf[9] & 0x01 == 0 {
            return Err(ZmtpError::InvalidGreeting(
                "bad signature (ZMTP 1.0 peers are not supported)",
            ));
        }
        if from <= 11 && self.len > 11 && self.buf[10] < 3 {
            return Err(ZmtpError::UnsupportedVersion {
                major: self.buf[10],
                minor: self.buf[11],
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_in_chunks(bytes: &[u8], chunk: usize) -> Result<Option<Greeting>> {
        let mut dec = GreetingDecoder::new();
        let mut out = None;
        for piece in bytes.chunks(chunk) {
            let mut b = BytesMut::from(piece);
            out = dec.decode(&mut b)?;
            assert!(b.is_empty() || out.is_some());
        }
        Ok(out)
    }

    #[test]
    fn round_trip_any_chunking() {
        let g = Greeting::new("NULL", false);
        let bytes = g.encode();
        for chunk in [1, 2, 7, 10, 11, 12, 63, 64] {
            assert_eq!(feed_in_chunks(&bytes, chunk).unwrap(), Some(g.clone()));
        }
    }

    #[test]
    fn libzmq_staged_greeting() {
        // libzmq: 10-byte signature, then the major version, then the rest.
        let bytes = Greeting::new("CURVE", true).encode();
        let mut dec = GreetingDecoder::new();
        let mut b = BytesMut::from(&bytes[..10]);
        assert_eq!(dec.decode(&mut b).unwrap(), None);
        let mut b = BytesMut::from(&bytes[10..11]);
        assert_eq!(dec.decode(&mut b).unwrap(), None);
        let mut b = BytesMut::from(&bytes[11..]);
        let g = dec.decode(&mut b).unwrap().unwrap();
        assert_eq!(g.mechanism, "CURVE");
        assert!(g.as_server);
        assert_eq!(g.version, (3, 1));
    }

    #[test]
    fn leaves_bytes_after_the_greeting() {
        let mut b = BytesMut::from(&Greeting::new("NULL", false).encode()[..]);
        b.extend_from_slice(b"\x04\x05READY");
        let mut dec = GreetingDecoder::new();
        assert!(dec.decode(&mut b).unwrap().is_some());
        assert_eq!(&b[..], b"\x04\x05READY");
    }

    #[test]
    fn garbage_fails_on_first_byte() {
        let mut dec = GreetingDecoder::new();
        let mut b = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(matches!(
            dec.decode(&mut b),
            Err(ZmtpError::InvalidGreeting(_))
        ));
    }

    #[test]
    fn zmtp1_and_old_versions_refused() {
        let mut v1 = Greeting::new("NULL", false).encode();
        v1[9] = 0x00;
        assert!(matches!(
            feed_in_chunks(&v1, 64),
            Err(ZmtpError::InvalidGreeting(_))
        ));
        let mut v2 = Greeting::new("NULL", false).encode();
        v2[10] = 2;
        // Refused after 12 bytes, without waiting for the rest.
        let mut dec = GreetingDecoder::new();
        let mut b = BytesMut::from(&v2[..12]);
        assert!(matches!(
            dec.decode(&mut b),
            Err(ZmtpError::UnsupportedVersion { major: 2, minor: 1 })
        ));
    }

    #[test]
    fn version_negotiation() {
        let mut g = Greeting::new("NULL", false);
        g.version = (3, 0);
        assert_eq!(g.negotiated_minor(), 0);
        g.version = (3, 1);
        assert_eq!(g.negotiated_minor(), 1);
        g.version = (3, 7);
        assert_eq!(g.negotiated_minor(), 1);
        g.version = (4, 0);
        assert_eq!(g.negotiated_minor(), 1);
    }

    #[test]
    fn malformed_mechanism_and_server_flag() {
        let mut g = Greeting::new("NULL", false).encode();
        g[12] = b'n';
        assert!(feed_in_chunks(&g, 64).is_err());
        let mut g = Greeting::new("NULL", false).encode();
        g[20] = b'X'; // junk after the NUL padding starts
        assert!(feed_in_chunks(&g, 64).is_err());
        let mut g = Greeting::new("NULL", false).encode();
        g[32] = 7;
        assert!(feed_in_chunks(&g, 64).is_err());
    }
}
