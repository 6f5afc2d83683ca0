//! The client side of the handshake ([`CurveClient`]).

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::{Metadata, RawCommand};
use crate::error::{Result, ZmtpError};
use crate::mechanism::{FrameOpener, FrameSealer, Mechanism, MechanismStatus};

use super::nacl::CurveBox;
use super::traffic::transform;
use super::{
    key32, nonce, open, salsa_box, seal, seal_into, CurveClientConfig, CurveKeyPair, Nonces, MAC,
};

#[derive(Debug, PartialEq, Eq)]
enum ClientState {
    Start,
    ExpectWelcome,
    ExpectReady,
    Ready,
}

/// The client side of a CURVE handshake.
pub struct CurveClient {
    config: CurveClientConfig,
    /// C', the connection's keys.
    transient: CurveKeyPair,
    state: ClientState,
    nonces: Nonces,
    /// C' → S', once S' is known.
    session: Option<CurveBox>,
    peer: Option<Metadata>,
}

impl std::fmt::Debug for CurveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveClient")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl CurveClient {
    /// A handshake with fresh per-connection keys.
    pub fn new(config: CurveClientConfig) -> Self {
        CurveClient {
            config,
            transient: CurveKeyPair::generate(),
            state: ClientState::Start,
            nonces: Nonces::new(),
            session: None,
            peer: None,
        }
    }

    fn hello(&mut self) -> Result<RawCommand> {
        let to_server = salsa_box(&self.config.server_key, &self.transient.secret)?;
        let short = self.nonces.next();
        let mut data = BytesMut::with_capacity(194);
        data.extend_from_slice(&[1, 0]);
        data.put_bytes(0, 72);
        data.extend_from_slice(&self.transient.public);
        data.extend_from_slice(&short);
        seal_into(
            &to_server,
            &nonce(b"CurveZMQHELLO---", &short),
            &[0u8; 64],
            &mut data,
        );
        Ok(RawCommand::new("HELLO", data.freeze()))
    }

    fn on_welcome(&mut self, data: &[u8], local: &Metadata) -> Result<RawCommand> {
        if data.len() != 16 + 144 {
            return Err(ZmtpError::protocol("CURVE: malformed WELCOME"));
        }
        let from_server = salsa_box(&self.config.server_key, &self.transient.secret)?;
        let plain = open(
            &from_server,
            &nonce(b"WELCOME-", &data[..16]),
            &data[16..],
            "WELCOME did not open: is the server key right?",
        )?;
        let server_transient = key32(&plain[..32])?;
        let cookie = &plain[32..];
        // The vouch: C' and S, from our long-term key to S'.
        let vouch_nonce: [u8; 16] = rand::random();
        let vouch = seal(
            &salsa_box(&server_transient, &self.config.keys.secret)?,
            &nonce(b"VOUCH---", &vouch_nonce),
            &[self.transient.public, self.config.server_key].concat(),
        );
        let session = salsa_box(&server_transient, &self.transient.secret)?;
        let mut inner = Vec::with_capacity(128 + 64);
        inner.extend_from_slice(&self.config.keys.public);
        inner.extend_from_slice(&vouch_nonce);
        inner.extend_from_slice(&vouch);
        inner.extend_from_slice(&local.encode());
        let short = self.nonces.next();
        let mut data = BytesMut::with_capacity(96 + 8 + MAC + inner.len());
        data.extend_from_slice(cookie);
        data.extend_from_slice(&short);
        seal_into(
            &session,
            &nonce(b"CurveZMQINITIATE", &short),
            &inner,
            &mut data,
        );
        self.session = Some(session);
        Ok(RawCommand::new("INITIATE", data.freeze()))
    }

    fn on_ready(&mut self, data: &[u8]) -> Result<()> {
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| ZmtpError::protocol("CURVE: READY before WELCOME"))?;
        if data.len() < 8 + MAC {
            return Err(ZmtpError::protocol("CURVE: malformed READY"));
        }
        self.nonces.check(&data[..8])?;
        let plain = open(
            session,
            &nonce(b"CurveZMQREADY---", &data[..8]),
            &data[8..],
            "READY did not open",
        )?;
        self.peer = Some(Metadata::parse(Bytes::from(plain))?);
        Ok(())
    }
}

impl Mechanism for CurveClient {
    fn name(&self) -> &'static str {
        "CURVE"
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(
        &mut self,
        peer_as_server: bool,
        _local: &Metadata,
        out: &mut Vec<RawCommand>,
    ) -> Result<MechanismStatus> {
        // (libzmq leaves its greeting's as-server byte 0 even as a CURVE
        // server, so it cannot be required; two clients fail on each
        // other's HELLO instead)
        let _ = peer_as_server;
        out.push(self.hello()?);
        self.state = ClientState::ExpectWelcome;
        Ok(MechanismStatus::Handshaking)
    }

    fn on_command(
        &mut self,
        cmd: RawCommand,
        local: &Metadata,
        out: &mut Vec<RawCommand>,
    ) -> Result<MechanismStatus> {
        match (&self.state, cmd.name.as_ref()) {
            (ClientState::ExpectWelcome, b"WELCOME") => {
                out.push(self.on_welcome(&cmd.data, local)?);
                self.state = ClientState::ExpectReady;
                Ok(MechanismStatus::Handshaking)
            }
            (ClientState::ExpectReady, b"READY") => {
                self.on_ready(&cmd.data)?;
                self.state = ClientState::Ready;
                Ok(MechanismStatus::Ready)
            }
            _ => Err(ZmtpError::protocol(format!(
                "CURVE: unexpected {} in state {:?}",
                cmd.name_lossy(),
                self.state
            ))),
        }
    }

    fn peer_metadata(&self) -> Option<&Metadata> {
        self.peer.as_ref()
    }

    fn into_transform(self: Box<Self>) -> Option<(Box<dyn FrameSealer>, Box<dyn FrameOpener>)> {
        let session = self.session?;
        Some(transform(session, self.nonces, true))
    }
}
