//! A request's way from its connection to its channel, on the
//! connection's reader task: decoding it, finding or opening its channel,
//! refusing what is over the limits, and starting a call inline when its
//! handler answers at once.

use super::*;

/// Requests larger than this always get a task of their own (their
/// decoding and encoding is worth spreading over the workers).
pub(super) const INLINE_MAX_BYTES: usize = 8 * 1024;

/// Polls a new call once, on the task that received it, when `inline`:
/// a handler that answers at once (most do) costs no task and no
/// hand-off; any other is spawned, and re-registers its wake-ups with its
/// own task on its next poll.
pub(super) fn start(mut call: ServerCall, inline: bool, cx: &mut Context<'_>) {
    if inline && Pin::new(&mut call).poll(cx).is_ready() {
        return;
    }
    tokio::spawn(call);
}

/// Serves requests on the reader task of the connection they arrived on
/// (see [`zmtp::Deliver`]): decoding, routing, and the first poll of a
/// small call happen there, so connections are served in parallel and a
/// call that answers at once takes no task hand-off on the server.
pub(super) struct Dispatch(pub(super) std::sync::Weak<Inner>);

impl zmtp::Deliver for Dispatch {
    fn deliver(&self, batch: &mut std::collections::VecDeque<Message>, cx: &mut Context<'_>) {
        // (a server being dropped: leave them to the queue, unread)
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        while let Some(m) = batch.pop_front() {
            // A small call is polled here first, also on an idle
            // server. (Until 2026-12-06 only under load, when more
            // requests followed in the same read: polling here made an
            // idle server's p50 2–3× worse. That was the call's ending
            // waking this reader in its own poll, which sent the reader to
            // the back of the run queue and woke another worker; see
            // `MailReceiver::close`.)
            let inline = inner.opts.inline_first_poll && m.byte_len() <= INLINE_MAX_BYTES;
            if let Some(call) = handle_message(&inner, m) {
                start(call, inline, cx);
            }
        }
    }
}

/// Routes one message: to its channel's mailbox, or (a request) to a new
/// call, returned to be started.
pub(super) fn handle_message(inner: &Arc<Inner>, msg: Message) -> Option<ServerCall> {
    let frames = msg.frames();
    let (Some(identity), Some(payload)) = (frames.first(), frames.last()) else {
        return None;
    };
    if frames.len() < 2 {
        return None;
    }
    let event = match Event::decode(payload, inner.opts.decode_limits) {
        Ok(e) => e,
        Err(e) => {
            if let Some(suppressed) = CALL_LOG.admit("undecodable event") {
                tracing::warn!(peer = ?identity, error = %e, suppressed, "dropping undecodable event");
            }
            return None;
        }
    };
    match event.header.response_to.clone() {
        Some(channel) => {
            let chans = inner.channels();
            match chans.get(identity, &channel) {
                Some(tx) => match tx.try_send(Inbound::Event(event), payload.len()) {
                    Ok(()) => {}
                    Err(MailError::Full) => {
                        if let Some(suppressed) = CALL_LOG.admit("channel queue full") {
                            tracing::warn!(peer = ?identity, suppressed, "channel event queue full, dropping event")
                        }
                    }
                    Err(MailError::Closed) => {}
                },
                None => {
                    tracing::debug!(peer = ?identity, name = %event.name, "event for unknown channel")
                }
            }
            None
        }
        None => {
            let key = (identity.clone(), event.header.message_id.clone());
            let envelope = Envelope::of(&frames[1..frames.len() - 1]);
            let Some(peer) = inner.router.peer_sender(identity) else {
                // Gone already: nobody to answer.
                return None;
            };
            let (tx, rx) = mailbox(inner.opts.channel_queue, inner.opts.channel_queue_bytes);
            {
                let mut chans = inner.channels();
                if inner.cancel.is_cancelled() {
                    return None;
                }
                if chans.contains(&key) {
                    if let Some(suppressed) = CALL_LOG.admit("duplicate request id") {
                        tracing::warn!(peer = ?identity, id = %key.1, suppressed, "duplicate request id, ignored");
                    }
                    return None;
                }
                let opts = &inner.opts;
                let refusal = if chans.open_from(identity) >= opts.max_calls_per_client {
                    Some(("calls open from this client", opts.max_calls_per_client))
                } else if chans.open >= opts.max_calls {
                    Some(("calls open", opts.max_calls))
                } else if inner.queued.load(Ordering::SeqCst) >= opts.max_queued_calls {
                    Some(("calls waiting to start", opts.max_queued_calls))
                } else {
                    None
                };
                if let Some((what, limit)) = refusal {
                    drop(chans);
                    refuse_overloaded(inner, &peer, envelope, &event, what, limit);
                    return None;
                }
                chans.insert(key, tx);
            }
            inner.live.fetch_add(1, Ordering::SeqCst);
            inner.queued.fetch_add(1, Ordering::SeqCst);
            let now = Instant::now();
            let mut ch = Channel::server(&event, inner.opts.channel, now.into_std());
            // (a call waits for room in the client's queue: it never drops
            // an item, so a client of ours may grant a wider window)
            ch.announce_window();
            if let Some(ms) = event.header.deadline_ms {
                let budget = crate::deadline::budget_of(ms);
                // (a budget too large to add up is no deadline)
                if let Some(at) = now.into_std().checked_add(budget) {
                    ch.set_deadline(at, budget);
                }
            }
            let (ctx, watch) = observe(inner, &event, identity, now.into_std());
            if let Some(ctx) = &ctx {
                // every event of a traced channel carries its context
                ch.set_trace(ctx);
            }
            let (parent_id, tracestate) = match ctx {
                Some(c) => (c.parent_id, c.tracestate.map(String::into_boxed_str)),
                None => (None, None),
            };
            Some(ServerCall {
                inner: inner.clone(),
                driver: Driver::new(ch),
                out: ToClient {
                    peer,
                    envelope,
                    sending: None,
                },
                parent_id,
                tracestate,
                phase: Phase::Queued(Box::new(Queued {
                    request: event,
                    acquiring: None,
                })),
                permit: None,
                rx,
                watch,
            })
        }
    }
}

/// Answers a request over a limit with `ERR ServerOverloaded`, without
/// opening a channel (best effort: a client whose queue is full misses it
/// and times out), and counts it.
pub(super) fn refuse_overloaded(
    inner: &Inner,
    peer: &PeerSender,
    envelope: Envelope,
    request: &Event,
    what: &str,
    limit: usize,
) {
    inner.overloaded.fetch_add(1, Ordering::Relaxed);
    if inner.opts.metrics {
        crate::metrics::overloaded(&inner.service_name);
    }
    if let Some(suppressed) = CALL_LOG.admit("overloaded") {
        tracing::warn!(method = %request.name, limit, suppressed, "refusing a call: too many {what}");
    }
    let msg = format!("too many {what} (limit {limit}); try again later");
    let e = CallError::new("ServerOverloaded", msg.clone())
        .with_traceback(format!("ServerOverloaded: {msg}\n"));
    let reply = Event::on_channel(&request.header.message_id, EventKind::Err, e.to_args());
    let _ = peer.try_send(envelope.message(reply));
}
