//! Driving a call's channel: inline by its caller, or by a task;
//! flushing requests under back-pressure; reading replies and errors.

use super::*;

/// A call's channel, its connection and its mailbox: driven by its
/// caller (see [`Client::call`]), or by a task for a stream (see
/// [`drive_call`]). Its channel is registered with its connection until
/// it is dropped.
pub(super) struct InlineCall {
    pub(super) driver: Driver,
    pub(super) out: ToServer,
    pub(super) net_rx: MailReceiver<Received>,
}

impl Drop for InlineCall {
    fn drop(&mut self) {
        // (closed first, so that its sender's drop does not wake the
        // caller's task in its own poll: see `MailReceiver::close`; and
        // the sender dropped after the lock)
        self.net_rx.close();
        let tx = self.out.conn.channels().remove(self.driver.ch.id());
        drop(tx);
    }
}

/// The server's end of a call: the connection's DEALER, and a control event
/// waiting for room (heartbeats and credit; see [`Outlet::start_send`]).
pub(super) struct ToServer {
    pub(super) conn: Arc<Conn>,
    /// The connection's drop count when the channel opened (see
    /// [`Conn::closed_error`]).
    pub(super) drops_at_open: u64,
    pub(super) sending: Option<Box<Waiting>>,
}

impl ToServer {
    /// Moves the channel `id` to another connection (its request had not
    /// left).
    pub(super) fn move_to(&mut self, to: &Arc<Conn>, id: &MessageId) {
        if let Some(tx) = self.conn.channels().remove(id) {
            // (its deadline counted on the other connection's timers: the
            // driver stores it anew)
            tx.timer().store(NO_DEADLINE, Ordering::SeqCst);
            to.channels().insert(id.clone(), tx);
        }
        self.conn = to.clone();
        self.drops_at_open = to.drops.load(Ordering::SeqCst);
    }
}

impl InlineCall {
    /// Sends a request that found no room when the channel opened (see
    /// [`wait_send`]), within the call's timeout and deadline (counted
    /// from its start).
    pub(super) async fn send_request(&mut self, inner: &Inner, msg: Message) -> Result<(), Error> {
        let id = self.driver.ch.id().clone();
        let send = wait_send(inner, &mut self.out, &id, msg);
        match self.driver.ch.timeout() {
            Some(at) => match tokio::time::timeout_at(at.into(), send).await {
                Ok(r) => r?,
                Err(_) => return Err(self.expired(at)),
            },
            None => send.await?,
        }
        self.driver.ch.request_sent(Instant::now().into_std());
        Ok(())
    }

    /// The error of a call whose request did not leave by `at`, its
    /// timeout or its deadline, whichever the channel says.
    fn expired(&mut self, at: std::time::Instant) -> Error {
        match self.driver.ch.handle_timeout(at) {
            Err(e) => channel_error(e),
            // (not reached: the channel's next time is one of the two)
            Ok(()) => Error::Timeout(Duration::ZERO),
        }
    }

    /// Polls the sending of a request that found no room when the channel
    /// opened, without allocating: `Ready(Ok(true))` once it has left,
    /// `Ready(Ok(false))` when the connection has no server (to be waited
    /// for with [`InlineCall::send_request`]).
    fn poll_request(
        &mut self,
        cx: &mut Context<'_>,
        msg: &mut Option<Message>,
    ) -> Poll<Result<bool, Error>> {
        match std::task::ready!(self.out.conn.dealer.poll_send(cx, msg)) {
            Ok(zmtp::RoundRobin::Sent) => {
                self.driver.ch.request_sent(Instant::now().into_std());
                Poll::Ready(Ok(true))
            }
            Ok(zmtp::RoundRobin::NoPeer) => Poll::Ready(Ok(false)),
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }

    /// Drives the channel until the next reply or stream item. The caller
    /// tells the channel when it has consumed an item
    /// ([`Channel::consumed`]), which grants credit.
    pub(super) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Received, Error>> {
        loop {
            // A send waiting for room (`Pending`) does not stop the reading.
            if let Poll::Ready(Err(e)) = self.driver.poll_flush(&mut self.out, cx) {
                return Poll::Ready(Err(e));
            }
            match self.net_rx.poll_recv(cx) {
                Poll::Ready(Some(ev)) => {
                    if let Some(app) = self.driver.on_received(ev).map_err(channel_error)? {
                        return Poll::Ready(Ok(app));
                    }
                    continue;
                }
                Poll::Ready(None) => {
                    let e = self.out.conn.closed_error(self.out.drops_at_open);
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {}
            }
            let timer = self
                .driver
                .poll_timer(self.net_rx.timer(), &self.out.conn.timers);
            std::task::ready!(timer).map_err(channel_error)?;
        }
    }

    /// The call's deadline budget and timeout: what a server's
    /// `DeadlineExceeded` means for it (see [`Channel::expiry_of`]).
    pub(super) fn expiry(&self) -> (Option<Duration>, Option<Duration>) {
        let ch = &self.driver.ch;
        (ch.deadline_budget(), ch.config().first_reply_timeout)
    }

    /// Tells the connection how an event of this call turned out (see
    /// [`Conn::note`]).
    pub(super) fn note_outcome(&self, r: &Result<Received, Error>) {
        let (conn, ch) = (&self.out.conn, &self.driver.ch);
        match r {
            Err(e) => conn.note(e.is_lost(), &ch.config()),
            Ok(ev) if ev.is_final() => conn.note(false, &ch.config()),
            Ok(_) => {}
        }
    }
}

/// A call driven by the future its caller awaits (see [`Client::call`]):
/// sends the request (waiting for room beside it, or for a server in a
/// box of its own), then drives the channel, heartbeats included, until
/// the reply; a stream is collected (with its item count). Hand-written,
/// so an open call costs its caller only these fields.
pub(super) struct Collect {
    state: CollectState,
    /// A streamed result so far (one event is held at a time).
    items: Option<Vec<Value>>,
}

// (the large variant is the common one: boxing it would cost every call
// an allocation)
#[allow(clippy::large_enum_variant)]
enum CollectState {
    /// The request waits for room at a server, the channel's timer running
    /// (its timeout, its deadline; no heartbeat before the request).
    Sending(InlineCall, Box<Unsent>),
    /// The request waits for a server (none is connected; rarer): boxed
    /// whole.
    WaitingForServer(Pin<Box<dyn Future<Output = Result<InlineCall, Error>> + Send>>),
    Receiving(InlineCall),
    Done,
}

/// A request that found no room when its call opened (boxed: only a call
/// that waits pays for it).
pub(super) struct Unsent {
    msg: Option<Message>,
    inner: Arc<Inner>,
}

impl Collect {
    pub(super) fn new(inner: &Arc<Inner>, (call, unsent): Opened) -> Self {
        let state = match unsent {
            None => CollectState::Receiving(call),
            Some(msg) => {
                let unsent = Unsent {
                    msg: Some(msg),
                    inner: inner.clone(),
                };
                CollectState::Sending(call, Box::new(unsent))
            }
        };
        Collect { state, items: None }
    }

    /// Polls a request waiting for room: `Ready` once it has left (or the
    /// call went on to wait for a server), `Pending` while it waits. A
    /// failure ends the call.
    fn poll_sending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let CollectState::Sending(call, unsent) = &mut self.state else {
            return Poll::Ready(Ok(()));
        };
        let sent = std::task::ready!(call.poll_request(cx, &mut unsent.msg))?;
        let state = std::mem::replace(&mut self.state, CollectState::Done);
        let CollectState::Sending(mut call, unsent) = state else {
            return Poll::Ready(Ok(()));
        };
        self.state = match (sent, unsent.msg) {
            (false, Some(msg)) => {
                let inner = unsent.inner;
                CollectState::WaitingForServer(Box::pin(async move {
                    call.send_request(&inner, msg).await?;
                    Ok(call)
                }))
            }
            _ => CollectState::Receiving(call),
        };
        Poll::Ready(Ok(()))
    }
}

impl Future for Collect {
    type Output = Result<(Value, Option<u64>), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            // (a request that waits for room: rare, looked at only then)
            let sending = matches!(this.state, CollectState::Sending(..))
                && match this.poll_sending(cx) {
                    Poll::Ready(Ok(())) => false,
                    Poll::Ready(Err(e)) => {
                        this.state = CollectState::Done;
                        return Poll::Ready(Err(e));
                    }
                    // (its channel's timer runs meanwhile: polled below)
                    Poll::Pending => true,
                };
            let call = match &mut this.state {
                CollectState::WaitingForServer(f) => match f.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        this.state = CollectState::Done;
                        return Poll::Ready(Err(e));
                    }
                    Poll::Ready(Ok(call)) => {
                        this.state = CollectState::Receiving(call);
                        continue;
                    }
                },
                CollectState::Sending(call, _) | CollectState::Receiving(call) => call,
                CollectState::Done => return Poll::Ready(Err(Error::Closed)),
            };
            let r = match call.poll_event(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            // (a call whose request has not left says nothing of its
            // connection's health)
            if !sending {
                call.note_outcome(&r);
            }
            let ev = match r {
                Ok(ev) => ev,
                Err(e) => {
                    this.state = CollectState::Done;
                    return Poll::Ready(Err(e));
                }
            };
            let out = match ev.kind {
                Some(EventKind::Ok) if this.items.is_none() => Ok((first_arg(ev.args), None)),
                Some(EventKind::Stream) => {
                    // (consumed at once: credit follows)
                    call.driver.ch.consumed(1);
                    this.items.get_or_insert_with(Vec::new).push(ev.args);
                    continue;
                }
                // (Python answers an empty stream with STREAM_DONE alone)
                Some(EventKind::StreamDone) => {
                    let items = this.items.take().unwrap_or_default();
                    let n = items.len() as u64;
                    Ok((Value::Array(items), Some(n)))
                }
                Some(EventKind::Err) => Err(reply_error(&call.driver.ch, ev.args)),
                _ => Err(unexpected(ev.name())),
            };
            // (the call ends here: its registration goes with it)
            this.state = CollectState::Done;
            return Poll::Ready(out);
        }
    }
}

/// [`Client::call`]'s future. Lazy like an `async fn` (the call starts
/// at its first poll), then a call's channel driven by its caller
/// ([`Collect`]), with its watch when the client has observers, or a
/// retried call (or one a `tracing` subscriber sees) in a box of its own.
// (the large variant is the common one, as for `CollectState`)
#[allow(clippy::large_enum_variant)]
pub(super) enum CallFuture<'a> {
    Start {
        client: &'a Client,
        method: &'a str,
        args: Vec<Value>,
    },
    Plain(Collect),
    Watched(Collect, Box<CallWatch>),
    Boxed(Pin<Box<dyn Future<Output = Result<Value, Error>> + Send + 'a>>),
    Done,
}

impl Future for CallFuture<'_> {
    type Output = Result<Value, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            let r = match this {
                CallFuture::Start { .. } => {
                    if let CallFuture::Start {
                        client,
                        method,
                        args,
                    } = std::mem::replace(this, CallFuture::Done)
                    {
                        *this = client.start_call(method, args, true);
                    }
                    continue;
                }
                CallFuture::Plain(c) => std::task::ready!(Pin::new(c).poll(cx)).map(|(v, _)| v),
                CallFuture::Watched(c, w) => {
                    let r = std::task::ready!(Pin::new(c).poll(cx));
                    w.end(ended_call(&r));
                    r.map(|(v, _)| v)
                }
                CallFuture::Boxed(f) => std::task::ready!(f.as_mut().poll(cx)),
                CallFuture::Done => Err(Error::Closed),
            };
            *this = CallFuture::Done;
            return Poll::Ready(r);
        }
    }
}

/// The caller's end of a call: replies and stream items in order.
pub(super) struct CallHandle {
    pub(super) app_rx: mpsc::Receiver<Box<Result<Received, Error>>>,
    pub(super) took: Arc<Notify>,
    /// The call's deadline budget and timeout: what a server's
    /// `DeadlineExceeded` means for it (see [`Channel::expiry_of`]).
    pub(super) expiry: (Option<Duration>, Option<Duration>),
    /// Keeps the receive loops running while this call lives, even if every
    /// `Client` clone is dropped first.
    pub(super) _alive: Arc<tokio_util::sync::DropGuard>,
}

impl CallHandle {
    /// The next reply or stream item (or the call's failure).
    pub(super) async fn next_event(&mut self) -> Result<Received, Error> {
        let r = self.app_rx.recv().await.map_or(Err(Error::Closed), |b| *b);
        // Room freed in the window: let the driver grant credit once it is
        // worth a grant (it grants when half the window is free).
        if self.app_rx.len() <= self.app_rx.max_capacity() / 2 {
            self.took.notify_one();
        }
        r
    }
}

/// Drives one call's channel in the background, so heartbeats flow however
/// slowly the caller consumes: routes the server's events through the
/// state machine, hands replies to the caller, grants credit as the caller
/// drains them, and stops (ending the heartbeats, which cancels the call
/// on the server) when the caller drops its handle.
pub(super) async fn drive_call(
    mut call: InlineCall,
    app_tx: mpsc::Sender<Box<Result<Received, Error>>>,
    took: Arc<Notify>,
) {
    let cap = app_tx.max_capacity() as u64;
    // Stream items handed to the caller, and those it has taken.
    let mut forwarded = 0u64;
    let mut consumed = 0u64;
    // (made once, and `took`'s again only after it fired: each registers a
    // waiter under a lock when polled, and an item polled them all)
    let closed = app_tx.closed();
    tokio::pin!(closed);
    let mut took_some = std::pin::pin!(took.notified());
    loop {
        let queued = cap - app_tx.capacity() as u64;
        let now_consumed = forwarded - queued.min(forwarded);
        if now_consumed > consumed {
            call.driver.ch.consumed(now_consumed - consumed);
            consumed = now_consumed;
        }
        // (the server's events first: a closed handle is also seen when an
        // item cannot be handed over)
        let r = tokio::select! {
            biased;
            r = std::future::poll_fn(|cx| call.poll_event(cx)) => r,
            () = &mut closed => return,
            () = &mut took_some => {
                took_some.set(took.notified());
                continue;
            }
        };
        call.note_outcome(&r);
        let app = match r {
            Ok(app) => app,
            Err(e) => {
                let _ = app_tx.try_send(Box::new(Err(e)));
                return;
            }
        };
        let last = app.is_final();
        if app.kind == Some(EventKind::Stream) {
            forwarded += 1;
        }
        // The window bounds what the server may send, and the queue holds
        // a window plus the final reply.
        if app_tx.try_send(Box::new(Ok(app))).is_err() {
            if !app_tx.is_closed() {
                tracing::warn!(channel = %call.driver.ch.id(), "server exceeded the stream window");
                let e = Error::Protocol("server exceeded the stream window".into());
                let _ = app_tx.try_send(Box::new(Err(e)));
            }
            return;
        }
        if last {
            return;
        }
    }
}

/// A control event waiting for room (or for a server), beside its call:
/// boxed, as few ever wait.
pub(super) struct Waiting {
    msg: Option<Message>,
    /// Credit must arrive or the stream stalls: its wait fails at `until`
    /// (a heartbeat that cannot leave by then is dropped).
    credit: bool,
    until: Instant,
    patience: Duration,
}

impl Outlet for ToServer {
    type Error = Error;

    /// Polls the control event waiting for room, if any. With no server
    /// connected it registers nothing: the channel's timer, due at its
    /// next heartbeat, polls it again.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(w) = &mut self.sending else {
            return Poll::Ready(Ok(()));
        };
        match self.conn.dealer.poll_send(cx, &mut w.msg) {
            Poll::Ready(Ok(zmtp::RoundRobin::Sent)) => {
                self.sending = None;
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) if w.credit => {
                self.sending = None;
                return Poll::Ready(Err(e.into()));
            }
            Poll::Ready(Err(_)) => {
                // (a heartbeat: loss detection decides)
                self.sending = None;
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Ok(zmtp::RoundRobin::NoPeer)) | Poll::Pending => {}
        }
        if Instant::now() < w.until {
            return Poll::Pending;
        }
        let (credit, patience) = (w.credit, w.patience);
        self.sending = None;
        if credit {
            return Poll::Ready(Err(Error::LostRemote(patience)));
        }
        tracing::debug!("heartbeat not sent: no room or no server");
        Poll::Ready(Ok(()))
    }

    /// Heartbeats are best effort (with the server gone there is no peer
    /// to send to, and loss detection decides); credit must arrive or the
    /// stream stalls. Neither waits longer than the remote may stay silent.
    fn start_send(&mut self, ch: &mut Channel) -> Result<(), Error> {
        let mut msg = crate::event::delimiter();
        let Some(kind) = ch.transmit_into(&mut msg) else {
            return Ok(());
        };
        let credit = kind == EventKind::More;
        let Err(TrySendError::Full(msg)) = self.conn.dealer.try_send_or_return(msg) else {
            return Ok(());
        };
        let cfg = ch.config();
        let patience = if credit {
            cfg.heartbeat * cfg.lost_after
        } else {
            cfg.heartbeat
        };
        self.sending = Some(Box::new(Waiting {
            msg: Some(msg),
            credit,
            until: Instant::now() + patience,
            patience,
        }));
        Ok(())
    }
}

/// Sends a request that found no room (or no server yet): waits for one,
/// but never past the call timeout. When its connection is refused (the
/// wrong keys, or not a server: no server will appear there) the request
/// moves to another connection, and fails at once when all are refused.
pub(super) async fn wait_send(
    inner: &Inner,
    out: &mut ToServer,
    id: &MessageId,
    msg: Message,
) -> Result<(), Error> {
    loop {
        // (a send that loses the race has not queued its copy)
        let refused = tokio::select! {
            r = out.conn.dealer.send(msg.clone()) => return r.map_err(Error::from),
            r = inner.refused(&out.conn) => r,
        };
        match inner.unrefused() {
            Some(other) => {
                tracing::debug!(from = %out.conn.endpoint, to = %other.endpoint, reason = %refused.reason, "request moves off a refused connection");
                out.move_to(&other, id);
            }
            None => return Err(refused.error()),
        }
    }
}

/// The error an `ERR` reply means (see [`Channel::expiry_of`]).
pub(super) fn reply_error(ch: &Channel, args: Value) -> Error {
    let e = remote_error(args);
    match ch.expiry_of(&e.name) {
        Some(x) => channel_error(x),
        None => Error::Remote(e),
    }
}

pub(super) fn channel_error(e: ChannelError) -> Error {
    match e {
        ChannelError::Timeout(t) => Error::Timeout(t),
        ChannelError::LostRemote(t) => Error::LostRemote(t),
        ChannelError::BadCredit => Error::Protocol("malformed _zpc_more".into()),
        ChannelError::DeadlineExceeded(t) => Error::DeadlineExceeded(t),
    }
}

pub(super) fn unexpected(name: &str) -> Error {
    Error::Protocol(format!("unexpected {name} event"))
}

pub(super) fn first_arg(args: Value) -> Value {
    match args {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        Value::Array(_) => Value::Nil,
        other => other,
    }
}

/// Reads `ERR [name, message, traceback]` (or a version 1 one-item array).
pub(crate) fn remote_error(args: Value) -> CallError {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.as_str().unwrap_or_default().to_owned(),
        Some(Value::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::Nil) | None => String::new(),
        Some(other) => other.to_string(),
    };
    match &args {
        Value::Array(a) if a.len() == 1 => CallError {
            name: "RemoteError".into(),
            message: text(a.first()),
            traceback: String::new(),
        },
        Value::Array(a) => CallError {
            name: text(a.first()),
            message: text(a.get(1)),
            traceback: text(a.get(2)),
        },
        other => CallError {
            name: "RemoteError".into(),
            message: text(Some(other)),
            traceback: String::new(),
        },
    }
}
