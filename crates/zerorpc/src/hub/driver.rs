//! [`Hub`]: the thin tokio driver of a [`HubCore`] (its two ROUTER
//! sockets, timers and statistics requests).

use super::*;

/// The hub: a `HubCore` between two ROUTER sockets.
pub struct Hub {
    input: RouterSocket,
    output: RouterSocket,
    core: Arc<Mutex<HubCore>>,
    opts: HubOptions,
    cancel: CancellationToken,
    monitors: Mutex<
        Option<(
            tokio::sync::broadcast::Receiver<SocketEvent>,
            tokio::sync::broadcast::Receiver<SocketEvent>,
        )>,
    >,
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
            core: Arc::new(Mutex::new(HubCore::new(&opts))),
            input,
            output,
            opts,
            cancel: CancellationToken::new(),
            monitors: Mutex::new(monitors),
        }
    }

    /// Binds the clients' side.
    pub async fn bind_in(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.input.bind(endpoint).await?)
    }

    /// Binds the workers' side.
    pub async fn bind_out(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.output.bind(endpoint).await?)
    }

    /// Current statistics.
    pub fn stats(&self) -> HubStats {
        self.core().stats(Instant::now())
    }

    /// Stops the hub.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    fn core(&self) -> std::sync::MutexGuard<'_, HubCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Routes until [`Hub::shutdown`] or drop. Call once.
    pub async fn run(&self) -> Result<(), Error> {
        let Some((mut in_events, mut out_events)) = self
            .monitors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return Err(Error::Config("Hub::run called twice".into()));
        };
        let mut tick = tokio::time::interval(self.opts.heartbeat / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Per worker whose send queue is full: a ping that waits for room in
        // that queue; when it goes out the worker takes calls again.
        let mut room: FuturesUnordered<BoxFuture<'_, Bytes>> = FuturesUnordered::new();
        loop {
            for id in self.flush() {
                room.push(Box::pin(async move {
                    let ping = Event::new("_zerorpc_ping", Value::Array(vec![])).encode();
                    let m = Message::from_iter([id.clone(), Bytes::new(), ping]);
                    if let Err(e) = self.output.send(m).await {
                        // (gone: its disconnection reaches the core)
                        tracing::debug!(error = %e, "hub could not wait for a worker's queue");
                    }
                    id
                }));
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Ok(()),
                m = self.input.recv() => {
                    let now = Instant::now();
                    with_waiting(&self.input, m?, |m| self.core().on_client(m, now))?;
                }
                m = self.output.recv() => {
                    let now = Instant::now();
                    with_waiting(&self.output, m?, |m| self.core().on_worker(m, now))?;
                }
                Some(id) = room.next(), if !room.is_empty() => {
                    self.core().worker_ready(&id, Instant::now());
                }
                ev = out_events.recv() => {
                    match ev {
                        Ok(SocketEvent::Connected { routing_id: Some(id), .. }) => {
                            self.core().worker_joined(id, Instant::now());
                        }
                        Ok(SocketEvent::Disconnected { routing_id: Some(id), .. }) => {
                            self.core().worker_left(&id);
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::error!(missed = n, "hub missed worker connection events");
                        }
                        _ => {}
                    }
                }
                ev = in_events.recv() => {
                    if let Ok(SocketEvent::Disconnected { routing_id: Some(id), .. }) = ev {
                        self.core().client_left(&id);
                    }
                }
                _ = tick.tick() => {
                    self.core().handle_timeout(Instant::now());
                }
            }
        }
    }

    /// Sends what the core produced, without waiting, rather than stall
    /// everyone for one peer: what a full queue refuses goes back to the
    /// core ([`HubCore::refused`]: a new call waits in the hub again, other
    /// events are counted in [`HubStats::dropped`]); a peer that vanished
    /// is skipped (its disconnection reaches the core). Returns the workers
    /// whose queue just filled up.
    fn flush(&self) -> Vec<Bytes> {
        let mut core = self.core();
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

/// Hands `first`, then the messages already waiting behind it (up to 64),
/// to `f`: one wake-up serves a batch.
pub(super) fn with_waiting(
    socket: &RouterSocket,
    first: Message,
    mut f: impl FnMut(Message),
) -> Result<(), Error> {
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(m) = next.take() {
        f(m);
        taken += 1;
        if taken < 64 {
            next = socket.try_recv()?;
        }
    }
    Ok(())
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
