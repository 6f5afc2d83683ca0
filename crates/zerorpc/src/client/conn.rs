//! Connections: one DEALER per endpoint, the channels pinned to it, the
//! routing of replies to their channel's mailbox (on the reader), and
//! re-resolving a name when its endpoints change.

use super::*;

pub(super) type Channels = Mutex<HashMap<MessageId, MailSender<Received>>>;

pub(super) struct Conn {
    pub(super) dealer: DealerSocket,
    /// The endpoint it connects to.
    pub(super) endpoint: Arc<str>,
    pub(super) channels: Channels,
    /// Its channels' deadlines, kept by its receive loop.
    pub(super) timers: Timers,
    /// Connections that dropped so far (a channel opened before a drop is
    /// lost with it).
    pub(super) drops: AtomicU64,
    /// Until when (ms after `epoch`) new calls should avoid this
    /// connection: a call on it was lost. 0: healthy.
    pub(super) suspect_until: AtomicU64,
    pub(super) epoch: std::time::Instant,
    /// Ends its receive loop (the client's end, or its endpoint dropped).
    pub(super) stop: CancellationToken,
    /// Why its last handshake failed for good (security refused it, or
    /// the peer is not a server), until a handshake succeeds.
    pub(super) refused: Mutex<Option<Refusal>>,
    /// Told whenever one of the client's connections is refused.
    pub(super) refusals: Arc<Notify>,
}

/// A handshake failure that trying again will not cure.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub(super) kind: zmtp::HandshakeFailure,
    pub(super) reason: String,
}

impl Refusal {
    pub(super) fn error(&self) -> Error {
        match self.kind {
            zmtp::HandshakeFailure::IncompatibleSocketType => Error::IncompatibleSocketType {
                reason: self.reason.clone(),
            },
            _ => Error::Authentication {
                reason: self.reason.clone(),
            },
        }
    }
}

impl Conn {
    pub(super) fn new(
        dealer: DealerSocket,
        endpoint: Arc<str>,
        stop: CancellationToken,
        refusals: Arc<Notify>,
    ) -> Self {
        Conn {
            stop,
            dealer,
            endpoint,
            channels: Mutex::new(HashMap::default()),
            timers: Timers::default(),
            drops: AtomicU64::new(0),
            suspect_until: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            refused: Mutex::new(None),
            refusals,
        }
    }

    /// Why this connection is refused, if it is.
    pub(super) fn refusal(&self) -> Option<Refusal> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set_refusal(&self, r: Option<Refusal>) {
        let refused = r.is_some();
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = r;
        if refused {
            self.refusals.notify_waiters();
        }
    }

    pub(super) fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Connected and not suspect.
    pub(super) fn healthy(&self) -> bool {
        self.dealer.peer_count() > 0 && {
            let until = self.suspect_until.load(Ordering::Relaxed);
            until == 0 || self.millis() >= until
        }
    }

    /// Notes how a call on this connection ended: a lost one makes new
    /// calls avoid it for a while; an answered one clears that.
    pub(super) fn note(&self, lost: bool, cfg: &ChannelConfig) {
        if lost {
            // Four times the loss limit (40 s with the default heartbeat);
            // then one call probes it again.
            let pause = (cfg.heartbeat * cfg.lost_after * 4).as_millis() as u64;
            self.suspect_until
                .store(self.millis() + pause.max(1), Ordering::Relaxed);
        } else if self.suspect_until.load(Ordering::Relaxed) != 0 {
            self.suspect_until.store(0, Ordering::Relaxed);
        }
    }

    /// Why a channel's mailbox closed: the connection dropped since the
    /// channel opened, or the server overflowed the window.
    pub(super) fn closed_error(&self, drops_at_open: u64) -> Error {
        if self.drops.load(Ordering::SeqCst) != drops_at_open {
            Error::Disconnected
        } else {
            Error::Protocol("the server sent more events than the channel allows".into())
        }
    }

    pub(super) fn channels(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<MessageId, MailSender<Received>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) struct Inner {
    /// Replaced as a naming client re-resolves.
    pub(super) conns: std::sync::RwLock<Arc<Vec<Arc<Conn>>>>,
    pub(super) next: AtomicUsize,
    pub(super) opts: ClientOptions,
    /// What watches its calls (none: nothing does).
    pub(super) observers: Option<Arc<Observers>>,
    /// For a `zerorpc://` client: wakes its re-resolver.
    pub(super) naming: Option<Arc<Notify>>,
    /// Told whenever one of its connections is refused (see [`Conn`]).
    pub(super) refusals: Arc<Notify>,
    /// The service's introspection, once asked (named arguments).
    pub(super) described: std::sync::Mutex<Option<Arc<crate::describe::ServiceInfo>>>,
}

impl Inner {
    pub(super) fn conns(&self) -> Arc<Vec<Arc<Conn>>> {
        self.conns.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Resolves once `conn` is refused (security, or not a server).
    pub(super) async fn refused(&self, conn: &Conn) -> Refusal {
        loop {
            let notified = self.refusals.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = conn.refusal() {
                return r;
            }
            notified.await;
        }
    }

    /// A connection that is not refused, for a request whose connection
    /// was: a connected one first.
    pub(super) fn unrefused(&self) -> Option<Arc<Conn>> {
        let conns = self.conns();
        let ok = || conns.iter().filter(|c| c.refusal().is_none());
        ok().find(|c| c.dealer.peer_count() > 0)
            .or_else(|| ok().next())
            .cloned()
    }
}

/// Connects a DEALER to `ep` and starts its receive loop (ended by `stop`).
pub(super) async fn open_conn(
    ep: &str,
    opts: &ClientOptions,
    stop: CancellationToken,
    refusals: Arc<Notify>,
) -> Result<Arc<Conn>, Error> {
    let dealer = DealerSocket::with_options(opts.socket.clone());
    // (watched from before the first attempt: its failure is not missed)
    let events = dealer.monitor();
    dealer.connect(ep).await?;
    let conn = Arc::new(Conn::new(dealer, Arc::from(ep), stop.clone(), refusals));
    tokio::spawn(receive_loop(conn.clone(), opts.decode_limits, events, stop));
    Ok(conn)
}

/// Re-resolves a `zerorpc://` client's service: every `every`, or when
/// woken (no healthy connection), at most once a second. New endpoints
/// are connected; endpoints no longer listed are closed (calls still on
/// them are lost). A failed resolution keeps the current endpoints.
pub(super) async fn re_resolve(
    inner: std::sync::Weak<Inner>,
    resolver: Arc<crate::naming::Resolver>,
    service: String,
    wake: Arc<Notify>,
    every: Duration,
    stop: CancellationToken,
) {
    let min_gap = Duration::from_secs(1).min(every);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(last + every) => {}
            _ = wake.notified() => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(last + min_gap) => {}
                }
            }
        }
        last = Instant::now();
        let resolved = match resolver.resolve(&service).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%service, error = %e, "re-resolving failed; keeping the current endpoints");
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        let current = inner.conns();
        let mut next: Vec<Arc<Conn>> = Vec::new();
        for ep in &resolved.endpoints {
            if let Some(c) = current.iter().find(|c| &*c.endpoint == ep.as_str()) {
                next.push(c.clone());
                continue;
            }
            match open_conn(ep, &inner.opts, stop.child_token(), inner.refusals.clone()).await {
                Ok(c) => {
                    tracing::info!(%service, endpoint = %ep, "connected to a new endpoint");
                    next.push(c);
                }
                Err(e) => tracing::warn!(%service, endpoint = %ep, error = %e, "cannot connect"),
            }
        }
        if next.is_empty() {
            continue;
        }
        for c in current.iter() {
            if !next.iter().any(|n| Arc::ptr_eq(n, c)) {
                tracing::info!(%service, endpoint = %c.endpoint, "endpoint no longer listed, closing");
                c.stop.cancel();
                // its calls fail now (Disconnected: lost, so retried when
                // idempotent) rather than after two silent heartbeats
                c.drops.fetch_add(1, Ordering::SeqCst);
                c.channels().clear();
            }
        }
        *inner.conns.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }
}

/// Routes the server's events to their calls on the connection's reader
/// task (see [`zmtp::Deliver`]): no hand-off between reading a reply and
/// waking its caller.
struct Route {
    conn: std::sync::Weak<Conn>,
    limits: DecodeLimits,
}

impl zmtp::Deliver for Route {
    fn deliver(&self, batch: &mut std::collections::VecDeque<Message>, _: &mut Context<'_>) {
        let Some(conn) = self.conn.upgrade() else {
            return;
        };
        for msg in batch.drain(..) {
            route(&conn, self.limits, msg);
        }
    }
}

/// Hands one message from the server to its call's mailbox.
fn route(conn: &Conn, limits: DecodeLimits, msg: Message) {
    let Some(payload) = msg.last() else { return };
    let (channel, ev) = match Event::decode_reply(payload, limits) {
        Ok(decoded) => decoded,
        Err(e) => {
            tracing::warn!(error = %e, "dropping undecodable event from server");
            return;
        }
    };
    let Some(channel) = channel else {
        tracing::debug!(name = %ev.name(), "event without response_to, dropped");
        return;
    };
    let mut chans = conn.channels();
    if let Some(tx) = chans.get(&channel) {
        if let Err(MailError::Full) = tx.try_send(ev, payload.len()) {
            // The server ignored our credit: fail that call only.
            tracing::warn!(%channel, "server overflowed the channel window; failing the call");
            chans.remove(&channel);
        }
    }
}

/// Watches a connection's events (drops, refusals) and keeps its
/// channels' timers until `stop`; while it runs, replies are routed on the
/// connection's reader (see [`Route`]).
pub(super) async fn receive_loop(
    conn: Arc<Conn>,
    limits: DecodeLimits,
    mut events: tokio::sync::broadcast::Receiver<zmtp::SocketEvent>,
    stop: CancellationToken,
) {
    let _delivery = conn.dealer.deliver_to(Arc::new(Route {
        conn: Arc::downgrade(&conn),
        limits,
    }));
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            ev = events.recv() => {
                match ev {
                    Ok(zmtp::SocketEvent::Disconnected { .. }) => {
                        // The calls it carried are lost: fail them now
                        // rather than after two silent heartbeat intervals.
                        conn.drops.fetch_add(1, Ordering::SeqCst);
                        conn.channels().clear();
                    }
                    Ok(zmtp::SocketEvent::HandshakeFailed { reason, kind, .. }) => match kind {
                        zmtp::HandshakeFailure::Other => {}
                        // Security refused us, or the endpoint is no
                        // server: waiting calls fail now (see wait_send).
                        kind => conn.set_refusal(Some(Refusal { kind, reason })),
                    },
                    Ok(zmtp::SocketEvent::Connected { .. }) => conn.set_refusal(None),
                    _ => {}
                }
                continue;
            }
            () = conn.timers.due() => {
                let woken = conn.timers.fire(conn.channels().values());
                woken.into_iter().for_each(Waker::wake);
                continue;
            }
            // (what arrived before the delivery was installed)
            m = conn.dealer.recv() => match m {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        route(&conn, limits, msg);
    }
}

/// Opening connections and channels.
impl Client {
    pub(super) async fn connect_resolved(
        endpoints: &[&str],
        opts: ClientOptions,
        named: bool,
    ) -> Result<Client, Error> {
        if endpoints.is_empty() {
            return Err(Error::Config("no endpoint given".into()));
        }
        let stop = CancellationToken::new();
        let refusals = Arc::new(Notify::new());
        let mut conns = Vec::new();
        for ep in endpoints {
            match open_conn(ep, &opts, stop.child_token(), refusals.clone()).await {
                Ok(c) => conns.push(c),
                // (a name may list an endpoint we cannot use: skip it)
                Err(e) if named => {
                    tracing::warn!(endpoint = %ep, error = %e, "skipping a resolved endpoint")
                }
                Err(e) => return Err(e),
            }
        }
        if conns.is_empty() {
            return Err(Error::Naming(format!(
                "none of the resolved endpoints is usable: {}",
                endpoints.join(", ")
            )));
        }
        let wake = named.then(|| Arc::new(Notify::new()));
        let inner = Arc::new(Inner {
            conns: std::sync::RwLock::new(Arc::new(conns)),
            next: AtomicUsize::new(0),
            observers: Observers::new(
                Side::Client,
                opts.recorder.clone(),
                opts.record_payloads,
                opts.metrics,
                opts.on_error.clone(),
            ),
            opts,
            naming: wake.clone(),
            refusals,
            described: std::sync::Mutex::new(None),
        });
        Ok(Client {
            inner,
            timeout: None,
            stop: stop.clone(),
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// Sends the request (waiting for room if there is none): the call,
    /// to be driven by its caller (which started it at `now`).
    pub(super) async fn open_inline(
        &self,
        method: &str,
        args: Vec<Value>,
        trace: Option<&TraceContext>,
        now: std::time::Instant,
    ) -> Result<InlineCall, Error> {
        let (mut call, unsent) = self.open_channel(method, args, trace, now);
        if let Some(msg) = unsent {
            call.send_request(&self.inner, msg).await?;
        }
        Ok(call)
    }

    /// Starts the task that drives `call`'s channel from now on (for
    /// streams, whose consumer may be slow): the caller's end.
    pub(super) fn drive(&self, call: InlineCall) -> CallHandle {
        let ch = &call.driver.ch;
        let (app_tx, app_rx) = mpsc::channel(ch.config().widest_window() as usize + 8);
        let took = Arc::new(Notify::new());
        let expiry = call.expiry();
        tokio::spawn(drive_call(call, app_tx, took.clone()));
        CallHandle {
            app_rx,
            took,
            expiry,
            _alive: self._stop.clone(),
        }
    }

    /// Registers a channel and sends its request if there is room now;
    /// otherwise returns the request, to be sent with [`wait_send`] (with no
    /// server connected yet it waits for one: no slow-joiner loss). `now`
    /// is when the call started.
    pub(super) fn open_channel(
        &self,
        method: &str,
        args: Vec<Value>,
        trace: Option<&TraceContext>,
        now: std::time::Instant,
    ) -> Opened {
        let conn = self.pick();
        let mut request = Event::new(method, Value::Array(args));
        if let Some(ctx) = trace {
            ctx.stamp(&mut request.header);
        }
        let id = request.header.message_id.clone();
        let mut cfg = self.inner.opts.channel;
        if let Some(t) = self.timeout {
            cfg.first_reply_timeout = t;
        }
        // The request carries the smaller of the call's timeout and what
        // is left of the deadline it runs under; the deadline, when it is
        // the smaller, is the channel's too.
        let inherited = crate::deadline::current()
            .map(|at| (at, at.saturating_duration_since(now)))
            .filter(|(_, left)| cfg.first_reply_timeout.is_none_or(|t| *left < t));
        request.header.deadline_ms = inherited
            .map(|(_, left)| left)
            .or(cfg.first_reply_timeout)
            .map(crate::deadline::millis_of);
        // Room for a full window of stream items plus control events (of
        // any size: the window is the bound the server keeps to, and
        // dropping an item within it would break the stream).
        let (net_tx, net_rx) = mailbox(cfg.widest_window() as usize + 16, usize::MAX);
        conn.channels().insert(id.clone(), net_tx);
        let drops_at_open = conn.drops.load(Ordering::SeqCst);
        let msg = crate::event::dealer_message(request);
        let mut ch = Channel::client(id, cfg, now);
        if let Some((at, left)) = inherited {
            ch.set_deadline(at, left);
        }
        if let Some(ctx) = trace {
            // every event of a traced channel carries its context
            ch.set_trace(ctx);
        }
        let unsent = match conn.dealer.try_send_or_return(msg) {
            Err(TrySendError::Full(msg)) => Some(msg),
            // (round-robin sockets only report Full)
            _ => None,
        };
        if unsent.is_some() {
            // (no heartbeat ahead of the request)
            ch.request_waits();
        }
        let call = InlineCall {
            driver: Driver::new(ch),
            out: ToServer {
                conn,
                drops_at_open,
                sending: None,
            },
            net_rx,
        };
        (call, unsent)
    }

    /// A connection for a new channel: round robin over the healthy ones
    /// (connected, no recent lost call), else over the connected ones,
    /// else any (the request then waits for its server to appear).
    pub(super) fn pick(&self) -> Arc<Conn> {
        let conns = self.inner.conns();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let in_turn = || (0..conns.len()).map(|i| &conns[(start + i) % conns.len()]);
        if let Some(c) = in_turn().find(|c| c.healthy()) {
            return c.clone();
        }
        if let Some(wake) = &self.inner.naming {
            // none healthy: the service may have moved
            wake.notify_one();
        }
        in_turn()
            .find(|c| c.dealer.peer_count() > 0)
            // (a refused connection only where all are)
            .or_else(|| in_turn().find(|c| c.refusal().is_none()))
            .unwrap_or(&conns[start % conns.len()])
            .clone()
    }
}

/// What [`Client::open_channel`] returns: the call (its channel
/// registered), and its request if it still has to be sent.
pub(super) type Opened = (InlineCall, Option<Message>);
