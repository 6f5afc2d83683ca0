//! The connection handshake as a sans-IO state machine: greetings, then the
//! security mechanism's commands, then the socket-type check.
//!
//! ```text
//! let mut hs = Handshake::new(SocketType::Dealer, Bytes::new(), Box::new(NullMechanism::new()));
//! write(hs.take_output());             // our greeting, sent at once
//! loop {
//!     read_into(&mut input);
//!     let done = hs.receive(&mut input)?;  // may queue more output
//!     write(hs.take_output());
//!     if done { break }
//! }
//! let session = hs.finish(limits)?;     // codec for the rest; `input` keeps leftover bytes
//! ```
//!
//! On error, [`Handshake::take_output`] may still hold an ERROR command for
//! the peer; write it (best effort) before closing.
//!
//! With the `tokio` feature, [`Handshake::run`] is that loop over a
//! connection's halves (what the sockets use; raw test clients too).

use bytes::{Bytes, BytesMut};

use crate::codec::{Decoder, Encoder, Limits};
use crate::command::{Command, Metadata, RawCommand};
use crate::error::{Result, ZmtpError};
use crate::frame::FrameDecoder;
use crate::greeting::{Greeting, GreetingDecoder};
use crate::mechanism::{Mechanism, MechanismStatus};
use crate::socket_type::SocketType;

/// Largest handshake command accepted (metadata, CURVE boxes).
const MAX_HANDSHAKE_FRAME: u64 = 64 * 1024;

/// Who the peer turned out to be.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's socket type (already checked against ours).
    pub socket_type: SocketType,
    /// The `Identity` property, when the peer gave a non-empty one.
    pub identity: Option<Bytes>,
    /// All metadata the peer sent.
    pub metadata: Metadata,
    /// The protocol version the peer announced.
    pub version: (u8, u8),
    /// The authenticated user id, when the mechanism provides one.
    pub user_id: Option<Bytes>,
}

/// The result of a completed handshake.
#[derive(Debug)]
pub struct Session {
    /// The peer.
    pub peer: PeerInfo,
    /// Encoder for our outgoing traffic.
    pub encoder: Encoder,
    /// Decoder for the peer's traffic.
    pub decoder: Decoder,
}

/// What a failed handshake says about trying again (see
/// [`HandshakeFailure::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// Security refused the connection: the peer refused our credentials
    /// (a CURVE key it does not allow, a ZAP denial), we could not
    /// authenticate it (a CURVE box that did not open: the wrong server
    /// key), or the two sides use different mechanisms (a missing key).
    /// Trying again with the same settings fails the same way.
    Authentication,
    /// The peer's socket type cannot talk to ours (for example a DEALER
    /// connected to a PULL): the address is not what the user meant.
    IncompatibleSocketType,
    /// Anything else (a closed or timed-out connection, garbage): may be
    /// transient.
    Other,
}

impl HandshakeFailure {
    /// Classifies the error a handshake failed with. `mechanism` is our
    /// mechanism's name (`NULL`, `CURVE`).
    pub fn of(e: &ZmtpError, mechanism: &str) -> Self {
        match e {
            ZmtpError::IncompatibleSocketType { .. } => HandshakeFailure::IncompatibleSocketType,
            // (what we send, and what libzmq's peers would)
            ZmtpError::PeerError(r) if r.to_ascii_lowercase().contains("socket type") => {
                HandshakeFailure::IncompatibleSocketType
            }
            ZmtpError::PeerError(r) => match zap_status(r) {
                // ZAP 300: a temporary failure of the authenticator
                Some(300) => HandshakeFailure::Other,
                Some(_) => HandshakeFailure::Authentication,
                // (an ERROR during a security mechanism's handshake is a
                // refusal; under NULL, without ZAP, it is something else)
                None if mechanism != "NULL" && !r.starts_with("protocol violation") => {
                    HandshakeFailure::Authentication
                }
                None => HandshakeFailure::Other,
            },
            ZmtpError::MechanismMismatch { .. }
            | ZmtpError::AuthenticationFailed(_)
            | ZmtpError::Crypto(_) => HandshakeFailure::Authentication,
            _ => HandshakeFailure::Other,
        }
    }
}

/// A ZAP status code (RFC 27) sent as an ERROR reason, as libzmq does.
pub fn zap_status(reason: &str) -> Option<u16> {
    match reason.trim() {
        "300" => Some(300),
        "400" => Some(400),
        "500" => Some(500),
        _ => None,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Greeting,
    Mechanism,
    Done,
    Failed,
}

/// The handshake state machine.
pub struct Handshake {
    socket_type: SocketType,
    local: Metadata,
    mechanism: Box<dyn Mechanism>,
    greeting: GreetingDecoder,
    peer_version: (u8, u8),
    frames: FrameDecoder,
    out: BytesMut,
    state: State,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("socket_type", &self.socket_type)
            .field("mechanism", &self.mechanism.name())
            .field("state", &self.state)
            .finish()
    }
}

impl Handshake {
    /// Starts a handshake; our greeting is queued immediately.
    pub fn new(socket_type: SocketType, identity: Bytes, mechanism: Box<dyn Mechanism>) -> Self {
        let greeting = Greeting::new(mechanism.name(), mechanism.as_server());
        let mut out = BytesMut::with_capacity(128);
        out.extend_from_slice(&greeting.encode());
        Handshake {
            socket_type,
            local: Metadata::for_socket(socket_type, &identity),
            mechanism,
            greeting: GreetingDecoder::new(),
            peer_version: (0, 0),
            frames: FrameDecoder::new(MAX_HANDSHAKE_FRAME),
            out,
            state: State::Greeting,
        }
    }

    /// Bytes to send to the peer now.
    pub fn take_output(&mut self) -> BytesMut {
        self.out.split()
    }

    /// Whether the handshake completed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether we are a security mechanism's client (CURVE) waiting for
    /// the server to accept us: the greetings are exchanged, and the
    /// server has yet to finish its part. A peer that closes now (rather
    /// than sending ERROR) is refusing the handshake without saying why;
    /// libzmq does that when it cannot open our CURVE HELLO.
    pub fn awaiting_security(&self) -> bool {
        self.state == State::Mechanism
            && self.mechanism.name() != "NULL"
            && !self.mechanism.as_server()
    }

    /// The mechanism's name.
    pub fn mechanism_name(&self) -> &'static str {
        self.mechanism.name()
    }

    /// Feeds received bytes. Consumes only handshake bytes: whatever
    /// follows stays in `input` for the [`Decoder`]. Returns `true` once
    /// the handshake is complete.
    pub fn receive(&mut self, input: &mut BytesMut) -> Result<bool> {
        let r = self.step(input);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn step(&mut self, input: &mut BytesMut) -> Result<bool> {
        match self.state {
            State::Done => return Ok(true),
            State::Failed => return Err(ZmtpError::protocol("handshake already failed")),
            State::Greeting => {
                let Some(g) = self.greeting.decode(input)? else {
                    return Ok(false);
                };
                if g.mechanism != self.mechanism.name() {
                    return Err(ZmtpError::MechanismMismatch {
                        ours: self.mechanism.name().into(),
                        theirs: g.mechanism,
                    });
                }
                self.peer_version = g.version;
                let mut cmds = Vec::new();
                let status = self.mechanism.start(g.as_server, &self.local, &mut cmds)?;
                self.queue(&cmds);
                self.state = State::Mechanism;
                if status == MechanismStatus::Ready {
                    return self.complete();
                }
            }
            State::Mechanism => {}
        }
        while let Some(frame) = self.frames.decode(input)? {
            if !frame.command {
                return Err(ZmtpError::protocol(
                    "message frame before the handshake completed",
                ));
            }
            let raw = RawCommand::parse(frame.body)?;
            if raw.is("ERROR") {
                return match Command::from_raw(raw)? {
                    Command::Error(reason) => Err(ZmtpError::PeerError(reason)),
                    _ => Err(ZmtpError::protocol("malformed ERROR")),
                };
            }
            let mut cmds = Vec::new();
            let status = self.mechanism.on_command(raw, &self.local, &mut cmds);
            let status = match status {
                Ok(s) => s,
                Err(e) => {
                    self.queue_error(&e.to_string());
                    return Err(e);
                }
            };
            self.queue(&cmds);
            if status == MechanismStatus::Ready {
                return self.complete();
            }
        }
        Ok(false)
    }

    fn complete(&mut self) -> Result<bool> {
        let md = self
            .mechanism
            .peer_metadata()
            .ok_or_else(|| ZmtpError::protocol("mechanism ready without peer metadata"))?;
        let peer_type = match md.socket_type() {
            Ok(t) => t,
            Err(e) => {
                self.queue_error("Invalid socket type");
                return Err(e);
            }
        };
        if !self.socket_type.is_compatible(peer_type) {
            self.queue_error("Invalid socket type");
            return Err(ZmtpError::IncompatibleSocketType {
                ours: self.socket_type.to_string(),
                peer: peer_type.to_string(),
            });
        }
        self.state = State::Done;
        Ok(true)
    }

    fn queue(&mut self, cmds: &[RawCommand]) {
        for c in cmds {
            c.encode(&mut self.out);
        }
    }

    fn queue_error(&mut self, reason: &str) {
        Command::Error(reason.to_owned()).encode(&mut self.out);
    }

    /// Runs the handshake to its end over a connection: writes what it has
    /// to say, reads until it is done, and returns the session codec;
    /// `input` keeps what was read past the handshake (the first bytes of
    /// traffic). When the handshake fails, the ERROR command it queued for
    /// the peer, if any, is sent first (best effort). No timeout of its own:
    /// wrap the call in one.
    #[cfg(feature = "tokio")]
    pub async fn run<R, W>(
        mut self,
        read: &mut R,
        write: &mut W,
        input: &mut BytesMut,
        limits: Limits,
    ) -> Result<Session>
    where
        R: tokio::io::AsyncRead + Unpin + ?Sized,
        W: tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let out = self.take_output();
            if !out.is_empty() {
                write.write_all(&out).await?;
            }
            if self.is_done() {
                return self.finish(limits);
            }
            input.reserve(16 * 1024);
            let n = match read.read_buf(input).await {
                Ok(n) => n,
                // A peer that refuses our credentials may reset at once.
                Err(_) if self.awaiting_security() => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(if self.awaiting_security() {
                    ZmtpError::ClosedDuringSecurityHandshake {
                        mechanism: self.mechanism_name(),
                    }
                } else {
                    ZmtpError::ConnectionClosed
                });
            }
            if let Err(e) = self.receive(input) {
                let out = self.take_output();
                if !out.is_empty() {
                    let _ = write.write_all(&out).await;
                }
                return Err(e);
            }
        }
    }

    /// Turns a completed handshake into the session codec.
    pub fn finish(self, limits: Limits) -> Result<Session> {
        if self.state != State::Done {
            return Err(ZmtpError::protocol("handshake not complete"));
        }
        let metadata = self
            .mechanism
            .peer_metadata()
            .cloned()
            .ok_or_else(|| ZmtpError::protocol("mechanism ready without peer metadata"))?;
        let socket_type = metadata.socket_type()?;
        let identity = metadata.identity().cloned();
        let user_id = self.mechanism.user_id();
        let (sealer, opener) = match self.mechanism.into_transform() {
            Some((s, o)) => (Some(s), Some(o)),
            None => (None, None),
        };
        Ok(Session {
            peer: PeerInfo {
                socket_type,
                identity,
                metadata,
                version: self.peer_version,
                user_id,
            },
            encoder: Encoder::new(sealer),
            decoder: Decoder::new(limits, opener),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Incoming, WriteBuffer};
    use crate::mechanism::NullMechanism;
    use crate::message::Message;

    fn hs(t: SocketType, id: &'static [u8]) -> Handshake {
        Handshake::new(t, Bytes::from_static(id), Box::new(NullMechanism::new()))
    }

    /// Runs two handshakes against each other in memory, delivering bytes
    /// `chunk` at a time.
    fn pump(a: &mut Handshake, b: &mut Handshake, chunk: usize) -> (Result<bool>, Result<bool>) {
        // bytes on the wire towards each side, and each side's input buffer
        let (mut to_a, mut to_b) = (BytesMut::new(), BytesMut::new());
        let (mut a_in, mut b_in) = (BytesMut::new(), BytesMut::new());
        let (mut ra, mut rb) = (Ok(false), Ok(false));
        let settled = |r: &Result<bool>| !matches!(r, Ok(false));
        for _ in 0..100_000 {
            to_b.extend_from_slice(&a.take_output());
            to_a.extend_from_slice(&b.take_output());
            if to_a.is_empty() && to_b.is_empty() {
                break;
            }
            a_in.extend_from_slice(&to_a.split_to(chunk.min(to_a.len())));
            b_in.extend_from_slice(&to_b.split_to(chunk.min(to_b.len())));
            if !settled(&ra) {
                ra = a.receive(&mut a_in);
            }
            if !settled(&rb) {
                rb = b.receive(&mut b_in);
            }
            if settled(&ra) && settled(&rb) {
                break;
            }
        }
        (ra, rb)
    }

    #[test]
    fn null_handshake_any_chunking() {
        for chunk in [1, 3, 10, 11, 64, 1000] {
            let mut a = hs(SocketType::Dealer, b"client-1");
            let mut b = hs(SocketType::Router, b"");
            let (ra, rb) = pump(&mut a, &mut b, chunk);
            assert!(
                matches!((&ra, &rb), (Ok(true), Ok(true))),
                "chunk {chunk}: {ra:?} {rb:?}"
            );
            let sa = a.finish(Limits::default()).unwrap();
            let sb = b.finish(Limits::default()).unwrap();
            assert_eq!(sa.peer.socket_type, SocketType::Router);
            assert_eq!(sa.peer.identity, None);
            assert_eq!(sb.peer.socket_type, SocketType::Dealer);
            assert_eq!(sb.peer.identity.as_deref(), Some(&b"client-1"[..]));
            assert_eq!(sb.peer.version, (3, 1));
        }
    }

    #[test]
    fn incompatible_types_send_error() {
        let mut a = hs(SocketType::Push, b"");
        let mut b = hs(SocketType::Pub, b"");
        let (ra, rb) = pump(&mut a, &mut b, 64);
        // Both see the mismatch; each queued an ERROR for the other.
        assert!(matches!(ra, Err(ZmtpError::IncompatibleSocketType { .. })));
        assert!(matches!(rb, Err(ZmtpError::IncompatibleSocketType { .. })));
        let out = a.take_output();
        assert!(out.windows(5).any(|w| w == b"ERROR"));
    }

    #[test]
    fn peer_error_during_handshake() {
        let mut a = hs(SocketType::Dealer, b"");
        let _ = a.take_output();
        let mut input = BytesMut::from(&Greeting::new("NULL", false).encode()[..]);
        Command::Error("go away".into()).encode(&mut input);
        match a.receive(&mut input) {
            Err(ZmtpError::PeerError(r)) => assert_eq!(r, "go away"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn handshake_failures_are_classified_for_retrying() {
        use HandshakeFailure::*;
        let peer = |r: &str| ZmtpError::PeerError(r.into());
        let cases = [
            (peer("400"), "CURVE", Authentication),
            (peer("500"), "NULL", Authentication),
            (peer("300"), "CURVE", Other),
            (
                peer("authentication failed: unknown key"),
                "CURVE",
                Authentication,
            ),
            (peer("Invalid socket type"), "CURVE", IncompatibleSocketType),
            (peer("Invalid socket type"), "NULL", IncompatibleSocketType),
            (peer("go away"), "NULL", Other),
            (peer("protocol violation: x"), "CURVE", Other),
            (
                ZmtpError::Crypto("WELCOME did not open"),
                "CURVE",
                Authentication,
            ),
            (
                ZmtpError::MechanismMismatch {
                    ours: "NULL".into(),
                    theirs: "CURVE".into(),
                },
                "NULL",
                Authentication,
            ),
            (
                ZmtpError::IncompatibleSocketType {
                    ours: "DEALER".into(),
                    peer: "PULL".into(),
                },
                "NULL",
                IncompatibleSocketType,
            ),
            (ZmtpError::ConnectionClosed, "CURVE", Other),
            (ZmtpError::HandshakeTimeout, "CURVE", Other),
        ];
        for (e, mech, want) in cases {
            assert_eq!(HandshakeFailure::of(&e, mech), want, "{e} under {mech}");
        }
    }

    #[test]
    fn mechanism_mismatch() {
        let mut a = hs(SocketType::Dealer, b"");
        let mut input = BytesMut::from(&Greeting::new("CURVE", true).encode()[..]);
        assert!(matches!(
            a.receive(&mut input),
            Err(ZmtpError::MechanismMismatch { .. })
        ));
    }

    #[test]
    fn data_before_ready_and_wrong_command() {
        let mut a = hs(SocketType::Dealer, b"");
        let mut input = BytesMut::from(&Greeting::new("NULL", false).encode()[..]);
        crate::frame::Frame::data(&b"hi"[..], false).encode(&mut input);
        assert!(matches!(a.receive(&mut input), Err(ZmtpError::Protocol(_))));

        let mut a = hs(SocketType::Dealer, b"");
        let mut input = BytesMut::from(&Greeting::new("NULL", false).encode()[..]);
        Command::Ping {
            ttl: 1,
            context: Bytes::new(),
        }
        .encode(&mut input);
        assert!(matches!(a.receive(&mut input), Err(ZmtpError::Protocol(_))));
        // and the peer is told why
        assert!(a.take_output().windows(5).any(|w| w == b"ERROR"));
    }

    #[test]
    fn leftover_bytes_go_to_the_decoder() {
        let mut a = hs(SocketType::Dealer, b"");
        let mut input = BytesMut::from(&Greeting::new("NULL", false).encode()[..]);
        Command::Ready(Metadata::for_socket(SocketType::Router, b"")).encode(&mut input);
        let mut wb = WriteBuffer::new();
        let msg = Message::from_iter([&b""[..], b"hello"]);
        Encoder::new(None).encode_message(&msg, &mut wb).unwrap();
        input.extend_from_slice(&wb.to_vec());
        assert!(a.receive(&mut input).unwrap());
        let mut s = a.finish(Limits::default()).unwrap();
        assert_eq!(
            s.decoder.decode(&mut input).unwrap(),
            Some(Incoming::Message(msg))
        );
    }

    #[test]
    fn zmtp_3_0_peer_accepted() {
        let mut a = hs(SocketType::Sub, b"");
        let mut g = Greeting::new("NULL", false);
        g.version = (3, 0);
        let mut input = BytesMut::from(&g.encode()[..]);
        Command::Ready(Metadata::for_socket(SocketType::Pub, b"")).encode(&mut input);
        assert!(a.receive(&mut input).unwrap());
        assert_eq!(a.finish(Limits::default()).unwrap().peer.version, (3, 0));
    }
}
