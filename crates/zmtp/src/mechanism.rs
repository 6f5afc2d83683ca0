//! Security mechanisms. NULL lives here; CURVE plugs into the same trait.
//!
//! The [`Handshake`](crate::Handshake) owns the greeting and framing; a
//! mechanism sees only the commands exchanged after the greetings and says
//! when the connection is ready. A mechanism that protects traffic (CURVE)
//! returns a [`FrameSealer`]/[`FrameOpener`] pair from
//! [`Mechanism::into_transform`], which the codec applies to every frame
//! after the handshake; NULL returns none and the codec stays zero-copy.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::codec::WriteBuffer;
use crate::command::{Command, Metadata, RawCommand};
use crate::curve::{
    CurveAuthenticator, CurveClient, CurveClientConfig, CurveKeyPair, CurveServer,
    CurveServerConfig,
};
use crate::error::{Result, ZmtpError};
use crate::frame::Frame;

/// What the mechanism wants after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MechanismStatus {
    /// More commands must be exchanged.
    Handshaking,
    /// The handshake is complete; [`Mechanism::peer_metadata`] is available.
    Ready,
}

/// A security mechanism's handshake (RFC 23 section "Security").
pub trait Mechanism: Send {
    /// The name in the greeting (`NULL`, `CURVE`, ...).
    fn name(&self) -> &'static str;

    /// Our as-server flag in the greeting.
    fn as_server(&self) -> bool;

    /// Called once the peer's greeting arrived (with its as-server flag).
    /// `local` is the metadata to announce. Commands to send go to `out`.
    fn start(
        &mut self,
        peer_as_server: bool,
        local: &Metadata,
        out: &mut Vec<RawCommand>,
    ) -> Result<MechanismStatus>;

    /// Handles one handshake command from the peer (never ERROR: the
    /// handshake handles that itself).
    fn on_command(
        &mut self,
        cmd: RawCommand,
        local: &Metadata,
        out: &mut Vec<RawCommand>,
    ) -> Result<MechanismStatus>;

    /// The peer's metadata, once ready.
    fn peer_metadata(&self) -> Option<&Metadata>;

    /// The authenticated user id (CURVE: from ZAP), if any.
    fn user_id(&self) -> Option<Bytes> {
        None
    }

    /// Per-frame transforms for the traffic after the handshake, if this
    /// mechanism protects it.
    fn into_transform(self: Box<Self>) -> Option<(Box<dyn FrameSealer>, Box<dyn FrameOpener>)> {
        None
    }
}

/// Protects outgoing frames (for example CURVE's MESSAGE command).
pub trait FrameSealer: Send {
    /// Turns one plaintext frame into the frame to put on the wire.
    fn seal(&mut self, frame: Frame) -> Result<Frame>;

    /// Appends the wire frame for `frame` to `out` (what the session's
    /// [`Encoder`](crate::Encoder) calls). The default appends what
    /// [`FrameSealer::seal`] returns; a sealer that can lay out and encrypt
    /// the frame in `out`'s own memory
    /// ([`WriteBuffer::put_frame_in_place`]) overrides it and saves a copy.
    fn seal_into(&mut self, frame: Frame, out: &mut WriteBuffer) -> Result<()> {
        out.put_frame(self.seal(frame)?);
        Ok(())
    }
}

/// Unprotects incoming frames.
pub trait FrameOpener: Send {
    /// Turns one wire frame into the plaintext frame it carries.
    fn open(&mut self, frame: Frame) -> Result<Frame>;

    /// The same for a frame whose body the opener may change in place
    /// (what the session's [`Decoder`](crate::Decoder) calls, with the
    /// body still in the read buffer's memory). The default freezes it and
    /// calls [`FrameOpener::open`]; an opener that decrypts in place
    /// overrides it and saves a copy.
    fn open_mut(&mut self, more: bool, command: bool, body: BytesMut) -> Result<Frame> {
        self.open(Frame {
            more,
            command,
            body: body.freeze(),
        })
    }
}

/// The NULL mechanism: no security, each side sends READY with its metadata.
#[derive(Debug, Default)]
pub struct NullMechanism {
    sent_ready: bool,
    peer: Option<Metadata>,
}

impl NullMechanism {
    /// A fresh NULL handshake.
    pub fn new() -> Self {
        NullMechanism::default()
    }
}

impl Mechanism for NullMechanism {
    fn name(&self) -> &'static str {
        "NULL"
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(
        &mut self,
        _peer_as_server: bool,
        local: &Metadata,
        out: &mut Vec<RawCommand>,
    ) -> Result<MechanismStatus> {
        out.push(Command::Ready(local.clone()).to_raw());
        self.sent_ready = true;
        Ok(MechanismStatus::Handshaking)
    }

    fn on_command(
        &mut self,
        cmd: RawCommand,
        _local: &Metadata,
        _out: &mut Vec<RawCommand>,
    ) -> Result<MechanismStatus> {
        if self.peer.is_some() {
            return Err(ZmtpError::protocol(format!(
                "unexpected {} after READY",
                cmd.name_lossy()
            )));
        }
        if !cmd.is("READY") {
            return Err(ZmtpError::protocol(format!(
                "NULL handshake expected READY, got {}",
                cmd.name_lossy()
            )));
        }
        match Command::from_raw(cmd)? {
            Command::Ready(md) => {
                self.peer = Some(md);
                Ok(MechanismStatus::Ready)
            }
            _ => Err(ZmtpError::protocol("NULL handshake expected READY")),
        }
    }

    fn peer_metadata(&self) -> Option<&Metadata> {
        self.peer.as_ref()
    }
}

/// Which mechanism a socket uses on its connections.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Security {
    /// No security (the ZeroMQ default).
    #[default]
    Null,
    /// CURVE, as the server: its keys and who may connect.
    CurveServer(Arc<CurveServerConfig>),
    /// CURVE, as a client: its keys and the server's public key.
    CurveClient(Arc<CurveClientConfig>),
}

impl Security {
    /// CURVE as a server with `keys`, accepting the clients `auth` accepts.
    pub fn curve_server(keys: CurveKeyPair, auth: impl CurveAuthenticator) -> Self {
        Security::CurveServer(Arc::new(CurveServerConfig {
            keys,
            authenticator: Arc::new(auth),
        }))
    }

    /// CURVE as a client with `keys`, talking to the server whose public
    /// key is `server_key`.
    pub fn curve_client(keys: CurveKeyPair, server_key: [u8; 32]) -> Self {
        Security::CurveClient(Arc::new(CurveClientConfig { keys, server_key }))
    }

    /// The mechanism's name in the greeting (`NULL`, `CURVE`).
    pub fn name(&self) -> &'static str {
        match self {
            Security::Null => "NULL",
            Security::CurveServer(_) | Security::CurveClient(_) => "CURVE",
        }
    }

    /// A fresh mechanism instance for one connection.
    pub fn mechanism(&self) -> Box<dyn Mechanism> {
        match self {
            Security::Null => Box::new(NullMechanism::new()),
            Security::CurveServer(c) => Box::new(CurveServer::new((**c).clone())),
            Security::CurveClient(c) => Box::new(CurveClient::new((**c).clone())),
        }
    }
}
