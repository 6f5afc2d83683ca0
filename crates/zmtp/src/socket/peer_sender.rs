//! [`PeerSender`]: one ROUTER peer's send queue, held by whoever answers
//! that peer; and [`TrySendError`], what a send that does not wait gives
//! back.

use super::queue::PushError;
use super::PeerQueue;
use crate::error::{Result, ZmtpError};
use crate::message::Message;
use bytes::Bytes;

/// Why a send that does not wait (`try_send_or_return`) did not queue its
/// message.
#[derive(Debug)]
pub enum TrySendError {
    /// No room now (or, for round-robin sockets, no peer yet): the message
    /// comes back, for the caller to retry or to wait with `send`.
    Full(Message),
    /// The send failed for good (ROUTER: no such peer, or it went away).
    Failed(ZmtpError),
}

/// One ROUTER peer's send queue, for whoever answers that peer (a
/// server's call): sends skip the routing-id lookup, and
/// [`PeerSender::poll_room`] tells whether the peer keeps up, so work for
/// a peer that does not read can wait instead of piling up replies.
/// Messages sent through it carry no routing-id frame.
#[derive(Clone)]
pub struct PeerSender {
    pub(super) queue: PeerQueue,
    pub(super) routing_id: Bytes,
}

impl std::fmt::Debug for PeerSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSender")
            .field("routing_id", &self.routing_id)
            .finish()
    }
}

impl PeerSender {
    /// The routing id of the peer it sends to.
    pub fn routing_id(&self) -> &Bytes {
        &self.routing_id
    }

    fn gone(&self) -> ZmtpError {
        ZmtpError::HostUnreachable(self.routing_id.clone())
    }

    /// Queues `msg` if there is room; a full queue gives it back.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, msg: Message) -> std::result::Result<(), TrySendError> {
        match self.queue.try_push(msg) {
            Ok(()) => Ok(()),
            Err(PushError::Full(m)) => Err(TrySendError::Full(m)),
            Err(PushError::Closed(_)) => Err(TrySendError::Failed(self.gone())),
        }
    }

    /// Queues the message in `slot` once there is room (it stays in `slot`
    /// while pending). Fails once the peer has gone.
    pub fn poll_send(
        &self,
        cx: &mut std::task::Context<'_>,
        slot: &mut Option<Message>,
    ) -> std::task::Poll<Result<()>> {
        self.queue
            .poll_push(cx, slot)
            .map(|r| r.map_err(|_| self.gone()))
    }

    /// Ready once a message could be queued (an empty queue always has
    /// room, a backed-up one waits under its byte and message limits and
    /// the socket's budget). Fails once the peer has gone.
    pub fn poll_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<()>> {
        self.queue
            .poll_room(cx)
            .map(|open| if open { Ok(()) } else { Err(self.gone()) })
    }
}
