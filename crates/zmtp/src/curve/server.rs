//! The server side of the handshake ([`CurveServer`]): stateless until
//! INITIATE thanks to the cookie.

use bytes::{Bytes, BytesMut};
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::KeyInit;
use crypto_secretbox::XSalsa20Poly1305;

use crate::command::{Metadata, RawCommand};
use crate::error::{Result, ZmtpError};
use crate::mechanism::{FrameOpener, FrameSealer, Mechanism, MechanismStatus};

use super::nacl::CurveBox;
use super::traffic::transform;
use super::{
    key32, nonce, open, salsa_box, seal, seal_into, CurveKeyPair, CurveServerConfig, Nonces, MAC,
};

#[derive(Debug, PartialEq, Eq)]
enum ServerState {
    ExpectHello,
    ExpectInitiate,
    Ready,
}

/// The server side of a CURVE handshake.
pub struct CurveServer {
    config: CurveServerConfig,
    /// S', the connection's keys.
    transient: CurveKeyPair,
    /// The key of this connection's cookie (forgotten once used).
    cookie_key: [u8; 32],
    client_transient: Option<[u8; 32]>,
    state: ServerState,
    nonces: Nonces,
    session: Option<CurveBox>,
    peer: Option<Metadata>,
    user_id: Option<Bytes>,
}

impl std::fmt::Debug for CurveServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveServer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl CurveServer {
    /// A handshake with fresh per-connection keys.
    pub fn new(config: CurveServerConfig) -> Self {
        CurveServer {
            config,
            transient: CurveKeyPair::generate(),
            cookie_key: rand::random(),
            client_transient: None,
            state: ServerState::ExpectHello,
            nonces: Nonces::new(),
            session: None,
            peer: None,
            user_id: None,
        }
    }

    fn on_hello(&mut self, data: &[u8]) -> Result<RawCommand> {
        if data.len() != 194 {
            return Err(ZmtpError::protocol("CURVE: malformed HELLO"));
        }
        if data[..2] != [1, 0] {
            return Err(ZmtpError::protocol(format!(
                "CURVE: unsupported version {}.{}",
                data[0], data[1]
            )));
        }
        let client_transient = key32(&data[74..106])?;
        let short = &data[106..114];
        self.nonces.check(short)?;
        let from_client = salsa_box(&client_transient, &self.config.keys.secret)?;
        let zeros = open(
            &from_client,
            &nonce(b"CurveZMQHELLO---", short),
            &data[114..],
            "HELLO did not open: the client has the wrong server key",
        )?;
        if zeros.iter().any(|b| *b != 0) {
            return Err(ZmtpError::Crypto("HELLO box holds the wrong signature"));
        }
        // The cookie: C' and s', under a key only this connection knows.
        let cookie_nonce: [u8; 16] = rand::random();
        let cookie_box = seal(
            &XSalsa20Poly1305::new(GenericArray::from_slice(&self.cookie_key)),
            &nonce(b"COOKIE--", &cookie_nonce),
            &[client_transient, self.transient.secret].concat(),
        );
        let mut plain = Vec::with_capacity(32 + 96);
        plain.extend_from_slice(&self.transient.public);
        plain.extend_from_slice(&cookie_nonce);
        plain.extend_from_slice(&cookie_box);
        let welcome_nonce: [u8; 16] = rand::random();
        let mut out = BytesMut::with_capacity(16 + 144);
        out.extend_from_slice(&welcome_nonce);
        seal_into(
            &from_client,
            &nonce(b"WELCOME-", &welcome_nonce),
            &plain,
            &mut out,
        );
        self.client_transient = Some(client_transient);
        Ok(RawCommand::new("WELCOME", out.freeze()))
    }

    /// Checks INITIATE; returns the client's long-term key.
    fn on_initiate(&mut self, data: &[u8]) -> Result<[u8; 32]> {
        if data.len() < 96 + 8 + MAC + 128 {
            return Err(ZmtpError::protocol("CURVE: malformed INITIATE"));
        }
        let client_transient = self
            .client_transient
            .ok_or_else(|| ZmtpError::protocol("CURVE: INITIATE before HELLO"))?;
        // Our cookie, back: it must hold this connection's C' and s'.
        let cookie = open(
            &XSalsa20Poly1305::new(GenericArray::from_slice(&self.cookie_key)),
            &nonce(b"COOKIE--", &data[..16]),
            &data[16..96],
            "INITIATE carries a cookie that is not ours",
        )?;
        self.cookie_key = [0; 32];
        if cookie[..32] != client_transient || cookie[32..] != self.transient.secret {
            return Err(ZmtpError::Crypto(
                "INITIATE carries another connection's cookie",
            ));
        }
        let short = &data[96..104];
        self.nonces.check(short)?;
        let session = salsa_box(&client_transient, &self.transient.secret)?;
        let inner = open(
            &session,
            &nonce(b"CurveZMQINITIATE", short),
            &data[104..],
            "INITIATE did not open",
        )?;
        let client_key = key32(&inner[..32])?;
        let vouch = open(
            &salsa_box(&client_key, &self.transient.secret)?,
            &nonce(b"VOUCH---", &inner[32..48]),
            &inner[48..128],
            "the client's vouch did not open",
        )?;
        if vouch[..32] != client_transient || vouch[32..] != self.config.keys.public {
            return Err(ZmtpError::Crypto(
                "the client's vouch is for another connection",
            ));
        }
        self.peer = Some(Metadata::parse(Bytes::copy_from_slice(&inner[128..]))?);
        self.session = Some(session);
        Ok(client_key)
    }

    fn ready(&mut self, local: &Metadata) -> Result<RawCommand> {
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| ZmtpError::protocol("CURVE: READY before INITIATE"))?;
        let short = self.nonces.next();
        let mut data = BytesMut::new();
        data.extend_from_slice(&short);
        seal_into(
            session,
            &nonce(b"CurveZMQREADY---", &short),
            &local.encode(),
            &mut data,
        );
        Ok(RawCommand::new("READY", data.freeze()))
    }
}

impl Mechanism for CurveServer {
    fn name(&self) -> &'static str {
        "CURVE"
    }

    fn as_server(&self) -> bool {
        true
    }

    fn start(
        &mut self,
        peer_as_server: bool,
        _local: &Metadata,
        _out: &mut Vec<RawCommand>,
    ) -> Result<MechanismStatus> {
        if peer_as_server {
            return Err(ZmtpError::protocol(
                "CURVE: both sides are servers (the peer is not a CURVE client)",
            ));
        }
        Ok(MechanismStatus::Handshaking)
    }

    fn on_command(
        &mut self,
        cmd: RawCommand,
        local: &Metadata,
        out: &mut Vec<RawCommand>,
    ) -> Result<MechanismStatus> {
        match (&self.state, cmd.name.as_ref()) {
            (ServerState::ExpectHello, b"HELLO") => {
                out.push(self.on_hello(&cmd.data)?);
                self.state = ServerState::ExpectInitiate;
                Ok(MechanismStatus::Handshaking)
            }
            (ServerState::ExpectInitiate, b"INITIATE") => {
                let client_key = self.on_initiate(&cmd.data)?;
                match self.config.authenticator.authenticate(&client_key) {
                    Ok(user) => {
                        self.user_id = Some(Bytes::from(user));
                        out.push(self.ready(local)?);
                        self.state = ServerState::Ready;
                        Ok(MechanismStatus::Ready)
                    }
                    // (the handshake answers with an ERROR command)
                    Err(reason) => Err(ZmtpError::AuthenticationFailed(reason)),
                }
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

    fn user_id(&self) -> Option<Bytes> {
        self.user_id.clone()
    }

    fn into_transform(self: Box<Self>) -> Option<(Box<dyn FrameSealer>, Box<dyn FrameOpener>)> {
        let session = self.session?;
        Some(transform(session, self.nonces, false))
    }
}
