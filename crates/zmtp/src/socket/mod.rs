//! Tokio sockets over the sans-IO core.
//!
//! Each socket owns a table of connected peers. Every connection runs two
//! tasks: a reader (handshake, then decode and deliver to the socket's
//! bounded inbound queue) and a writer (drains the peer's bounded outbound
//! queue in batches, coalescing a busy connection's writes: `coalesce`).
//! A message sent on an idle connection skips the writer task: its sender
//! writes it (`outlet`).
//! Connect-side endpoints reconnect with exponential
//! backoff. Dropping the socket stops every task it started.

mod cancel;
mod coalesce;
mod deliver;
mod engine;
mod idle;
mod options;
mod outlet;
mod peer_sender;
mod queue;
mod subscriptions;
mod types;

use foldhash::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::endpoint::Endpoint;
use crate::error::{Result, ZmtpError};
use crate::handshake::PeerInfo;
use crate::message::Message;
use crate::socket_type::SocketType;

pub use deliver::{Deliver, Delivery};
pub use options::{PeerId, SocketEvent, SocketOptions};
pub use peer_sender::{PeerSender, TrySendError};
use queue::{Bounds, Budget, PushError, Queue};
use subscriptions::Subscriptions;
pub use types::{DealerSocket, PubSocket, PullSocket, PushSocket, RouterSocket, SubSocket};

type PeerQueue = Arc<Queue<Message>>;

/// How a round-robin send polled without waiting for a peer ended (see
/// [`DealerSocket::poll_send`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundRobin {
    /// The message is queued for a peer.
    Sent,
    /// No peer is connected: the message is still the caller's.
    NoPeer,
}

struct PeerEntry {
    tx: PeerQueue,
    routing_id: Bytes,
    /// Who the security mechanism says the peer is (CURVE: the user id
    /// the server's authenticator gave).
    user_id: Option<Bytes>,
    /// PUB: what this subscriber asked for.
    subs: Subscriptions,
}

#[derive(Default)]
struct PeerTable {
    peers: HashMap<PeerId, PeerEntry>,
    /// Round-robin order for DEALER/PUSH.
    rr: Vec<PeerId>,
    rr_next: usize,
    by_routing_id: HashMap<Bytes, PeerId>,
    /// SUB: our own subscriptions, replayed to every new peer.
    local_subs: Subscriptions,
}

pub(crate) struct Shared {
    kind: SocketType,
    options: SocketOptions,
    table: Mutex<PeerTable>,
    peers_changed: Notify,
    inbound: Queue<Message>,
    /// Where connections hand what they receive, instead of `inbound`.
    delivery: deliver::Slot,
    /// Bytes queued for sending, across peers.
    send_budget: Arc<Budget>,
    events: broadcast::Sender<SocketEvent>,
    cancel: CancellationToken,
    next_peer: AtomicU64,
    /// Connections whose handshake failed (refused keys included).
    handshake_failures: AtomicU64,
    next_routing_id: AtomicU32,
    dropped: AtomicU64,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, PeerTable> {
        // A panic while holding the lock cannot leave the table half
        // updated in a way that matters more than stopping the socket.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, ev: SocketEvent) {
        let _ = self.events.send(ev);
    }

    /// Adds a peer after its handshake. Returns its id, routing id, and the
    /// messages to send it first (SUB: our subscriptions).
    fn register(&self, info: &PeerInfo, tx: PeerQueue) -> Result<(PeerId, Bytes, Vec<Message>)> {
        let mut t = self.table();
        let routing_id = if self.kind == SocketType::Router {
            match &info.identity {
                Some(id) => {
                    if t.by_routing_id.contains_key(id) {
                        return Err(ZmtpError::DuplicateIdentity(id.clone()));
                    }
                    id.clone()
                }
                None => loop {
                    // libzmq: a zero byte, then a 32-bit counter.
                    let n = self.next_routing_id.fetch_add(1, Ordering::Relaxed);
                    let mut id = vec![0u8];
                    id.extend_from_slice(&n.to_be_bytes());
                    let id = Bytes::from(id);
                    if !t.by_routing_id.contains_key(&id) {
                        break id;
                    }
                },
            }
        } else {
            Bytes::new()
        };
        let id = PeerId(self.next_peer.fetch_add(1, Ordering::Relaxed));
        let initial = if self.kind == SocketType::Sub {
            t.local_subs
                .iter()
                .map(|p| subscription_message(true, p))
                .collect()
        } else {
            Vec::new()
        };
        if self.kind == SocketType::Router {
            t.by_routing_id.insert(routing_id.clone(), id);
        }
        t.peers.insert(
            id,
            PeerEntry {
                tx,
                routing_id: routing_id.clone(),
                user_id: info.user_id.clone(),
                subs: Subscriptions::default(),
            },
        );
        t.rr.push(id);
        // Sends waiting for room at another peer look again: this one
        // has room (see `poll_send_round_robin`).
        let round_robin = matches!(self.kind, SocketType::Dealer | SocketType::Push);
        let waiting: Vec<PeerQueue> = if round_robin {
            t.peers.values().map(|e| e.tx.clone()).collect()
        } else {
            Vec::new()
        };
        drop(t);
        for q in waiting {
            q.wake_writers();
        }
        self.peers_changed.notify_waiters();
        Ok((id, routing_id, initial))
    }

    fn unregister(&self, id: PeerId) {
        let mut t = self.table();
        if let Some(entry) = t.peers.remove(&id) {
            // Nobody will send what is left: free it now.
            entry.tx.close_and_clear();
            if self.kind == SocketType::Router {
                t.by_routing_id.remove(&entry.routing_id);
            }
            t.rr.retain(|p| *p != id);
        }
        drop(t);
        self.peers_changed.notify_waiters();
    }

    /// Applies the socket type's receive rules to an incoming message:
    /// returns what to queue for the application, if anything.
    fn filter_incoming(
        &self,
        peer: PeerId,
        routing_id: &Bytes,
        mut msg: Message,
    ) -> Option<Message> {
        match self.kind {
            SocketType::Router => msg.push_front(routing_id.clone()),
            SocketType::Sub => {
                let topic = msg.get(0).cloned().unwrap_or_default();
                if !self.table().local_subs.matches(&topic) {
                    return None;
                }
            }
            SocketType::Pub => {
                // From a subscriber: 0x01 + prefix subscribes, 0x00 cancels.
                if let Some(first) = msg.get(0) {
                    match first.first() {
                        Some(1) => self.peer_subscription(peer, true, first.slice(1..)),
                        Some(0) => self.peer_subscription(peer, false, first.slice(1..)),
                        _ => {}
                    }
                }
                return None;
            }
            SocketType::Push => {
                tracing::debug!(?peer, "PUSH socket ignores an incoming message");
                return None;
            }
            _ => {}
        }
        Some(msg)
    }

    fn peer_subscription(&self, peer: PeerId, subscribe: bool, prefix: Bytes) {
        if self.kind != SocketType::Pub {
            return;
        }
        let mut t = self.table();
        if let Some(p) = t.peers.get_mut(&peer) {
            if subscribe {
                p.subs.add(prefix);
            } else {
                p.subs.remove(&prefix);
            }
        }
    }

    /// Round-robin send with backpressure (DEALER, PUSH). Waits for a peer
    /// when there is none, and for queue space when all are full.
    async fn send_round_robin(&self, msg: Message) -> Result<()> {
        // Fast path: a peer has room (no waiter registration needed).
        let tried = try_round_robin(&mut self.table(), msg);
        match tried {
            Ok(()) => Ok(()),
            // The waiting state lives in a box, so a caller's future (which
            // holds this one) stays small however many calls are pending.
            Err((m, _)) => Box::pin(self.wait_round_robin(m)).await,
        }
    }

    /// The slow path of [`Shared::send_round_robin`]: room at a peer is
    /// waited for by [`Shared::poll_send_round_robin`], a peer by
    /// `peers_changed`.
    async fn wait_round_robin(&self, msg: Message) -> Result<()> {
        let mut slot = Some(msg);
        loop {
            let notified = self.peers_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let polled = tokio::select! {
                r = std::future::poll_fn(|cx| self.poll_send_round_robin(cx, &mut slot)) => r?,
                _ = self.cancel.cancelled() => return Err(ZmtpError::Closed),
            };
            match polled {
                RoundRobin::Sent => return Ok(()),
                RoundRobin::NoPeer => tokio::select! {
                    _ = &mut notified => {}
                    _ = self.cancel.cancelled() => return Err(ZmtpError::Closed),
                },
            }
        }
    }

    /// Sends the message in `msg` to the next peer with room. While every
    /// peer's queue is full, `Pending` with the message back in `msg`,
    /// and `cx` woken when the next peer in turn has room, or goes away, or
    /// another peer arrives. With no peer at all, `NoPeer` (the message
    /// kept): waiting for one is the caller's business (see
    /// [`Shared::wait_round_robin`]). Nothing is allocated while waiting.
    fn poll_send_round_robin(
        &self,
        cx: &mut std::task::Context<'_>,
        msg: &mut Option<Message>,
    ) -> std::task::Poll<Result<RoundRobin>> {
        use std::task::Poll;
        // (a peer that went away between the choice and the push gives the
        // message back: choose again, a few times, then yield)
        for _ in 0..4 {
            let Some(m) = msg.take() else {
                return Poll::Ready(Ok(RoundRobin::Sent));
            };
            if self.cancel.is_cancelled() {
                *msg = Some(m);
                return Poll::Ready(Err(ZmtpError::Closed));
            }
            let next = match try_round_robin(&mut self.table(), m) {
                Ok(()) => return Poll::Ready(Ok(RoundRobin::Sent)),
                Err((m, next)) => {
                    *msg = Some(m);
                    next
                }
            };
            let Some(q) = next else {
                return Poll::Ready(Ok(RoundRobin::NoPeer));
            };
            match q.poll_push(cx, msg) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(RoundRobin::Sent)),
                Poll::Ready(Err(m)) => *msg = Some(m),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    #[allow(clippy::result_large_err)]
    fn try_send_round_robin(&self, msg: Message) -> std::result::Result<(), Message> {
        let mut t = self.table();
        try_round_robin(&mut t, msg).map_err(|(m, _)| m)
    }

    /// ROUTER send: the first frame names the peer.
    async fn send_routed(&self, msg: Message) -> Result<()> {
        match self.try_send_routed(msg) {
            Err(RoutedFull { queue, id, msg }) => match msg {
                // The waiting state lives in a box (see send_round_robin).
                Some(msg) => Box::pin(self.wait_routed(queue, id, msg)).await,
                None => Err(ZmtpError::HostUnreachable(id)),
            },
            Ok(r) => r,
        }
    }

    /// ROUTER send without waiting. `Err` carries back a message that found
    /// its peer's queue full (`msg: Some`) or its peer gone (`None`).
    #[allow(clippy::result_large_err)]
    fn try_send_routed(&self, mut msg: Message) -> std::result::Result<Result<()>, RoutedFull> {
        let Some(id) = msg.pop_front() else {
            return Ok(Err(ZmtpError::EmptyMessage));
        };
        let q = {
            let t = self.table();
            match t.by_routing_id.get(&id).and_then(|p| t.peers.get(p)) {
                Some(e) => e.tx.clone(),
                None => return Ok(Err(ZmtpError::HostUnreachable(id))),
            }
        };
        match q.try_push(msg) {
            Ok(()) => Ok(Ok(())),
            Err(PushError::Closed(_)) => Err(RoutedFull {
                queue: q,
                id,
                msg: None,
            }),
            Err(PushError::Full(msg)) => Err(RoutedFull {
                queue: q,
                id,
                msg: Some(msg),
            }),
        }
    }

    async fn wait_routed(&self, q: PeerQueue, id: Bytes, msg: Message) -> Result<()> {
        tokio::select! {
            r = q.push(msg) => r.map_err(|_| ZmtpError::HostUnreachable(id)),
            _ = self.cancel.cancelled() => Err(ZmtpError::Closed),
        }
    }

    /// PUB send: to every matching subscriber whose queue has room; the
    /// others miss this message (counted in `dropped`).
    fn send_fanout(&self, msg: Message) {
        let topic = msg.first_frame().unwrap_or_default();
        let t = self.table();
        for p in t.peers.values() {
            if p.subs.matches(&topic) && p.tx.try_push(msg.clone()).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// SUB: changes our subscriptions and tells every peer.
    async fn change_subscription(&self, subscribe: bool, prefix: Bytes) {
        let txs: Vec<_> = {
            let mut t = self.table();
            let changed = if subscribe {
                t.local_subs.add(prefix.clone());
                true
            } else {
                t.local_subs.remove(&prefix)
            };
            if !changed {
                return;
            }
            t.peers.values().map(|p| p.tx.clone()).collect()
        };
        let msg = subscription_message(subscribe, &prefix);
        for tx in txs {
            // A peer that goes away meanwhile simply misses it.
            let _ = tx.push(msg.clone()).await;
        }
    }
}

/// A routed message that could not be queued without waiting.
struct RoutedFull {
    queue: PeerQueue,
    id: Bytes,
    msg: Option<Message>,
}

/// Tries each peer once, starting at the round-robin cursor. On failure
/// gives the message back with the sender of the peer to wait on.
#[allow(clippy::result_large_err)]
fn try_round_robin(
    t: &mut PeerTable,
    mut msg: Message,
) -> std::result::Result<(), (Message, Option<PeerQueue>)> {
    let n = t.rr.len();
    for i in 0..n {
        let idx = (t.rr_next + i) % n;
        if let Some(entry) = t.peers.get(&t.rr[idx]) {
            match entry.tx.try_push(msg) {
                Ok(()) => {
                    t.rr_next = (idx + 1) % n;
                    return Ok(());
                }
                Err(PushError::Full(m) | PushError::Closed(m)) => msg = m,
            }
        }
    }
    let next = if n == 0 {
        None
    } else {
        let idx = t.rr_next % n;
        t.rr_next = (idx + 1) % n;
        t.peers.get(&t.rr[idx]).map(|e| e.tx.clone())
    };
    Err((msg, next))
}

fn subscription_message(subscribe: bool, prefix: &[u8]) -> Message {
    let mut b = Vec::with_capacity(prefix.len() + 1);
    b.push(u8::from(subscribe));
    b.extend_from_slice(prefix);
    Message::from(b)
}

/// What every socket type shares: the task group, the inbound queue.
pub(crate) struct SocketCore {
    shared: Arc<Shared>,
    /// The accept loops [`SocketCore::bind`] started: each owns its
    /// listener, released when the loop ends ([`SocketCore::close`]). An
    /// async lock: `close` holds it until the loops have ended, so a second
    /// `close` at the same time returns no sooner than the first.
    listeners: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    _guard: tokio_util::sync::DropGuard,
}

impl SocketCore {
    fn new(kind: SocketType, options: SocketOptions) -> Self {
        let inbound = Queue::new(
            Bounds {
                items: options.recv_hwm,
                bytes: options.recv_hwm_bytes,
            },
            None,
        );
        let send_budget = Budget::new(options.send_budget_bytes);
        let (events, _) = broadcast::channel(1024);
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            kind,
            options,
            table: Mutex::new(PeerTable::default()),
            peers_changed: Notify::new(),
            inbound,
            delivery: deliver::Slot::default(),
            send_budget,
            events,
            cancel: cancel.clone(),
            next_peer: AtomicU64::new(1),
            handshake_failures: AtomicU64::new(0),
            next_routing_id: AtomicU32::new(rand::random()),
            dropped: AtomicU64::new(0),
        });
        SocketCore {
            shared,
            listeners: tokio::sync::Mutex::new(Vec::new()),
            _guard: cancel.drop_guard(),
        }
    }

    async fn bind(&self, endpoint: &str) -> Result<Endpoint> {
        // (a closed socket would release the endpoint at once: say so)
        if self.shared.cancel.is_cancelled() {
            return Err(ZmtpError::Closed);
        }
        let ep: Endpoint = endpoint.parse()?;
        let (listener, bound) = crate::transport::Listener::bind(&ep).await?;
        // (held from here: a `close` either waits for this loop or, done
        // first, is seen below)
        let mut listeners = self.listeners.lock().await;
        if self.shared.cancel.is_cancelled() {
            // Closed while binding: release the endpoint, never listened on.
            drop(listener);
            return Err(ZmtpError::Closed);
        }
        tracing::debug!(socket = %self.shared.kind, endpoint = %bound, "listening");
        self.shared.emit(SocketEvent::Listening {
            endpoint: bound.clone(),
        });
        let task = tokio::spawn(engine::accept_loop(self.shared.clone(), listener));
        listeners.retain(|t| !t.is_finished());
        listeners.push(task);
        Ok(bound)
    }

    /// Stops every task of the socket (as dropping it does), and returns
    /// once the endpoints it bound are released.
    async fn close(&self) {
        self.shared.cancel.cancel();
        // What arrived can still be read; then `recv` fails.
        self.shared.inbound.close();
        let mut listeners = self.listeners.lock().await;
        // (each loop forgotten only once it ended: a `close` dropped while
        // it waits leaves the rest for the next one)
        while let Some(task) = listeners.last_mut() {
            // (a loop that panicked released its listener too)
            let _ = task.await;
            listeners.pop();
        }
    }

    async fn connect(&self, endpoint: &str) -> Result<()> {
        if self.shared.cancel.is_cancelled() {
            return Err(ZmtpError::Closed);
        }
        let ep: Endpoint = endpoint.parse()?;
        if let Endpoint::Tcp { host, .. } = &ep {
            if host == "*" {
                return Err(ZmtpError::InvalidEndpoint {
                    endpoint: endpoint.to_owned(),
                    reason: "cannot connect to *",
                });
            }
        }
        tokio::spawn(engine::connect_loop(self.shared.clone(), ep));
        Ok(())
    }

    async fn recv(&self) -> Result<Message> {
        self.shared.inbound.pop().await.ok_or(ZmtpError::Closed)
    }

    fn try_recv(&self) -> Result<Option<Message>> {
        Ok(self.shared.inbound.try_pop())
    }

    fn deliver_to(&self, d: Arc<dyn Deliver>) -> Delivery {
        deliver::install(&self.shared, d)
    }

    fn monitor(&self) -> broadcast::Receiver<SocketEvent> {
        self.shared.events.subscribe()
    }

    fn peer_count(&self) -> usize {
        self.shared.table().peers.len()
    }

    fn handshake_failures(&self) -> u64 {
        self.shared.handshake_failures.load(Ordering::Relaxed)
    }

    /// The user id of the ROUTER peer with this routing id.
    fn user_id(&self, routing_id: &[u8]) -> Option<Bytes> {
        let t = self.shared.table();
        let peer = t.by_routing_id.get(routing_id)?;
        t.peers.get(peer)?.user_id.clone()
    }

    fn queued_outbound(&self) -> usize {
        self.shared.table().peers.values().map(|p| p.tx.len()).sum()
    }

    fn queued_outbound_bytes(&self) -> usize {
        self.shared.send_budget.used()
    }

    /// The send queue of the ROUTER peer with this routing id.
    fn peer_sender(&self, routing_id: &[u8]) -> Option<PeerSender> {
        let t = self.shared.table();
        let peer = t.by_routing_id.get(routing_id)?;
        let entry = t.peers.get(peer)?;
        Some(PeerSender {
            queue: entry.tx.clone(),
            routing_id: entry.routing_id.clone(),
        })
    }
}
