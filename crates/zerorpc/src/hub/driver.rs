//! [`Hub`]: the thin tokio driver of a [`HubCore`]. Messages are routed
//! where they are decoded, on the reader task of the connection they
//! came in on ([`zmtp::Deliver`]), and forwarded without waiting; the
//! hub's own task keeps the timers, connection events, statistics
//! requests, and the wait for room in a full worker's queue.

use super::*;

/// The hub: a `HubCore` between two ROUTER sockets.
pub struct Hub {
    shared: Arc<Shared>,
    opts: HubOptions,
    cancel: CancellationToken,
    monitors: Mutex<
        Option<(
            tokio::sync::broadcast::Receiver<SocketEvent>,
            tokio::sync::broadcast::Receiver<SocketEvent>,
        )>,
    >,
}

/// What the hub's task and the connections' readers share.
struct Shared {
    input: RouterSocket,
    output: RouterSocket,
    core: Mutex<HubCore>,
    /// Workers whose send queue filled up while a reader forwarded to
    /// them: the hub's task waits for room in each (woken by `full_wake`).
    full: Mutex<Vec<Bytes>>,
    full_wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish()
    }
}

impl Hub {
    /// A hub; bind its sides with [`Hub::bind_in`] and [`Hub::bind_out`],
    /// then [`Hub::run`].
    pub fn new(opts: HubOptions) -> Self {
        let input = RouterSocket::with_options(opts.socket.clone());
        let output = RouterSocket::with_options(opts.socket.clone());
        // Watch connections from the start, so no worker is missed.
        let monitors = Some((input.monitor(), output.monitor()));
        Hub {
            shared: Arc::new(Shared {
                core: Mutex::new(HubCore::new(&opts)),
                input,
                output,
                full: Mutex::new(Vec::new()),
                full_wake: tokio::sync::Notify::new(),
            }),
            opts,
            cancel: CancellationToken::new(),
            monitors: Mutex::new(monitors),
        }
    }

    /// Binds the clients' side.
    pub async fn bind_in(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.shared.input.bind(endpoint).await?)
    }

    /// Binds the workers' side.
    pub async fn bind_out(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.shared.output.bind(endpoint).await?)
    }

    /// Current statistics.
    pub fn stats(&self) -> HubStats {
        self.shared.core().stats(Instant::now())
    }

    /// Stops the hub.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Stops the hub, as [`Hub::shutdown`] does, and returns once both of
    /// its sides' endpoints are released: a new hub can bind them at once.
    pub async fn close(&self) {
        self.cancel.cancel();
        self.shared.input.close().await;
        self.shared.output.close().await;
    }

    /// A message received, `None` when the socket failed because the hub
    /// was closed (see [`Hub::close`]), or the failure.
    fn unless_closed(&self, r: zmtp::Result<Message>) -> Result<Option<Message>, Error> {
        match r {
            Ok(m) => Ok(Some(m)),
            Err(_) if self.cancel.is_cancelled() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Routes until [`Hub::shutdown`], [`Hub::close`] or drop. Call once.
    pub async fn run(&self) -> Result<(), Error> {
        let Some((mut in_events, mut out_events)) = self
            .monitors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return Err(Error::Config("Hub::run called twice".into()));
        };
        let s = &self.shared;
        // From here on the connections' readers route what they decode.
        let _deliveries = (
            s.input.deliver_to(Arc::new(Route {
                shared: Arc::downgrade(s),
                from_workers: false,
            })),
            s.output.deliver_to(Arc::new(Route {
                shared: Arc::downgrade(s),
                from_workers: true,
            })),
        );
        let mut tick = tokio::time::interval(self.opts.heartbeat / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Per worker whose send queue is full: a ping that waits for room in
        // that queue; when it goes out the worker takes calls again.
        let mut room: FuturesUnordered<BoxFuture<'_, Bytes>> = FuturesUnordered::new();
        loop {
            let mut full = s.route(|_| {});
            full.append(&mut s.full.lock().unwrap_or_else(|p| p.into_inner()));
            for id in full {
                room.push(Box::pin(async move {
                    let ping = Event::new("_zerorpc_ping", Value::Array(vec![])).encode();
                    let m = Message::from_iter([id.clone(), Bytes::new(), ping]);
                    if let Err(e) = s.output.send(m).await {
                        // (gone: its disconnection reaches the core)
                        tracing::debug!(error = %e, "hub could not wait for a worker's queue");
                    }
                    id
                }));
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Ok(()),
                // What arrived before this run started.
                m = s.input.recv() => {
                    let now = Instant::now();
                    let Some(m) = self.unless_closed(m)? else { return Ok(()) };
                    s.core().on_client(m, now);
                }
                m = s.output.recv() => {
                    let now = Instant::now();
                    let Some(m) = self.unless_closed(m)? else { return Ok(()) };
                    s.core().on_worker(m, now);
                }
                _ = s.full_wake.notified() => {}
                Some(id) = room.next(), if !room.is_empty() => {
                    s.core().worker_ready(&id, Instant::now());
                }
                ev = out_events.recv() => {
                    match ev {
                        Ok(SocketEvent::Connected { routing_id: Some(id), .. }) => {
                            s.core().worker_joined(id, Instant::now());
                        }
                        Ok(SocketEvent::Disconnected { routing_id: Some(id), .. }) => {
                            s.core().worker_left(&id);
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::error!(missed = n, "hub missed worker connection events");
                        }
                        _ => {}
                    }
                }
                ev = in_events.recv() => {
                    if let Ok(SocketEvent::Disconnected { routing_id: Some(id), .. }) = ev {
                        s.core().client_left(&id);
                    }
                }
                _ = tick.tick() => {
                    s.core().handle_timeout(Instant::now());
                }
            }
        }
    }
}

impl Shared {
    fn core(&self) -> std::sync::MutexGuard<'_, HubCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Feeds the core with `f`, then sends what it produced, without
    /// waiting, rather than stall everyone for one peer: what a full queue
    /// refuses goes back to the core ([`HubCore::refused`]: a new call
    /// waits in the hub again, other events are counted in
    /// [`HubStats::dropped`]); a peer that vanished is skipped (its
    /// disconnection reaches the core). Returns the workers whose queue
    /// just filled up.
    fn route(&self, f: impl FnOnce(&mut HubCore)) -> Vec<Bytes> {
        let mut core = self.core();
        f(&mut core);
        let mut full = Vec::new();
        loop {
            let mut refused = Vec::new();
            while let Some(out) = core.poll_output() {
                let (socket, m, to_worker) = match out {
                    HubOutput::ToClient(m) => (&self.input, m, false),
                    HubOutput::ToWorker(m) => (&self.output, m, true),
                };
                match socket.try_send_or_return(m) {
                    Ok(()) => {}
                    Err(TrySendError::Full(m)) => refused.push(if to_worker {
                        HubOutput::ToWorker(m)
                    } else {
                        HubOutput::ToClient(m)
                    }),
                    Err(TrySendError::Failed(e)) => {
                        tracing::debug!(error = %e, "hub could not forward an event");
                    }
                }
            }
            if refused.is_empty() {
                return full;
            }
            let dropped = core.dropped;
            full.extend(core.refused(refused, Instant::now()));
            if core.dropped > dropped {
                tracing::debug!(
                    dropped = core.dropped - dropped,
                    "hub dropped events: the peer's queue is full"
                );
            }
        }
    }
}

/// Routes one side's messages on the reader task of the connection they
/// arrived on (see [`zmtp::Deliver`]): one lock of the core and one round
/// of sends per read.
struct Route {
    shared: std::sync::Weak<Shared>,
    /// The `out` side (workers), rather than the `in` side (clients).
    from_workers: bool,
}

impl zmtp::Deliver for Route {
    fn deliver(
        &self,
        batch: &mut std::collections::VecDeque<Message>,
        _cx: &mut std::task::Context<'_>,
    ) {
        // (a hub being dropped: leave them to the queue, unread)
        let Some(s) = self.shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let full = s.route(|core| {
            for m in batch.drain(..) {
                if self.from_workers {
                    core.on_worker(m, now);
                } else {
                    core.on_client(m, now);
                }
            }
        });
        if !full.is_empty() {
            s.full
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(full);
            s.full_wake.notify_one();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
