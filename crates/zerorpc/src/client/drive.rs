//! Driving a call's channel: inline by its caller, or by a task;
//! flushing requests under back-pressure; reading replies and errors.

use super::*;

/// A call driven by its caller (see [`Client::call`]).
pub(super) struct InlineCall {
    pub(super) conn: Arc<Conn>,
    pub(super) ch: Channel,
    pub(super) net_rx: MailReceiver<Event>,
    /// One timer for the call's life, moved as its deadline moves.
    pub(super) timer: Pin<Box<Sleep>>,
    /// A control event waiting for room (see [`poll_flush`]).
    pub(super) sending: Option<BoxedSend>,
    pub(super) _guard: CallGuard,
}

impl InlineCall {
    /// The call, and its request if it still has to be sent (boxed: rare).
    pub(super) fn new(opened: Opened) -> (Self, Option<Box<Message>>) {
        let (conn, ch, net_rx, guard, unsent) = opened;
        let timer = Box::pin(tokio::time::sleep_until(Instant::from_std(
            ch.poll_timeout(),
        )));
        let call = InlineCall {
            conn,
            ch,
            net_rx,
            timer,
            sending: None,
            _guard: guard,
        };
        (call, unsent.map(Box::new))
    }

    /// Drives the channel until the next reply or stream item. Items are
    /// consumed as soon as they are returned, so credit follows at once.
    pub(super) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        loop {
            // A send waiting for room (`Pending`) does not stop the reading.
            if let Poll::Ready(Err(e)) = poll_flush(&self.conn, &mut self.ch, &mut self.sending, cx)
            {
                return Poll::Ready(Err(e));
            }
            match self.net_rx.poll_recv(cx) {
                Poll::Ready(Some(ev)) => {
                    if let Some(app) = self
                        .ch
                        .on_event(ev, Instant::now().into_std())
                        .map_err(channel_error)?
                    {
                        if app.kind() == Some(EventKind::Stream) {
                            self.ch.consumed(1);
                        }
                        return Poll::Ready(Ok(app));
                    }
                    continue;
                }
                Poll::Ready(None) => {
                    return Poll::Ready(Err(self.conn.closed_error(self._guard.drops_at_open)))
                }
                Poll::Pending => {}
            }
            let deadline = Instant::from_std(self.ch.poll_timeout());
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => self
                    .ch
                    .handle_timeout(Instant::now().into_std())
                    .map_err(channel_error)?,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A call driven by the future its caller awaits (see [`Client::call`]):
/// sends the request (waiting for room in a box of its own if it found
/// none), then drives the channel, heartbeats included, until the reply;
/// a stream is collected (with its item count). Hand-written, so an open
/// call costs its caller only these fields.
pub(super) struct Collect {
    state: CollectState,
    /// A streamed result so far (one event is held at a time).
    items: Option<Vec<Value>>,
}

// (the large variant is the common one: boxing it would cost every call
// an allocation)
#[allow(clippy::large_enum_variant)]
enum CollectState {
    /// The request waits for room, or for a server (rare: boxed).
    Sending(Pin<Box<dyn Future<Output = Result<InlineCall, Error>> + Send>>),
    Receiving(InlineCall),
    Done,
}

impl Collect {
    pub(super) fn new(inner: &Arc<Inner>, opened: Opened) -> Self {
        let (mut call, unsent) = InlineCall::new(opened);
        let state = match unsent {
            None => CollectState::Receiving(call),
            Some(msg) => {
                let inner = inner.clone();
                CollectState::Sending(Box::pin(async move {
                    let timeout = call.ch.config().first_reply_timeout;
                    wait_send(&inner, &mut call.conn, &mut call._guard, *msg, timeout).await?;
                    call.ch.request_sent(Instant::now().into_std());
                    Ok(call)
                }))
            }
        };
        Collect { state, items: None }
    }
}

impl Future for Collect {
    type Output = Result<(Value, Option<u64>), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            let call = match &mut this.state {
                CollectState::Sending(f) => match f.as_mut().poll(cx) {
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
                CollectState::Receiving(call) => call,
                CollectState::Done => return Poll::Ready(Err(Error::Closed)),
            };
            let r = match call.poll_event(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            note_outcome(&call.conn, &r, call.ch.config());
            let ev = match r {
                Ok(ev) => ev,
                Err(e) => return Poll::Ready(Err(e)),
            };
            let out = match ev.kind() {
                Some(EventKind::Ok) if this.items.is_none() => Ok((first_arg(ev.args), None)),
                Some(EventKind::Stream) => {
                    this.items.get_or_insert_with(Vec::new).push(ev.args);
                    continue;
                }
                // (Python answers an empty stream with STREAM_DONE alone)
                Some(EventKind::StreamDone) => {
                    let items = this.items.take().unwrap_or_default();
                    let n = items.len() as u64;
                    Ok((Value::Array(items), Some(n)))
                }
                Some(EventKind::Err) => Err(reply_error(&call.ch, ev.args)),
                _ => Err(unexpected(&ev.name)),
            };
            // (the call ends here: its registration goes with it)
            this.state = CollectState::Done;
            return Poll::Ready(out);
        }
    }
}

/// The caller's end of a call: replies and stream items in order.
pub(super) struct CallHandle {
    pub(super) app_rx: mpsc::Receiver<Box<Result<Event, Error>>>,
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
    pub(super) async fn next_event(&mut self) -> Result<Event, Error> {
        let r = self.app_rx.recv().await.map_or(Err(Error::Closed), |b| *b);
        // Room freed in the window: let the driver grant credit once it is
        // worth a grant (it grants when half the window is free).
        if self.app_rx.len() <= self.app_rx.max_capacity() / 2 {
            self.took.notify_one();
        }
        r
    }
}

/// Tells the connection how a call's event turned out (see [`Conn::note`]).
pub(super) fn note_outcome(conn: &Conn, r: &Result<Event, Error>, cfg: &ChannelConfig) {
    match r {
        Err(e) => conn.note(e.is_lost(), cfg),
        Ok(ev) if ev.is_final() => conn.note(false, cfg),
        Ok(_) => {}
    }
}

/// Drives one call's channel in the background, so heartbeats flow however
/// slowly the caller consumes: routes the server's events through the
/// state machine, hands replies to the caller, grants credit as the caller
/// drains them, and stops (ending the heartbeats, which cancels the call
/// on the server) when the caller drops its handle.
pub(super) async fn drive_call(
    conn: Arc<Conn>,
    mut ch: Channel,
    mut net_rx: MailReceiver<Event>,
    app_tx: mpsc::Sender<Box<Result<Event, Error>>>,
    took: Arc<Notify>,
    _guard: CallGuard,
) {
    let cap = app_tx.max_capacity() as u64;
    let mut forwarded = 0u64;
    let mut consumed = 0u64;
    // One timer for the call's life, moved as its deadline moves.
    let timer = tokio::time::sleep_until(Instant::from_std(ch.poll_timeout()));
    tokio::pin!(timer);
    let mut sending = None;
    loop {
        let queued = cap - app_tx.capacity() as u64;
        let now_consumed = forwarded - queued.min(forwarded);
        if now_consumed > consumed {
            ch.consumed(now_consumed - consumed);
            consumed = now_consumed;
        }
        let flushed = std::future::poll_fn(|cx| poll_flush(&conn, &mut ch, &mut sending, cx)).await;
        if let Err(e) = flushed {
            let _ = app_tx.try_send(Box::new(Err(e)));
            return;
        }
        let deadline = Instant::from_std(ch.poll_timeout());
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        tokio::select! {
            _ = app_tx.closed() => return,
            _ = took.notified() => {}
            ev = net_rx.recv() => {
                let Some(ev) = ev else {
                    let e = conn.closed_error(_guard.drops_at_open);
                    conn.note(e.is_lost(), ch.config());
                    let _ = app_tx.try_send(Box::new(Err(e)));
                    return;
                };
                match ch.on_event(ev, Instant::now().into_std()) {
                    Ok(Some(app)) => {
                        let last = app.is_final();
                        if last {
                            conn.note(false, ch.config());
                        }
                        if app.kind() == Some(EventKind::Stream) {
                            forwarded += 1;
                        }
                        // The window bounds what the server may send, and
                        // the queue holds a window plus the final reply.
                        if app_tx.try_send(Box::new(Ok(app))).is_err() {
                            if !app_tx.is_closed() {
                                tracing::warn!(channel = %ch.id(), "server exceeded the stream window");
                                let _ = app_tx.try_send(Box::new(Err(Error::Protocol("server exceeded the stream window".into()))));
                            }
                            return;
                        }
                        if last {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = app_tx.try_send(Box::new(Err(channel_error(e))));
                        return;
                    }
                }
            }
            _ = &mut timer => {
                if let Err(e) = ch.handle_timeout(Instant::now().into_std()) {
                    let e = channel_error(e);
                    conn.note(e.is_lost(), ch.config());
                    let _ = app_tx.try_send(Box::new(Err(e)));
                    return;
                }
            }
        }
    }
}

pub(super) type BoxedSend = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// Sends what the channel queued, in order; `Pending` while a send waits
/// for room. Heartbeats are best effort (with the server gone there is no
/// peer to send to, and loss detection decides); credit must arrive or the
/// stream stalls. Neither waits longer than the remote may stay silent.
pub(super) fn poll_flush(
    conn: &Arc<Conn>,
    ch: &mut Channel,
    sending: &mut Option<BoxedSend>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    loop {
        if let Some(f) = sending {
            match f.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    *sending = None;
                    r?;
                }
            }
        }
        let Some(ev) = ch.poll_transmit() else {
            return Poll::Ready(Ok(()));
        };
        let msg = Message::from_iter([Bytes::new(), ev.encode()]);
        let Err(TrySendError::Full(msg)) = conn.dealer.try_send_or_return(msg) else {
            continue;
        };
        let cfg = *ch.config();
        let conn = conn.clone();
        *sending = Some(if ev.kind() == Some(EventKind::More) {
            let patience = cfg.heartbeat * cfg.lost_after;
            Box::pin(async move {
                tokio::time::timeout(patience, conn.dealer.send(msg))
                    .await
                    .map_err(|_| Error::LostRemote(patience))?
                    .map_err(Error::from)
            })
        } else {
            Box::pin(async move {
                if tokio::time::timeout(cfg.heartbeat, conn.dealer.send(msg))
                    .await
                    .is_err()
                {
                    tracing::debug!("heartbeat not sent: no room or no server");
                }
                Ok(())
            })
        });
    }
}

/// Sends a request that found no room (or no server yet): waits for one,
/// but never past the call timeout. When its connection is refused (the
/// wrong keys, or not a server: no server will appear there) the request
/// moves to another connection, and fails at once when all are refused.
pub(super) async fn wait_send(
    inner: &Inner,
    conn: &mut Arc<Conn>,
    guard: &mut CallGuard,
    msg: Message,
    timeout: Option<Duration>,
) -> Result<(), Error> {
    let send = async {
        loop {
            // (a send that loses the race has not queued its copy)
            let refused = tokio::select! {
                r = conn.dealer.send(msg.clone()) => return r.map_err(Error::from),
                r = inner.refused(conn) => r,
            };
            match inner.unrefused() {
                Some(other) => {
                    tracing::debug!(from = %conn.endpoint, to = %other.endpoint, reason = %refused.reason, "request moves off a refused connection");
                    guard.move_to(&other);
                    *conn = other;
                }
                None => return Err(refused.error()),
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, send)
            .await
            .map_err(|_| Error::Timeout(t))?,
        None => send.await,
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
