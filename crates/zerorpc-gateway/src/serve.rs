//! The HTTP/1.1 server loop: hyper under the gateway's router, with what
//! `axum::serve` lacks: a cap on open connections, a deadline for each
//! request head, for idle keep-alive connections and for stalled writes,
//! and accept errors that back off.
//!
//! Each connection is watched: between requests it may stay silent for
//! the idle timeout; once the next request's first byte arrives (or from
//! the accept, for a new connection) its head must be complete within the
//! header timeout; while a response cannot send a byte (the client stopped
//! reading) the write timeout runs. A connection past a deadline is
//! closed. The request body's own deadline is the handler's (it answers
//! 408).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// What bounds a connection (from [`crate::GatewayOptions`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `signal`, then lets open requests
/// finish.
pub(crate) async fn serve<F>(
    router: Router,
    listener: TcpListener,
    limits: ConnLimits,
    signal: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // (connections wait for `signal_tx.closed()`: every receiver gone)
    let (signal_tx, signal_rx) = watch::channel(());
    // (the loop waits for `close_tx.closed()`: every connection gone)
    let (close_tx, close_rx) = watch::channel(());
    let mut signal = pin!(signal);
    let mut backoff = Duration::ZERO;
    loop {
        // At the cap, stop accepting: the excess waits in the listen
        // backlog (and the kernel's SYN queue) rather than costing a task
        // and a file descriptor here.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            () = &mut signal => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut signal => break,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => {
                backoff = Duration::ZERO;
                tcp
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // (out of file descriptors, say: wait, doubling up to 1 s,
                // so that this logs at most about once a second)
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                tracing::warn!("cannot accept an HTTP connection ({e}); retrying in {backoff:?}");
                drop(slot);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => continue,
                    () = &mut signal => break,
                }
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let router = router.clone();
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            connection(tcp, router, limits, signal_tx).await;
            drop(close_rx);
            drop(slot);
        });
    }
    drop(listener);
    drop(signal_rx);
    drop(close_rx);
    close_tx.closed().await;
    Ok(())
}

/// Errors of one incoming connection, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    tcp: TcpStream,
    router: Router,
    limits: ConnLimits,
    signal_tx: watch::Sender<()>,
) {
    let watch = Arc::new(Watch::new());
    let io = TokioIo::new(Watched {
        inner: tcp,
        watch: watch.clone(),
    });
    let w = watch.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let guard = InFlight::start(w.clone());
        let router = router.clone();
        async move {
            let Ok(resp) = router.oneshot(req.map(Body::new)).await;
            Ok::<_, Infallible>(resp.map(|body| Guarded {
                body,
                _guard: guard,
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc);
    let mut conn = pin!(conn);
    let mut stop = pin!(signal_tx.closed());
    let mut stopping = false;
    // One timer, moved only when it fires: to the next deadline or to a
    // re-check one shortest timeout later, whichever is sooner. Any
    // deadline that starts after a check ends at least that long after
    // it, so none is missed, and requests cost the timer nothing.
    let mut timer = pin!(tokio::time::sleep_until(watch.wake_at(&limits)));
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("HTTP connection ended: {e}");
                }
                return;
            }
            () = &mut stop, if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = timer.as_mut() => {
                if let Some(why) = watch.expired(&limits) {
                    tracing::debug!("closing an HTTP connection: {why}");
                    return;
                }
                timer.as_mut().reset(watch.wake_at(&limits));
            }
        }
    }
}

/// What a connection is doing, as its deadlines need it.
struct Watch {
    state: Mutex<State>,
}

struct State {
    /// Requests whose responses are not finished.
    in_flight: usize,
    /// Requests answered.
    served: u64,
    /// When the connection was accepted or last became idle.
    since: Instant,
    /// The first byte read since it became idle (a request head coming).
    first_byte: Option<Instant>,
    /// Since when a write has been waiting for the client to read.
    write_stalled: Option<Instant>,
}

impl Watch {
    fn new() -> Self {
        Watch {
            state: Mutex::new(State {
                in_flight: 0,
                served: 0,
                since: Instant::now(),
                first_byte: None,
                write_stalled: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next deadline, and what it is for.
    fn next(&self, l: &ConnLimits) -> Option<(Instant, &'static str)> {
        let s = self.state();
        let write = s.write_stalled.map(|t| {
            (
                t + l.write_timeout,
                "the client stopped reading its response",
            )
        });
        let read = if s.in_flight > 0 {
            None
        } else if s.served == 0 {
            Some((
                s.since + l.header_timeout,
                "no complete request head in time",
            ))
        } else if let Some(t) = s.first_byte {
            Some((t + l.header_timeout, "no complete request head in time"))
        } else {
            Some((s.since + l.idle_timeout, "idle"))
        };
        match (write, read) {
            (Some(w), Some(r)) => Some(if w.0 <= r.0 { w } else { r }),
            (w, r) => w.or(r),
        }
    }

    /// When to look again: the next deadline, or one shortest timeout
    /// from now if that is sooner.
    fn wake_at(&self, l: &ConnLimits) -> Instant {
        let recheck = Instant::now() + l.header_timeout.min(l.idle_timeout).min(l.write_timeout);
        self.next(l).map_or(recheck, |(t, _)| t.min(recheck))
    }

    /// Why the connection is past a deadline, if it is.
    fn expired(&self, l: &ConnLimits) -> Option<&'static str> {
        self.next(l)
            .filter(|(t, _)| *t <= Instant::now())
            .map(|(_, why)| why)
    }

    fn on_read(&self) {
        let mut s = self.state();
        if s.in_flight == 0 && s.first_byte.is_none() {
            s.first_byte = Some(Instant::now());
        }
    }

    fn on_write(&self, pending: bool) {
        let mut s = self.state();
        match (pending, s.write_stalled.is_some()) {
            (true, false) => s.write_stalled = Some(Instant::now()),
            (false, true) => s.write_stalled = None,
            _ => {}
        }
    }
}

/// One request until its response is finished (or dropped).
struct InFlight(Arc<Watch>);

impl InFlight {
    fn start(w: Arc<Watch>) -> Self {
        {
            let mut s = w.state();
            s.in_flight += 1;
            s.first_byte = None;
        }
        InFlight(w)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.served += 1;
            s.since = Instant::now();
            s.first_byte = None;
        }
    }
}

/// A response body that ends its request's [`InFlight`] when dropped.
struct Guarded {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling its [`Watch`] of reads and stalled writes.
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.on_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch.on_write(r.is_pending());
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch.on_write(r.is_pending());
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch.on_write(r.is_pending());
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
