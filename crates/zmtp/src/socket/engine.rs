//! The per-connection tasks: handshake, reader, writer; and the accept and
//! reconnect loops.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cancel::CancelWatch;
use super::coalesce::yield_to_queued;
use super::idle::IdleTimer;
use super::outlet::Outlet;
use super::queue::{Bounds, Queue};
use super::{Shared, SocketEvent};
use crate::codec::{Decoder, Incoming};
use crate::command::Command;
use crate::endpoint::Endpoint;
use crate::error::{Result, ZmtpError};
use crate::handshake::{zap_status, Handshake, HandshakeFailure, Session};
use crate::log::CONNECTION_LOG;
use crate::message::Message;
use crate::socket_type::SocketType;
use crate::transport::{self, BoxRead, BoxWrite, Connection, Listener};

/// Read at least this much at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Never pre-allocate more than this for one frame in advance.
const MAX_READ_RESERVE: usize = 4 * 1024 * 1024;
/// Stop batching outgoing messages past this many buffered bytes.
const WRITE_BATCH: usize = 256 * 1024;
/// Bytes a writer takes off its queue at once (at least one message):
/// what it holds outside the queue's byte limit.
const WRITE_TAKE_BYTES: usize = 4 * 1024 * 1024;

/// First pause after a failed accept; it doubles while accepts keep failing.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause after failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(conn) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    tokio::spawn(run_connection(shared.clone(), conn, None));
                }
                Err(e) => {
                    // EMFILE and friends: back off (exponentially, while
                    // it lasts) instead of spinning, and say so rarely.
                    if let Some(suppressed) = CONNECTION_LOG.admit("accept failed") {
                        tracing::warn!(error = %e, retry_in = ?backoff, suppressed, "accept failed");
                    }
                    tokio::select! {
                        _ = shared.cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }
}

/// Consecutive handshakes of a connect loop that the server closed in the
/// middle of the security handshake before this many are reported as an
/// authentication failure (one alone may be a server going down).
const SILENT_REFUSALS: u32 = 2;

pub(super) async fn connect_loop(shared: Arc<Shared>, ep: Endpoint) {
    let base = shared.options.reconnect_interval;
    let max = shared.options.reconnect_interval_max.max(base);
    let mut delay = base;
    let mut silent_refusals = 0u32;
    loop {
        let attempt = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = transport::connect(&ep) => r,
        };
        match attempt {
            Ok(conn) => {
                if run_connection(shared.clone(), conn, Some(&mut silent_refusals)).await {
                    delay = base;
                }
            }
            Err(e) => {
                silent_refusals = 0;
                tracing::debug!(endpoint = %ep, error = %e, retry_in = ?delay, "connect failed");
                shared.emit(SocketEvent::ConnectFailed {
                    endpoint: ep.clone(),
                    reason: e.to_string(),
                    retry_in: delay,
                });
            }
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(max);
    }
}

/// Runs one connection to its end. Returns whether the handshake completed
/// (the connect loop resets its backoff then). `silent_refusals` (connect
/// side) counts the consecutive handshakes the server closed in the middle
/// of the security handshake. Accepted connections (`None`) that stay
/// silent for the socket's idle timeout are closed.
async fn run_connection(
    shared: Arc<Shared>,
    conn: Connection,
    silent_refusals: Option<&mut u32>,
) -> bool {
    let accepted = silent_refusals.is_none();
    let Connection {
        mut read,
        mut write,
        remote,
    } = conn;
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let session = tokio::select! {
        _ = shared.cancel.cancelled() => return false,
        r = tokio::time::timeout(
            shared.options.handshake_timeout,
            handshake(&shared, &mut read, &mut write, &mut input),
        ) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return handshake_failed(&shared, &remote, e, silent_refusals),
            Err(_) => {
                return handshake_failed(&shared, &remote, ZmtpError::HandshakeTimeout, silent_refusals)
            }
        },
    };
    if let Some(n) = silent_refusals {
        *n = 0;
    }
    let queue = Arc::new(Queue::new(
        Bounds {
            items: shared.options.send_hwm,
            bytes: shared.options.send_hwm_bytes,
        },
        Some(shared.send_budget.clone()),
    ));
    let (peer, routing_id, initial) = match shared.register(&session.peer, queue.clone()) {
        Ok(r) => r,
        Err(e) => return handshake_failed(&shared, &remote, e, None),
    };
    let Session {
        peer: info,
        encoder,
        decoder,
    } = session;
    tracing::debug!(socket = %shared.kind, %remote, ?peer, peer_type = %info.socket_type, "connected");
    let routing_id_opt = (shared.kind == SocketType::Router).then(|| routing_id.clone());
    shared.emit(SocketEvent::Connected {
        peer,
        remote: remote.clone(),
        routing_id: routing_id_opt.clone(),
        socket_type: info.socket_type,
        user_id: info.user_id.clone(),
    });

    let conn_cancel = shared.cancel.child_token();
    let (ctrl_tx, ctrl_rx) = mpsc::channel(16);
    let outlet = Arc::new(Outlet::new(write, encoder));
    queue.set_direct(outlet.clone());
    let writer = tokio::spawn(writer(
        outlet.clone(),
        queue.clone(),
        ctrl_rx,
        initial,
        conn_cancel.clone(),
    ));
    let read_result = reader(
        &shared,
        Reading {
            read,
            input,
            decoder,
            idle_timeout: shared.options.idle_timeout.filter(|_| accepted),
            outlet,
        },
        peer,
        &routing_id,
        ctrl_tx,
        &queue,
        &conn_cancel,
    )
    .await;
    conn_cancel.cancel();
    shared.unregister(peer);
    let write_result = writer.await.unwrap_or(Ok(()));
    let reason = match (read_result, write_result) {
        (Err(e), _) | (Ok(()), Err(e)) => e,
        (Ok(()), Ok(())) => ZmtpError::Closed,
    };
    match &reason {
        ZmtpError::ConnectionClosed | ZmtpError::Closed | ZmtpError::Io(_) => {
            tracing::debug!(socket = %shared.kind, %remote, ?peer, %reason, "disconnected")
        }
        ZmtpError::IdleTimeout(_) => {
            tracing::debug!(socket = %shared.kind, %remote, ?peer, %reason, "closing idle connection")
        }
        _ => {
            if let Some(suppressed) = CONNECTION_LOG.admit("closing connection") {
                tracing::warn!(socket = %shared.kind, %remote, ?peer, %reason, suppressed, "closing connection");
            }
        }
    }
    shared.emit(SocketEvent::Disconnected {
        peer,
        remote,
        routing_id: routing_id_opt,
        reason: reason.to_string(),
    });
    true
}

fn handshake_failed(
    shared: &Shared,
    remote: &str,
    e: ZmtpError,
    silent_refusals: Option<&mut u32>,
) -> bool {
    shared
        .handshake_failures
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mechanism = shared.options.security.name();
    let mut kind = HandshakeFailure::of(&e, mechanism);
    let mut reason = match &e {
        ZmtpError::PeerError(r) => match zap_status(r) {
            Some(code) => format!("the peer's authenticator refused us (ZAP status {code})"),
            None if kind == HandshakeFailure::Authentication => format!("refused by the peer: {r}"),
            None => e.to_string(),
        },
        _ => e.to_string(),
    };
    match (&e, silent_refusals) {
        (ZmtpError::ClosedDuringSecurityHandshake { mechanism }, Some(n)) => {
            *n += 1;
            if *n >= SILENT_REFUSALS {
                kind = HandshakeFailure::Authentication;
                reason = format!(
                    "the server closed the connection during the {mechanism} handshake, {n} times in a row: it could not open our HELLO (the wrong server key?) or refused us"
                );
            }
        }
        (_, Some(n)) => *n = 0,
        (_, None) => {}
    }
    if let Some(suppressed) = CONNECTION_LOG.admit("handshake failed") {
        tracing::warn!(socket = %shared.kind, %remote, %reason, suppressed, "handshake failed, closing connection");
    }
    shared.emit(SocketEvent::HandshakeFailed {
        remote: remote.to_owned(),
        reason,
        kind,
    });
    false
}

async fn handshake(
    shared: &Shared,
    read: &mut BoxRead,
    write: &mut BoxWrite,
    input: &mut BytesMut,
) -> Result<Session> {
    let identity = shared.options.identity.clone().unwrap_or_default();
    Handshake::new(shared.kind, identity, shared.options.security.mechanism())
        .run(read, write, input, shared.options.limits)
        .await
}

/// A connection's read side after its handshake.
struct Reading {
    read: BoxRead,
    /// What was read but not decoded yet.
    input: BytesMut,
    decoder: Decoder,
    /// Close the connection when nothing arrives for this long.
    idle_timeout: Option<Duration>,
    /// The connection's write side (what deliveries send leaves through
    /// it: see `Outlet::cork`).
    outlet: Arc<Outlet>,
}

/// Messages a connection's reader decodes and hands on before it lets
/// other tasks run (then it decodes the rest of what it read). Without a
/// limit, a read of 256 requests was served whole before the connection's
/// writer sent the first reply, and the two sides took turns (half idle);
/// delivering 128 at a time made 256 calls in flight on one connection
/// 1.8× faster with a thread per side, level on a shared two-worker
/// runtime. Above the default stream window (100 items), so that a
/// stream's burst is delivered whole (smaller limits cost streams up to
/// 40%): `bench-results/2026-12-04-callpath.md`.
pub(crate) const DELIVER_CHUNK: usize = 128;

/// The first chunk of a read: a read's chunks start at this size and
/// double up to [`DELIVER_CHUNK`]. The replies a chunk's deliveries send
/// leave in one write at its end (see `Outlet::uncork`), and between
/// chunks the reader lets other tasks run when the chunk sent something or
/// the connection's writer has something to send (a task woken here waits
/// in this worker's next-task slot, where no other worker can take it,
/// until the reader yields). So the first replies of a read leave at once, and a large
/// read still goes out in large writes. With 16 calls in flight on one
/// connection: 4 → 1.36× the calls/s of one 128-message chunk on two
/// workers, 2.2× with a thread per side; level at 256 in flight and on
/// streams (whose reads make no replies, so the reader does not yield):
/// `bench-results/2026-12-04-delivery.md`.
pub(crate) const FIRST_CHUNK: usize = 4;

async fn reader(
    shared: &Shared,
    reading: Reading,
    peer: super::PeerId,
    routing_id: &Bytes,
    ctrl: mpsc::Sender<Command>,
    out: &Queue<Message>,
    cancel: &CancellationToken,
) -> Result<()> {
    let Reading {
        mut read,
        mut input,
        mut decoder,
        idle_timeout,
        outlet,
    } = reading;
    let mut batch = VecDeque::new();
    // (made once: each read waits on them)
    let mut cancelled = CancelWatch::new(cancel.clone());
    let mut idle = idle_timeout.map(IdleTimer::new);
    // This read's next chunk, and what was delivered since the reader last
    // let other tasks run (see DELIVER_CHUNK and FIRST_CHUNK).
    let mut chunk = FIRST_CHUNK;
    let mut unyielded = 0usize;
    loop {
        let mut decoded = 0usize;
        while decoded < chunk {
            let Some(item) = decoder.decode(&mut input)? else {
                break;
            };
            match item {
                Incoming::Message(m) => {
                    decoded += 1;
                    if let Some(m) = shared.filter_incoming(peer, routing_id, m) {
                        batch.push_back(m);
                    }
                }
                ping @ Incoming::Ping { .. } => {
                    if let Some(pong) = ping.reply() {
                        if ctrl.try_send(pong).is_err() {
                            tracing::debug!(?peer, "dropping PONG: control queue full");
                        } else {
                            // (the writer takes commands as it wakes)
                            out.kick();
                        }
                    }
                }
                Incoming::Pong { .. } => {}
                Incoming::Subscribe(t) => shared.peer_subscription(peer, true, t),
                Incoming::Cancel(t) => shared.peer_subscription(peer, false, t),
            }
        }
        // A delivery takes what it can here, on this task.
        let mut answered = false;
        if !batch.is_empty() {
            if let Some(d) = shared.delivery.current() {
                // (what the delivery sends on this connection leaves in
                // one write at its end: see `Outlet::uncork`)
                outlet.cork(batch.len());
                std::future::poll_fn(|cx| {
                    d.deliver(&mut batch, cx);
                    std::task::Poll::Ready(())
                })
                .await;
                answered = outlet.uncork(out);
            }
        }
        // Hand over everything else this read produced at once; while the
        // application's queue is full we stop reading (TCP backpressure).
        if !batch.is_empty() {
            tokio::select! {
                biased;
                () = poll_fn(|cx| cancelled.poll_cancelled(cx)) => return Ok(()),
                r = shared.inbound.push_all(&mut batch) => r.map_err(|()| ZmtpError::Closed)?,
            }
        }
        if decoded == chunk {
            // More of this read may wait to be decoded: let the tasks this
            // chunk woke (the connection's writer, with the replies) run
            // first, so the peer gets work while we decode the rest.
            unyielded += decoded;
            if unyielded >= DELIVER_CHUNK || answered || out.len() > 0 {
                tokio::task::yield_now().await;
                unyielded = 0;
            }
            chunk = (chunk * 2).min(DELIVER_CHUNK);
            continue;
        }
        chunk = FIRST_CHUNK;
        unyielded = 0;
        let need = decoder.bytes_needed(&input).min(MAX_READ_RESERVE);
        input.reserve(need.max(READ_CHUNK));
        // (the silence counts from here, as a timeout around the read would:
        // not while the application's queue held the reader back)
        if let Some(t) = &mut idle {
            t.restart();
        }
        // (biased, the cancellation first: it costs a flag's check, and a
        // peer that keeps sending cannot hold it off)
        let n = tokio::select! {
            biased;
            () = poll_fn(|cx| cancelled.poll_cancelled(cx)) => return Ok(()),
            r = read.read_buf(&mut input) => r?,
            limit = poll_fn(|cx| idle.as_mut().map_or(Poll::Pending, |t| t.poll_expired(cx))) => {
                return Err(ZmtpError::IdleTimeout(limit));
            }
        };
        if n == 0 {
            return Err(ZmtpError::ConnectionClosed);
        }
    }
}

async fn writer(
    outlet: Arc<Outlet>,
    queue: Arc<Queue<Message>>,
    mut ctrl: mpsc::Receiver<Command>,
    initial: Vec<Message>,
    cancel: CancellationToken,
) -> Result<()> {
    let mut cancelled = CancelWatch::new(cancel.clone());
    let r = tokio::select! {
        biased;
        () = poll_fn(|cx| cancelled.poll_cancelled(cx)) => Ok(()),
        r = write_loop(&outlet, &queue, &mut ctrl, initial) => r,
    };
    // Whatever happened, make the reader stop too; senders stop writing.
    cancel.cancel();
    let mut write = {
        let mut side = outlet.lock();
        side.closed = true;
        std::mem::replace(&mut side.write, Box::new(tokio::io::sink()))
    };
    let _ = write.shutdown().await;
    r
}

/// Messages taken from the queue per batch.
const BATCH_MSGS: usize = 1024;

async fn write_loop(
    outlet: &Outlet,
    queue: &Queue<Message>,
    ctrl: &mut mpsc::Receiver<Command>,
    initial: Vec<Message>,
) -> Result<()> {
    {
        let mut side = outlet.lock();
        let side = &mut *side;
        for m in &initial {
            side.encoder.encode_message(m, &mut side.buf)?;
        }
    }
    let mut batch = Vec::with_capacity(64);
    loop {
        if outlet.lock().buf.is_empty() {
            // (control commands, rare, kick the queue instead of being
            // waited for: they are taken below; so does a sender that
            // wrote on its own task and left bytes or an error here, see
            // `Outlet`)
            if !queue
                .pop_batch(&mut batch, BATCH_MSGS, WRITE_TAKE_BYTES)
                .await
            {
                // The peer was removed from the socket: we are done.
                return Ok(());
            }
        }
        // A few messages, more coming: let the tasks about to queue them
        // run first, so they leave in one write (see `Coalesce`).
        let taken = batch.len();
        if outlet.lock().coalesce.should_wait(taken, Instant::now()) {
            yield_to_queued().await;
        }
        {
            let mut side = outlet.lock();
            let side = &mut *side;
            if let Some(e) = side.failed.take() {
                return Err(e);
            }
            for m in batch.drain(..) {
                side.encoder.encode_message(&m, &mut side.buf)?;
            }
            while side.buf.len() < WRITE_BATCH {
                match queue.try_pop() {
                    Some(m) => side.encoder.encode_message(&m, &mut side.buf)?,
                    None => break,
                }
            }
            while let Ok(c) = ctrl.try_recv() {
                side.encoder.encode_command(&c, &mut side.buf)?;
            }
        }
        let start = Instant::now();
        outlet.flush().await?;
        let end = Instant::now();
        outlet
            .lock()
            .coalesce
            .wrote(taken, queue.len() > 0, start, end);
    }
}
