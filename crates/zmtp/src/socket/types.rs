//! The socket types users hold. Each wraps the shared core and exposes
//! only the operations its pattern allows.

use bytes::Bytes;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast;

use super::{SocketCore, SocketEvent, SocketOptions, TrySendError};
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::message::Message;
use crate::socket_type::SocketType;

macro_rules! common {
    ($name:ident, $kind:expr) => {
        impl $name {
            /// A socket with default options.
            pub fn new() -> Self {
                Self::with_options(SocketOptions::default())
            }

            /// A socket with the given options.
            pub fn with_options(options: SocketOptions) -> Self {
                $name {
                    core: SocketCore::new($kind, options),
                }
            }

            /// Accepts connections on `endpoint` (`tcp://host:port`,
            /// `tcp://*:0`, `ipc:///path`). Returns the bound endpoint, with
            /// the real port when 0 was asked for. May be called several times.
            pub async fn bind(&self, endpoint: &str) -> Result<Endpoint> {
                self.core.bind(endpoint).await
            }

            /// Stops the socket at once, as dropping it does (connections
            /// close, unsent messages are lost), and returns once every
            /// endpoint it bound is released: a new socket can bind them
            /// then. Dropping the socket releases them a moment later, on
            /// the runtime's time. After it, binding, connecting and
            /// sending fail, and receiving returns what had arrived, then
            /// fails.
            pub async fn close(&self) {
                self.core.close().await
            }

            /// Connects to `endpoint`, in the background, reconnecting with
            /// backoff whenever the connection fails or drops. May be called
            /// several times.
            pub async fn connect(&self, endpoint: &str) -> Result<()> {
                self.core.connect(endpoint).await
            }

            /// Connection events (connected, disconnected, handshake
            /// failures). Events emitted before this call are not seen; a
            /// receiver that falls more than 1024 events behind loses the
            /// oldest.
            pub fn monitor(&self) -> broadcast::Receiver<SocketEvent> {
                self.core.monitor()
            }

            /// Number of connections that completed their handshake.
            pub fn peer_count(&self) -> usize {
                self.core.peer_count()
            }

            /// Connections refused or failed before their handshake
            /// completed (a CURVE key the authenticator refused, the
            /// wrong server key, garbage...), since the socket was made.
            pub fn handshake_failures(&self) -> u64 {
                self.core.handshake_failures()
            }

            /// Messages queued for sending, over all peers, that the
            /// connections have not taken yet (for example to wait for a
            /// flush before exiting).
            pub fn queued_outbound(&self) -> usize {
                self.core.queued_outbound()
            }

            /// Bytes queued for sending, over all peers (what
            /// [`SocketOptions::send_budget_bytes`] bounds).
            pub fn queued_outbound_bytes(&self) -> usize {
                self.core.queued_outbound_bytes()
            }

            /// This socket's type.
            pub fn socket_type(&self) -> SocketType {
                $kind
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("peers", &self.peer_count())
                    .finish()
            }
        }
    };
}

macro_rules! receiving {
    ($name:ident) => {
        impl $name {
            /// Waits for the next message.
            pub async fn recv(&self) -> Result<Message> {
                self.core.recv().await
            }

            /// The next message if one is queued.
            pub fn try_recv(&self) -> Result<Option<Message>> {
                self.core.try_recv()
            }

            /// Hands what each connection receives to `d`, on that
            /// connection's reader task, while the returned
            /// [`Delivery`](crate::Delivery) lives (see
            /// [`Deliver`](crate::Deliver)); `recv` then sees only what
            /// `d` leaves.
            pub fn deliver_to(&self, d: std::sync::Arc<dyn crate::Deliver>) -> crate::Delivery {
                self.core.deliver_to(d)
            }
        }
    };
}

/// Round-robin sending (DEALER, PUSH).
macro_rules! round_robin_sending {
    ($name:ident) => {
        impl $name {
            /// Sends a message to the next peer with room, waiting if
            /// needed (also while there is no peer yet).
            pub async fn send(&self, msg: impl Into<Message>) -> Result<()> {
                self.core.shared.send_round_robin(msg.into()).await
            }

            /// Sends the message in `msg` to the next peer with room,
            /// without allocating while it waits: `Pending` while every
            /// peer's queue is full (the message back in `msg`; the task
            /// is woken when the next peer in turn has room, goes away,
            /// or another peer arrives), and
            /// [`RoundRobin::NoPeer`](crate::RoundRobin::NoPeer) when no
            /// peer is connected (the message kept; [`Self::send`] waits
            /// for one). For a caller that owns its state machine and
            /// waits for room in it, as an RPC call does.
            pub fn poll_send(
                &self,
                cx: &mut std::task::Context<'_>,
                msg: &mut Option<Message>,
            ) -> std::task::Poll<Result<crate::RoundRobin>> {
                self.core.shared.poll_send_round_robin(cx, msg)
            }

            /// Sends without waiting; [`ZmtpError::WouldBlock`](crate::ZmtpError::WouldBlock)
            /// when no peer has room.
            pub fn try_send(&self, msg: impl Into<Message>) -> Result<()> {
                self.core
                    .shared
                    .try_send_round_robin(msg.into())
                    .map_err(|_| crate::ZmtpError::WouldBlock)
            }

            /// Sends without waiting; when no peer has room the message
            /// comes back in [`TrySendError::Full`].
            #[allow(clippy::result_large_err)]
            pub fn try_send_or_return(
                &self,
                msg: Message,
            ) -> std::result::Result<(), TrySendError> {
                self.core
                    .shared
                    .try_send_round_robin(msg)
                    .map_err(TrySendError::Full)
            }
        }
    };
}

/// DEALER: sends round-robin to its peers (waiting when every queue is
/// full, or when there is no peer yet), receives fair-queued from all.
/// The RPC client socket. Messages to a ROUTER peer conventionally start
/// with an empty delimiter frame.
pub struct DealerSocket {
    core: SocketCore,
}
common!(DealerSocket, SocketType::Dealer);
receiving!(DealerSocket);

round_robin_sending!(DealerSocket);

/// ROUTER: receives `[routing id, frames...]` from any peer and sends to the
/// peer named by the first frame. The RPC server socket.
///
/// Sending to an identity with no connection is an error
/// ([`ZmtpError::HostUnreachable`](crate::ZmtpError::HostUnreachable));
/// sending to a peer whose queue is full waits for that peer only.
pub struct RouterSocket {
    core: SocketCore,
}
common!(RouterSocket, SocketType::Router);
receiving!(RouterSocket);

impl RouterSocket {
    /// The send queue of the peer with this routing id, to answer it
    /// without a lookup per message (see [`PeerSender`](crate::PeerSender)).
    pub fn peer_sender(&self, routing_id: &[u8]) -> Option<crate::PeerSender> {
        self.core.peer_sender(routing_id)
    }

    /// Who the peer with this routing id is, as its security mechanism
    /// established (CURVE: the user id the authenticator gave; NULL:
    /// nobody).
    pub fn user_id(&self, routing_id: &[u8]) -> Option<Bytes> {
        self.core.user_id(routing_id)
    }

    /// Sends `[routing id, frames...]` to that peer, waiting for room in its
    /// queue.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<()> {
        self.core.shared.send_routed(msg.into()).await
    }

    /// Sends without waiting; [`ZmtpError::WouldBlock`](crate::ZmtpError::WouldBlock)
    /// when that peer's queue is full.
    pub fn try_send(&self, msg: impl Into<Message>) -> Result<()> {
        self.try_send_or_return(msg.into()).map_err(|e| match e {
            TrySendError::Full(_) => crate::ZmtpError::WouldBlock,
            TrySendError::Failed(e) => e,
        })
    }

    /// Sends without waiting; when that peer's queue is full the message
    /// comes back in [`TrySendError::Full`].
    #[allow(clippy::result_large_err)]
    pub fn try_send_or_return(&self, msg: Message) -> std::result::Result<(), TrySendError> {
        match self.core.shared.try_send_routed(msg) {
            Ok(r) => r.map_err(TrySendError::Failed),
            Err(full) => match full.msg {
                Some(mut msg) => {
                    // As it was given: routing id first.
                    msg.push_front(full.id);
                    Err(TrySendError::Full(msg))
                }
                None => Err(TrySendError::Failed(crate::ZmtpError::HostUnreachable(
                    full.id,
                ))),
            },
        }
    }
}

/// PUSH: sends round-robin to PULL peers, waiting when all are full.
pub struct PushSocket {
    core: SocketCore,
}
common!(PushSocket, SocketType::Push);

round_robin_sending!(PushSocket);

/// PULL: receives fair-queued from PUSH peers.
pub struct PullSocket {
    core: SocketCore,
}
common!(PullSocket, SocketType::Pull);
receiving!(PullSocket);

/// PUB: sends each message to every subscriber whose subscriptions match its
/// first frame (filtering happens here, on the publishing side). Never
/// waits: a subscriber whose queue is full misses the message, as in
/// libzmq; [`PubSocket::dropped`] counts those.
pub struct PubSocket {
    core: SocketCore,
}
common!(PubSocket, SocketType::Pub);

impl PubSocket {
    /// Publishes a message.
    pub fn send(&self, msg: impl Into<Message>) -> Result<()> {
        self.core.shared.send_fanout(msg.into());
        Ok(())
    }

    /// Messages not delivered to some subscriber because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.core.shared.dropped.load(Ordering::Relaxed)
    }
}

/// SUB: receives what its publishers send for its subscriptions. Starts
/// subscribed to nothing.
pub struct SubSocket {
    core: SocketCore,
}
common!(SubSocket, SocketType::Sub);
receiving!(SubSocket);

impl SubSocket {
    /// Subscribes to messages whose first frame starts with `prefix` (empty:
    /// everything). Subscriptions are counted: two `subscribe` need two
    /// `unsubscribe`.
    pub async fn subscribe(&self, prefix: impl Into<Bytes>) -> Result<()> {
        self.core
            .shared
            .change_subscription(true, prefix.into())
            .await;
        Ok(())
    }

    /// Drops one subscription to `prefix`.
    pub async fn unsubscribe(&self, prefix: impl Into<Bytes>) -> Result<()> {
        self.core
            .shared
            .change_subscription(false, prefix.into())
            .await;
        Ok(())
    }
}
