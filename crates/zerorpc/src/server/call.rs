//! [`ServerCall`]: the hand-written future that serves one channel
//! (heartbeats, credit, the handler's reply or stream, its trace and
//! outcome).

use super::*;

/// What the connection's reader hands a channel's driver. (Events are not
/// boxed: that would cost an allocation per event for a variant, the
/// shutdown, that is sent once.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Inbound {
    /// An event the client sent on this channel.
    Event(Event),
    /// A graceful shutdown: answer `ERR ServerShutdown` and stop.
    Shutdown,
}

pub(super) enum Phase {
    /// Waiting to start (boxed with the request it holds: a call waits
    /// here briefly, and runs or streams for long).
    Queued(Box<Queued>),
    Running(HandlerFuture),
    Streaming(futures::stream::BoxStream<'static, Result<Value, CallError>>),
    Done,
}

/// A call waiting to start: its request, and its wait for a concurrency
/// slot (with `max_concurrency`, when none was free).
pub(super) struct Queued {
    pub(super) request: Event,
    pub(super) acquiring: Option<BoxedAcquire>,
}

pub(super) type BoxedAcquire = Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

/// Drives one call: the sans-IO [`Channel`] (heartbeats, credit, loss),
/// the handler, and the replies. A hand-written future rather than an
/// `async fn`, so an idle call costs only these fields (the waiting states
/// of a blocked send or a queued call are boxed, and rare). Its key in
/// the table of open calls is its client's routing id (its connection's,
/// `out.peer`) and its channel's id.
pub(super) struct ServerCall {
    pub(super) inner: Arc<Inner>,
    /// The channel, driven (its deadline in `rx`'s timer slot).
    pub(super) driver: Driver,
    /// The client's connection: replies are queued there, and the call
    /// waits for room before starting or producing more.
    pub(super) out: ToClient,
    /// The trace context the handler runs under (see [`observe()`]), when
    /// the call is traced: the channel's trace parent (its trace and span
    /// ids and flags), with these two (see [`ServerCall::ctx`]). Kept
    /// here, not in a task-local future of its own: that would be an
    /// allocation per call and 112 bytes per open one.
    pub(super) parent_id: Option<[u8; 8]>,
    pub(super) tracestate: Option<Box<str>>,
    pub(super) phase: Phase,
    /// Held while the handler runs (with `max_concurrency`).
    pub(super) permit: Option<OwnedSemaphorePermit>,
    pub(super) rx: MailReceiver<Inbound>,
    /// What is watched of the call, by a server with observers (told
    /// when dropped, with the call).
    pub(super) watch: Option<Box<CallWatch>>,
}

impl Drop for ServerCall {
    fn drop(&mut self) {
        // (closed first, so that its sender's drop wakes no one: see
        // `MailReceiver::close`; and the sender dropped after the lock)
        self.rx.close();
        let tx = (self.inner.channels()).remove(self.out.peer.routing_id(), self.driver.ch.id());
        drop(tx);
        self.inner.live.fetch_sub(1, Ordering::SeqCst);
        if matches!(self.phase, Phase::Queued(_)) {
            self.inner.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Stream items a call sends per poll before letting other tasks run.
pub(super) const ITEMS_PER_POLL: usize = 256;

/// The client's end of a call: its connection's send queue, and the
/// frames every reply starts with.
pub(super) struct ToClient {
    pub(super) peer: PeerSender,
    /// The frames between the routing id and the event (a delimiter, if
    /// the client sent one).
    pub(super) envelope: Envelope,
    /// A reply waiting for room in the client's queue (so at most one
    /// message per call waits outside the queue); `None` while nothing
    /// waits. Boxed: a message is 104 bytes, and an idle call should not
    /// carry them.
    pub(super) sending: Option<Box<Option<Message>>>,
}

/// The frames between a client's routing id and its event: one empty
/// delimiter (a DEALER or REQ client: kept without its frame), or any
/// others (none, or a proxy's: copied out of the read buffer, which an
/// open call must not keep alive).
pub(super) enum Envelope {
    Delimiter,
    Frames(Box<[Bytes]>),
}

impl Envelope {
    pub(super) fn of(frames: &[Bytes]) -> Self {
        match frames {
            [d] if d.is_empty() => Envelope::Delimiter,
            other => Envelope::Frames(other.iter().map(|f| Bytes::copy_from_slice(f)).collect()),
        }
    }

    /// A message of these frames, then `ev` (see `Event::append_to`).
    pub(super) fn message(&self, ev: Event) -> Message {
        let mut m = self.frames();
        ev.append_to(&mut m);
        m
    }

    /// A message of these frames alone (its event to follow).
    fn frames(&self) -> Message {
        match self {
            Envelope::Delimiter => crate::event::delimiter(),
            Envelope::Frames(f) => f.iter().cloned().collect(),
        }
    }
}

impl Outlet for ToClient {
    /// The client has gone.
    type Error = zmtp::ZmtpError;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let Some(slot) = &mut self.sending else {
            return Poll::Ready(Ok(()));
        };
        let r = std::task::ready!(self.peer.poll_send(cx, slot));
        self.sending = None;
        Poll::Ready(r)
    }

    fn start_send(&mut self, ch: &mut Channel) -> Result<(), Self::Error> {
        let mut m = self.envelope.frames();
        if ch.transmit_into(&mut m).is_none() {
            return Ok(());
        }
        match self.peer.try_send(m) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(m)) => {
                self.sending = Some(Box::new(Some(m)));
                Ok(())
            }
            Err(TrySendError::Failed(e)) => Err(e),
        }
    }
}

impl Future for ServerCall {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Stream items this poll may still send (then it yields).
        let mut budget = ITEMS_PER_POLL;
        loop {
            let mut progressed = false;
            // Events the client sent on this channel.
            loop {
                match this.rx.poll_recv(cx) {
                    Poll::Ready(Some(Inbound::Event(ev))) => {
                        if let Err(e) = this.driver.on_event(ev) {
                            if let Some(suppressed) = CALL_LOG.admit("bad control event") {
                                tracing::warn!(channel = %this.driver.ch.id(), error = ?e, suppressed, "bad control event, abandoning call");
                            }
                            return Poll::Ready(());
                        }
                    }
                    Poll::Ready(Some(Inbound::Shutdown)) => {
                        let e = CallError::new("ServerShutdown", "the server is shutting down");
                        this.note(Ended::Other(Outcome::failed(&e)));
                        this.driver.ch.send(EventKind::Err, e.to_args());
                        this.set_phase(Phase::Done);
                        break;
                    }
                    // Removed from the table: the client disconnected, or
                    // the server stopped.
                    Poll::Ready(None) => {
                        tracing::debug!(channel = %this.driver.ch.id(), "call cancelled");
                        return Poll::Ready(());
                    }
                    Poll::Pending => break,
                }
            }
            // Start the handler once the client keeps up with what it was
            // sent, and a concurrency slot is ours.
            if matches!(this.phase, Phase::Queued(_)) {
                match this.out.peer.poll_room(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(channel = %this.driver.ch.id(), error = %e, "client gone before its call started");
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(())) => {
                        if this.poll_slot(cx) {
                            if let Phase::Queued(q) =
                                std::mem::replace(&mut this.phase, Phase::Done)
                            {
                                // (no longer waiting: see `set_phase`)
                                this.inner.queued.fetch_sub(1, Ordering::SeqCst);
                                let user = this.inner.user_of(this.out.peer.routing_id());
                                if let Some(w) = &mut this.watch {
                                    w.set_user(user.clone());
                                }
                                let ctx = this.ctx();
                                let deadline = this.driver.ch.deadline();
                                let (req, tp) = (q.request, this.driver.ch.trace_parent());
                                let fut =
                                    under(ctx, deadline, || dispatch(&this.inner, req, tp, user));
                                this.phase = Phase::Running(fut);
                            }
                        }
                    }
                }
            }
            match this.poll_work(cx, &mut budget) {
                Ok(p) => progressed |= p,
                Err(e) => {
                    tracing::debug!(channel = %this.driver.ch.id(), error = %e, "client unreachable, abandoning call");
                    return Poll::Ready(());
                }
            }
            // Send what the channel queued (replies, heartbeats, credit).
            let waited = this.out.sending.is_some();
            match this.driver.poll_flush(&mut this.out, cx) {
                Poll::Ready(Err(e)) => {
                    tracing::debug!(channel = %this.driver.ch.id(), error = %e, "client unreachable, abandoning call");
                    return Poll::Ready(());
                }
                // A reply that waited for room has gone: a stream held
                // back by it goes on (nothing else would wake this call).
                Poll::Ready(Ok(())) if waited => progressed = true,
                _ => {}
            }
            if matches!(this.phase, Phase::Done)
                && this.out.sending.is_none()
                && !this.driver.ch.has_output()
            {
                return Poll::Ready(());
            }
            // Heartbeats, loss and the deadline: looked at once the call is
            // not over, so a call answered in its first poll arms no
            // timer.
            match this.driver.poll_timer(this.rx.timer(), &this.inner.timers) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => progressed = true,
                // The deadline passed and the handler, just polled, has not
                // answered: cancel it.
                Poll::Ready(Err(ChannelError::DeadlineExceeded(budget))) => {
                    this.cancel_for_deadline(budget);
                    progressed = true;
                }
                Poll::Ready(Err(e)) => {
                    this.note(Ended::Other(Outcome::Lost));
                    tracing::info!(channel = %this.driver.ch.id(), error = ?e, "client lost, cancelling call");
                    return Poll::Ready(());
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

impl ServerCall {
    /// Cancels a call whose deadline passed before its first reply (a
    /// waiting or running handler is dropped) and answers
    /// `ERR DeadlineExceeded`.
    pub(super) fn cancel_for_deadline(&mut self, budget: std::time::Duration) {
        // (a stream that has sent nothing yet is cancelled too: the
        // deadline bounds the first reply)
        if !matches!(
            self.phase,
            Phase::Queued(_) | Phase::Running(_) | Phase::Streaming(_)
        ) {
            // (nothing left to cancel: the deadline must not fire again)
            self.driver.ch.clear_deadline();
            return;
        }
        tracing::debug!(channel = %self.driver.ch.id(), ?budget, "deadline passed, cancelling call");
        let e = CallError::new(
            crate::deadline::ERROR_NAME,
            format!("the caller's deadline passed ({budget:?} budget); the call was cancelled"),
        );
        self.note(Ended::Other(Outcome::failed(&e)));
        self.set_phase(Phase::Done);
        self.driver.ch.send(EventKind::Err, e.to_args());
    }

    /// Moves to `phase`, leaving the count of waiting calls if it was one.
    pub(super) fn set_phase(&mut self, phase: Phase) {
        if matches!(self.phase, Phase::Queued(_)) {
            self.inner.queued.fetch_sub(1, Ordering::SeqCst);
        }
        self.phase = phase;
    }

    /// Tells the call's watch (if any) how it ended: an error the
    /// handler returned goes to the error hook; those the server makes
    /// (`DeadlineExceeded`, `ServerShutdown`) are only recorded.
    pub(super) fn note(&mut self, ended: Ended<'_>) {
        if let Some(w) = &mut self.watch {
            w.end(ended);
        }
    }

    /// Whether the handler may start: a concurrency slot is ours (or there
    /// is no limit). Waits in line otherwise, still heart-beating.
    pub(super) fn poll_slot(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(sem) = &self.inner.limiter else {
            return true;
        };
        let Phase::Queued(q) = &mut self.phase else {
            return true;
        };
        if q.acquiring.is_none() {
            match sem.clone().try_acquire_owned() {
                Ok(p) => {
                    self.permit = Some(p);
                    return true;
                }
                Err(_) => {
                    let sem = sem.clone();
                    q.acquiring = Some(Box::pin(async move { sem.acquire_owned().await.ok() }));
                }
            }
        }
        match q.acquiring.as_mut().map(|f| f.as_mut().poll(cx)) {
            Some(Poll::Ready(p)) => {
                q.acquiring = None;
                self.permit = p;
                true
            }
            _ => false,
        }
    }

    /// The trace context the handler runs under, if the call is traced:
    /// made of the channel's trace parent and the rest kept here (see
    /// [`ServerCall::parent_id`]).
    pub(super) fn ctx(&self) -> Option<TraceContext> {
        let tp = self.driver.ch.trace_parent()?;
        Some(TraceContext {
            trace_id: tp.trace_id,
            span_id: tp.span_id,
            parent_id: self.parent_id,
            sampled: tp.flags & 1 != 0,
            tracestate: self.tracestate.as_deref().map(str::to_owned),
        })
    }

    /// Polls the handler, or its stream while the client grants credit and
    /// its connection takes what was sent (items never pile up here: each
    /// goes to the client's queue before the next is asked for); queues
    /// what it produced. A panic becomes an error. Returns whether
    /// anything happened; `Err` when the client has gone.
    pub(super) fn poll_work(
        &mut self,
        cx: &mut Context<'_>,
        budget: &mut usize,
    ) -> Result<bool, zmtp::ZmtpError> {
        let deadline = self.driver.ch.deadline();
        let ctx = match self.phase {
            Phase::Running(_) | Phase::Streaming(_) => self.ctx(),
            Phase::Queued(_) | Phase::Done => None,
        };
        match &mut self.phase {
            Phase::Running(fut) => {
                let polled = catch_unwind(AssertUnwindSafe(|| {
                    under(ctx, deadline, || fut.as_mut().poll(cx))
                }));
                let result = match polled {
                    Ok(Poll::Pending) => return Ok(false),
                    Ok(Poll::Ready(r)) => r,
                    Err(p) => Err(panic_error(p)),
                };
                match result {
                    Ok(Response::Value(v)) => {
                        self.note(Ended::Value(&v));
                        self.driver.ch.send(EventKind::Ok, Value::Array(vec![v]));
                        self.phase = Phase::Done;
                    }
                    Ok(Response::Stream(st)) => self.phase = Phase::Streaming(st),
                    Err(e) => {
                        self.driver.ch.send(EventKind::Err, e.to_args());
                        self.phase = Phase::Done;
                        self.note(Ended::Failed(&e));
                    }
                }
                Ok(true)
            }
            Phase::Streaming(st) => {
                // (under the call's context once for all the items this
                // poll sends, not once per item)
                let (driver, out, watch) = (&mut self.driver, &mut self.out, &mut self.watch);
                let pumped = under(ctx, deadline, || {
                    pump_stream(st, driver, out, watch.as_deref_mut(), cx, budget)
                })?;
                match pumped {
                    Pumped::Yielded => Ok(false),
                    Pumped::Sent { items, ended } => {
                        if ended {
                            self.phase = Phase::Done;
                        }
                        Ok(items > 0)
                    }
                }
            }
            Phase::Queued(_) | Phase::Done => Ok(false),
        }
    }
}

/// What [`pump_stream`] did.
enum Pumped {
    /// It used the poll's budget up and woke the task to go on later
    /// (reported as no progress, so that the poll ends).
    Yielded,
    /// It sent `items` (the last one the end of the stream if `ended`).
    Sent { items: usize, ended: bool },
}

/// Sends a handler's stream items that are ready now, have credit, and
/// find room (each goes to the client's queue before the next is asked
/// for), watched by `watch`; at most `budget` of them, shared with the
/// other calls of this poll. `Err` when the client has gone.
fn pump_stream(
    st: &mut futures::stream::BoxStream<'static, Result<Value, CallError>>,
    driver: &mut Driver,
    out: &mut ToClient,
    mut watch: Option<&mut CallWatch>,
    cx: &mut Context<'_>,
    budget: &mut usize,
) -> Result<Pumped, zmtp::ZmtpError> {
    let mut items = 0;
    while driver.ch.can_send_item() && out.sending.is_none() && !driver.ch.has_output() {
        if *budget == 0 {
            // A long ready stream shares the worker: poll again later.
            cx.waker().wake_by_ref();
            return Ok(Pumped::Yielded);
        }
        *budget -= 1;
        let item = match catch_unwind(AssertUnwindSafe(|| st.poll_next_unpin(cx))) {
            Ok(Poll::Pending) => break,
            Ok(Poll::Ready(item)) => item,
            Err(p) => Some(Err(panic_error(p))),
        };
        items += 1;
        if let Some(w) = watch.as_deref_mut() {
            match &item {
                Some(Ok(v)) => w.item(v),
                Some(Err(e)) => w.end(Ended::Failed(e)),
                None => w.end(Ended::StreamDone),
            }
        }
        if send_item(&mut driver.ch, item) {
            return Ok(Pumped::Sent { items, ended: true });
        }
        if let Poll::Ready(Err(e)) = driver.poll_flush(out, cx) {
            return Err(e);
        }
    }
    Ok(Pumped::Sent {
        items,
        ended: false,
    })
}

/// Runs `f` (a handler's start or poll, or its stream's) under the call's
/// trace context and deadline, as the handler sees them
/// ([`TraceContext::current`], [`crate::deadline::current`]).
fn under<R>(
    ctx: Option<TraceContext>,
    deadline: Option<std::time::Instant>,
    f: impl FnOnce() -> R,
) -> R {
    crate::trace::sync_scoped(ctx, || crate::deadline::sync_scoped(deadline, f))
}

/// Sends one stream outcome (`STREAM`, `ERR`, or `STREAM_DONE` at the end);
/// returns whether the stream is over.
pub(super) fn send_item(ch: &mut Channel, item: Option<Result<Value, CallError>>) -> bool {
    match item {
        Some(Ok(v)) => {
            ch.send(EventKind::Stream, v);
            false
        }
        Some(Err(e)) => {
            ch.send(EventKind::Err, e.to_args());
            true
        }
        None => {
            ch.send(EventKind::StreamDone, Value::Nil);
            true
        }
    }
}

pub(super) fn panic_error(panic: Box<dyn std::any::Any + Send>) -> CallError {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".into());
    tracing::error!(panic = %msg, "handler panicked");
    CallError::new("Panic", msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tokio's task cells are 128-byte aligned (x86_64) and hold 104 bytes
    /// besides the future (tokio 1.54): a call of 408 bytes or less is a
    /// 512-byte task, one of 416 a 640-byte one.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_idle_call_fits_a_512_byte_task() {
        let size = std::mem::size_of::<ServerCall>();
        assert!(size <= 408, "ServerCall is {size} bytes");
    }

    #[test]
    fn an_envelope_keeps_no_hold_on_the_buffer_its_frames_came_in() {
        let read = Bytes::from(vec![7u8; 64]);
        // a proxy's routing id, then a delimiter, both slices of one read
        let frames = [read.slice(0..5), read.slice(5..5)];
        let env = Envelope::of(&frames);
        drop(frames);
        assert!(read.is_unique(), "the envelope holds the read buffer");
        let ev = Event::new("event", Value::Nil);
        let encoded = ev.encode();
        let m = env.message(ev);
        let got: Vec<&[u8]> = m.frames().iter().map(|f| &f[..]).collect();
        assert_eq!(got, [&[7u8; 5][..], b"", &encoded[..]]);
        // a DEALER's lone delimiter is kept without a frame
        let mut rd = bytes::BytesMut::from(&b"xx"[..]);
        let delimiter = rd.split_to(0).freeze();
        let env = Envelope::of(&[delimiter]);
        assert!(matches!(env, Envelope::Delimiter));
        let ev = Event::new("event", Value::Nil);
        let encoded = ev.encode();
        let m = env.message(ev);
        let got: Vec<&[u8]> = m.frames().iter().map(|f| &f[..]).collect();
        assert_eq!(got, [&b""[..], &encoded[..]]);
    }
}
