//! ZMTP commands: READY and its metadata, ERROR, PING/PONG, SUBSCRIBE/CANCEL.
//!
//! A command frame's body is `name-length name data`. The handshake hands
//! [`RawCommand`]s to the security mechanism (CURVE's READY is encrypted and
//! looks nothing like NULL's), and after the handshake the codec turns them
//! into [`Command`]s.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Result, ZmtpError};
use crate::frame::encode_header;
use crate::socket_type::SocketType;

/// A command as it arrived: its name and its undecoded data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    /// Command name, e.g. `READY`.
    pub name: Bytes,
    /// Everything after the name.
    pub data: Bytes,
}

impl RawCommand {
    /// A command with the given name and data.
    pub fn new(name: &'static str, data: impl Into<Bytes>) -> Self {
        RawCommand {
            name: Bytes::from_static(name.as_bytes()),
            data: data.into(),
        }
    }

    /// Splits a command frame body into name and data.
    pub fn parse(mut body: Bytes) -> Result<Self> {
        let Some(&len) = body.first() else {
            return Err(ZmtpError::protocol("empty command frame"));
        };
        let len = usize::from(len);
        if len == 0 || body.len() < 1 + len {
            return Err(ZmtpError::protocol("truncated command name"));
        }
        body.advance(1);
        let name = body.split_to(len);
        if !name.iter().all(u8::is_ascii_alphabetic) {
            return Err(ZmtpError::protocol("command name is not ASCII letters"));
        }
        Ok(RawCommand { name, data: body })
    }

    /// Encodes the command as a whole command frame.
    pub fn encode(&self, out: &mut BytesMut) {
        let body_len = 1 + self.name.len() + self.data.len();
        encode_header(false, true, body_len, out);
        out.put_u8(self.name.len() as u8);
        out.extend_from_slice(&self.name);
        out.extend_from_slice(&self.data);
    }

    /// Whether this command has the given name.
    pub fn is(&self, name: &str) -> bool {
        self.name.as_ref() == name.as_bytes()
    }

    /// The name, for logs.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A decoded command of the NULL mechanism / post-handshake traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// READY with the sender's metadata.
    Ready(Metadata),
    /// ERROR with a reason; the sender closes the connection.
    Error(String),
    /// PING (ZMTP 3.1): the receiver answers PONG with the same context.
    Ping {
        /// Time-to-live in tenths of a second.
        ttl: u16,
        /// Up to 16 bytes echoed back in the PONG.
        context: Bytes,
    },
    /// PONG (ZMTP 3.1).
    Pong {
        /// The context of the PING being answered.
        context: Bytes,
    },
    /// SUBSCRIBE (ZMTP 3.1) with a topic prefix.
    Subscribe(Bytes),
    /// CANCEL (ZMTP 3.1) with a topic prefix.
    Cancel(Bytes),
    /// A command this crate does not interpret.
    Unknown(RawCommand),
}

/// Longest PING/PONG context allowed by ZMTP 3.1.
pub const MAX_PING_CONTEXT: usize = 16;

impl Command {
    /// Decodes a raw command.
    pub fn from_raw(raw: RawCommand) -> Result<Self> {
        let mut data = raw.data.clone();
        Ok(match raw.name.as_ref() {
            b"READY" => Command::Ready(Metadata::parse(data)?),
            b"ERROR" => {
                let Some(&len) = data.first() else {
                    return Err(ZmtpError::protocol("empty ERROR command"));
                };
                let len = usize::from(len);
                if data.len() < 1 + len {
                    return Err(ZmtpError::protocol("truncated ERROR reason"));
                }
                Command::Error(String::from_utf8_lossy(&data[1..1 + len]).into_owned())
            }
            b"PING" => {
                if data.len() < 2 {
                    return Err(ZmtpError::protocol("PING without a TTL"));
                }
                let ttl = data.get_u16();
                if data.len() > MAX_PING_CONTEXT {
                    return Err(ZmtpError::protocol("PING context longer than 16 bytes"));
                }
                Command::Ping { ttl, context: data }
            }
            b"PONG" => {
                if data.len() > MAX_PING_CONTEXT {
                    return Err(ZmtpError::protocol("PONG context longer than 16 bytes"));
                }
                Command::Pong { context: data }
            }
            b"SUBSCRIBE" => Command::Subscribe(data),
            b"CANCEL" => Command::Cancel(data),
            _ => Command::Unknown(raw),
        })
    }

    /// Encodes into a raw command.
    pub fn to_raw(&self) -> RawCommand {
        match self {
            Command::Ready(md) => RawCommand::new("READY", md.encode()),
            Command::Error(reason) => {
                let reason = &reason.as_bytes()[..reason.len().min(255)];
                let mut d = BytesMut::with_capacity(1 + reason.len());
                d.put_u8(reason.len() as u8);
                d.extend_from_slice(reason);
                RawCommand::new("ERROR", d.freeze())
            }
            Command::Ping { ttl, context } => {
                let mut d = BytesMut::with_capacity(2 + context.len());
                d.put_u16(*ttl);
                d.extend_from_slice(context);
                RawCommand::new("PING", d.freeze())
            }
            Command::Pong { context } => RawCommand::new("PONG", context.clone()),
            Command::Subscribe(t) => RawCommand::new("SUBSCRIBE", t.clone()),
            Command::Cancel(t) => RawCommand::new("CANCEL", t.clone()),
            Command::Unknown(raw) => raw.clone(),
        }
    }

    /// Encodes as a whole command frame.
    pub fn encode(&self, out: &mut BytesMut) {
        self.to_raw().encode(out)
    }
}

/// The property list carried by READY (and CURVE's INITIATE/READY):
/// `name-length name value-length(4, BE) value`, names case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    props: Vec<(String, Bytes)>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Metadata::default()
    }

    /// The metadata a socket of `socket_type` sends in READY.
    pub fn for_socket(socket_type: SocketType, identity: &[u8]) -> Self {
        let mut md = Metadata::new();
        md.insert(
            "Socket-Type",
            Bytes::from_static(socket_type.as_str().as_bytes()),
        );
        if socket_type.sends_identity() {
            md.insert("Identity", Bytes::copy_from_slice(identity));
        }
        md
    }

    /// Adds a property.
    pub fn insert(&mut self, name: &str, value: impl Into<Bytes>) {
        self.props.push((name.to_owned(), value.into()));
    }

    /// Looks a property up, ignoring case.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All properties in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.props.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The peer's socket type, checked.
    pub fn socket_type(&self) -> Result<SocketType> {
        let raw = self
            .get("Socket-Type")
            .ok_or_else(|| ZmtpError::protocol("READY without Socket-Type"))?;
        SocketType::from_wire(raw).ok_or_else(|| {
            ZmtpError::protocol(format!(
                "unknown socket type {:?}",
                String::from_utf8_lossy(raw)
            ))
        })
    }

    /// The `Identity` property, if present and non-empty.
    pub fn identity(&self) -> Option<&Bytes> {
        self.get("Identity").filter(|v| !v.is_empty())
    }

    /// Parses a property list.
    pub fn parse(mut data: Bytes) -> Result<Self> {
        let mut md = Metadata::new();
        while !data.is_empty() {
            let name_len = usize::from(data[0]);
            if name_len == 0 || data.len() < 1 + name_len + 4 {
                return Err(ZmtpError::protocol("truncated metadata property"));
            }
            data.advance(1);
            let name = data.split_to(name_len);
            if !name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(b))
            {
                return Err(ZmtpError::protocol("malformed metadata property name"));
            }
            let value_len = data.get_u32() as usize;
            if data.len() < value_len {
                return Err(ZmtpError::protocol("truncated metadata value"));
            }
            let value = data.split_to(value_len);
            md.props
                .push((String::from_utf8_lossy(&name).into_owned(), value));
        }
        Ok(md)
    }

    /// Encodes the property list.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        for (name, value) in &self.props {
            out.put_u8(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.put_u32(value.len() as u32);
            out.extend_from_slice(value);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameDecoder;

    fn round_trip(cmd: Command) {
        let mut out = BytesMut::new();
        cmd.encode(&mut out);
        let frame = FrameDecoder::new(1 << 16)
            .decode(&mut out)
            .unwrap()
            .unwrap();
        assert!(frame.command);
        let back = Command::from_raw(RawCommand::parse(frame.body).unwrap()).unwrap();
        assert_eq!(back, cmd);
    }

    #[test]
    fn commands_round_trip() {
        round_trip(Command::Ready(Metadata::for_socket(
            SocketType::Router,
            b"",
        )));
        round_trip(Command::Ready(Metadata::for_socket(
            SocketType::Dealer,
            b"me",
        )));
        round_trip(Command::Error("Invalid socket type".into()));
        round_trip(Command::Ping {
            ttl: 300,
            context: Bytes::from_static(b"ctx"),
        });
        round_trip(Command::Pong {
            context: Bytes::from_static(b""),
        });
        round_trip(Command::Subscribe(Bytes::from_static(b"topic")));
        round_trip(Command::Cancel(Bytes::new()));
    }

    #[test]
    fn libzmq_ready_bytes() {
        // READY as libzmq 4.3 sends it from a DEALER with no identity.
        let body = b"\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x00";
        let cmd = Command::from_raw(RawCommand::parse(Bytes::from_static(body)).unwrap()).unwrap();
        let Command::Ready(md) = cmd else {
            panic!("not READY")
        };
        assert_eq!(md.socket_type().unwrap(), SocketType::Dealer);
        assert_eq!(md.identity(), None);
        assert_eq!(md.get("socket-type").map(|b| &b[..]), Some(&b"DEALER"[..]));
        // and we encode it byte for byte the same way
        assert_eq!(
            &Metadata::for_socket(SocketType::Dealer, b"").encode()[..],
            &body[6..]
        );
    }

    #[test]
    fn malformed_commands() {
        assert!(RawCommand::parse(Bytes::new()).is_err());
        assert!(RawCommand::parse(Bytes::from_static(b"\x05REA")).is_err());
        assert!(RawCommand::parse(Bytes::from_static(b"\x00")).is_err());
        assert!(RawCommand::parse(Bytes::from_static(b"\x02\x01\x02")).is_err());
        let bad_md = RawCommand::new(
            "READY",
            Bytes::from_static(b"\x0bSocket-Type\x00\x00\x00\x09DEALER"),
        );
        assert!(Command::from_raw(bad_md).is_err());
        let long_ping = RawCommand::new("PING", vec![0u8; 2 + 17]);
        assert!(Command::from_raw(long_ping).is_err());
        let short_error = RawCommand::new("ERROR", Bytes::from_static(b"\x09abc"));
        assert!(Command::from_raw(short_error).is_err());
        let md =
            Metadata::parse(Bytes::from_static(b"\x0bSocket-Type\x00\x00\x00\x04NOPE")).unwrap();
        assert!(md.socket_type().is_err());
        assert!(Metadata::new().socket_type().is_err());
    }
}
