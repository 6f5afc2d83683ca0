//! Durable sources (feature `bus`): a spout over the event bus, so the
//! whole path from a durable log to the last bolt is at-least-once (the
//! role Kafka plays in streamparse's talk).
//!
//! [`BusSpout`] reads any [`zerorpc_bus`] subscription and emits each
//! message as `[topic, body, msg_id]`, tracked. When its tuple tree
//! completes, the message is settled:
//! - from a broker with manual acknowledgements (NATS JetStream, a durable
//!   consumer: [`BusSpout::jetstream`]), the tree's ack acks the JetStream
//!   message and a failed or timed-out tree NAKs it, so JetStream delivers
//!   it again; a runner killed with messages in flight leaves them
//!   unacknowledged, and JetStream delivers them to the next run;
//! - from the bus daemon ([`BusSpout::daemon`]), a failed tree is emitted
//!   again from memory, and with a checkpoint file the spout records the
//!   sequence below which everything is acked, and resumes from it when it
//!   starts again (replay from its sequence).
//!
//! The subscription runs on the runner's tokio runtime (or a runtime of
//! the spout's own when served over multi-lang) and hands messages over
//! through a bounded queue: a spout at `max.spout.pending` holds the
//! subscription back, and with it the broker (its prefetch).

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use zerorpc_bus::subscriber::{Delivery, Event, Filters, Since, Subscription};
use zerorpc_bus::transport::nats::{NatsOptions, NatsSubscribe};
use zerorpc_bus::transport::{Ack, Settlement};

use crate::component::{Outputs, Spout, SpoutCollector, SpoutWaker, TaskContext};
use crate::error::BoxError;
use crate::topology::Registry;
use crate::tuple::{MsgId, Value};

type Subscribe = Box<
    dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<Subscription, zerorpc_bus::Error>> + Send>>
        + Send,
>;

/// A message handed to the topology and not yet settled.
struct Held {
    delivery: Delivery,
}

/// A spout over an event-bus subscription (see the module doc).
pub struct BusSpout {
    subscribe: Option<Subscribe>,
    rx: Option<mpsc::Receiver<Event>>,
    runtime: Option<tokio::runtime::Runtime>,
    handle: Option<tokio::runtime::Handle>,
    held: std::collections::HashMap<u64, Held>,
    replay: VecDeque<u64>,
    next_id: u64,
    queue: usize,
    checkpoint: Option<PathBuf>,
    /// Sequences emitted and not acked (daemon checkpoints).
    unacked: BTreeSet<u64>,
    last_seq: Option<u64>,
    saved_at: Option<Instant>,
    /// Why the subscription could not start, reported once by `next_tuple`.
    failure: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl BusSpout {
    /// A spout over the subscription `subscribe` makes (called once, in
    /// `open`).
    pub fn new<F, Fut>(subscribe: F) -> BusSpout
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Subscription, zerorpc_bus::Error>> + Send + 'static,
    {
        BusSpout {
            subscribe: Some(Box::new(move || Box::pin(subscribe()))),
            rx: None,
            runtime: None,
            handle: None,
            held: Default::default(),
            replay: VecDeque::new(),
            next_id: 0,
            queue: 256,
            checkpoint: None,
            unacked: BTreeSet::new(),
            last_seq: None,
            saved_at: None,
            failure: Default::default(),
        }
    }

    /// Over a JetStream durable consumer (manual acknowledgements: a
    /// message is acked when its tuple tree is).
    pub fn jetstream(opts: NatsOptions, how: NatsSubscribe, patterns: Vec<String>) -> BusSpout {
        let mut spout = BusSpout::new(move || async move {
            let how = NatsSubscribe {
                manual_ack: true,
                ..how
            };
            zerorpc_bus::transport::nats::subscribe(
                &opts,
                how,
                Filters {
                    patterns,
                    ..Filters::default()
                },
            )
            .await
        });
        spout.queue = 64;
        spout
    }

    /// Over the bus daemon at `ingest`, from `since` (or from the
    /// checkpoint, when one is set and exists).
    pub fn daemon(ingest: &str, since: Since, patterns: Vec<String>) -> BusSpout {
        let ingest = ingest.to_string();
        BusSpout::new(move || async move {
            Subscription::bus(
                &ingest,
                since,
                Filters {
                    patterns,
                    ..Filters::default()
                },
            )
            .await
        })
    }

    /// Keeps the sequence below which every message is acked in `path`,
    /// and resumes from it (daemon subscriptions; see [`BusSpout::daemon_resuming`]).
    pub fn with_checkpoint(mut self, path: PathBuf) -> BusSpout {
        self.checkpoint = Some(path);
        self
    }

    /// Over the bus daemon, resuming from the checkpoint file when it
    /// exists (else from `since`), and keeping it.
    pub fn daemon_resuming(
        ingest: &str,
        since: Since,
        patterns: Vec<String>,
        checkpoint: PathBuf,
    ) -> BusSpout {
        let since = std::fs::read_to_string(&checkpoint)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Since::Seq)
            .unwrap_or(since);
        BusSpout::daemon(ingest, since, patterns).with_checkpoint(checkpoint)
    }

    fn settle(&self, ack: Ack, how: Settlement) {
        if let Some(h) = &self.handle {
            h.spawn(async move {
                if let Err(e) = ack.settle(how).await {
                    tracing::warn!("settling a bus message: {e}");
                }
            });
        }
    }

    /// Writes the checkpoint (at most every 100 ms, or when `force`).
    fn save(&mut self, force: bool) {
        let Some(path) = &self.checkpoint else {
            return;
        };
        if !force
            && self
                .saved_at
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        let Some(mark) = self
            .unacked
            .first()
            .copied()
            .or(self.last_seq.map(|s| s + 1))
        else {
            return;
        };
        self.saved_at = Some(Instant::now());
        let tmp = path.with_extension("tmp");
        if let Err(e) =
            std::fs::write(&tmp, mark.to_string()).and_then(|_| std::fs::rename(&tmp, path))
        {
            tracing::warn!("checkpoint {}: {e}", path.display());
        }
    }
}

fn tuple_of(d: &Delivery) -> Vec<Value> {
    vec![
        Value::String(d.message.topic.clone()),
        d.message.msg.clone(),
        Value::String(d.message.msg_id.clone()),
    ]
}

impl Spout for BusSpout {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["topic", "body", "msg_id"])
    }

    fn open(&mut self, ctx: &TaskContext, waker: SpoutWaker) -> Result<(), BoxError> {
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(h) => h,
            Err(_) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()?;
                let h = rt.handle().clone();
                self.runtime = Some(rt);
                h
            }
        };
        let subscribe = self.subscribe.take().ok_or("the spout was opened twice")?;
        let (tx, rx) = mpsc::channel(self.queue);
        let component = ctx.component.clone();
        let failure = self.failure.clone();
        handle.spawn(async move {
            let mut sub = match subscribe().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(component, "cannot subscribe: {e}");
                    if let Ok(mut f) = failure.lock() {
                        *f = Some(format!("cannot subscribe: {e}"));
                    }
                    waker.wake();
                    return;
                }
            };
            while let Some(ev) = sub.recv().await {
                if tx.send(ev).await.is_err() {
                    return;
                }
                waker.wake();
            }
        });
        self.rx = Some(rx);
        self.handle = Some(handle);
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        if let Some(id) = self.replay.pop_front() {
            if let Some(h) = self.held.get(&id) {
                out.emit(tuple_of(&h.delivery), json!(id))?;
            }
            return Ok(());
        }
        if let Some(why) = self.failure.lock().ok().and_then(|mut f| f.take()) {
            return Err(why.into());
        }
        let Some(rx) = self.rx.as_mut() else {
            return Ok(());
        };
        match rx.try_recv() {
            Ok(Event::Message(d)) => {
                let id = self.next_id;
                self.next_id += 1;
                if let (Some(seq), None) = (d.seq, &d.ack) {
                    self.unacked.insert(seq);
                    self.last_seq = Some(self.last_seq.map_or(seq, |l| l.max(seq)));
                }
                out.emit(tuple_of(&d), json!(id))?;
                self.held.insert(id, Held { delivery: d });
            }
            Ok(Event::Quarantined { seq, reason, .. }) => {
                out.log(3, &format!("quarantined message {seq:?}: {reason}"));
            }
            Err(_) => {}
        }
        Ok(())
    }

    fn ack(&mut self, msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        let Some(held) = msg_id.as_u64().and_then(|id| self.held.remove(&id)) else {
            return Ok(());
        };
        match held.delivery.ack {
            Some(ack) => self.settle(ack, Settlement::Ack),
            None => {
                if let Some(seq) = held.delivery.seq {
                    self.unacked.remove(&seq);
                    self.save(false);
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        let Some(id) = msg_id.as_u64() else {
            return Ok(());
        };
        let broker_ack = self.held.get(&id).and_then(|h| h.delivery.ack.clone());
        match broker_ack {
            // The broker delivers it again (to this spout or another).
            Some(ack) => {
                self.held.remove(&id);
                self.settle(ack, Settlement::Requeue(Duration::ZERO));
            }
            None if self.held.contains_key(&id) => self.replay.push_back(id),
            None => {}
        }
        Ok(())
    }

    fn close(&mut self) {
        self.save(true);
        // Unsettled broker messages are redelivered after their ack wait.
        self.rx = None;
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Registers the sources as Flux classes: `org.zerorpc.stream.JetStreamSpout`
/// with one map argument `{url, durable, prefix, patterns, ack_wait_secs,
/// prefetch}` and `org.zerorpc.stream.BusDaemonSpout` with `{ingest,
/// patterns, checkpoint}`.
pub fn register(registry: Registry) -> Registry {
    registry
        .spout("org.zerorpc.stream.JetStreamSpout", |args| {
            let a = args.first().cloned().unwrap_or(Value::Null);
            let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
            let url = s("url").unwrap_or_else(|| "nats://127.0.0.1:4222".into());
            let how = NatsSubscribe {
                durable: s("durable"),
                prefix: s("prefix"),
                prefetch: a.get("prefetch").and_then(Value::as_u64).unwrap_or(64) as usize,
                manual_ack: true,
                since: Since::Start,
                ack_wait: Duration::from_secs_f64(
                    a.get("ack_wait_secs")
                        .and_then(Value::as_f64)
                        .unwrap_or(30.0),
                ),
            };
            Ok(BusSpout::jetstream(
                NatsOptions::new(url),
                how,
                patterns(&a),
            ))
        })
        .spout("org.zerorpc.stream.BusDaemonSpout", |args| {
            let a = args.first().cloned().unwrap_or(Value::Null);
            let ingest = a
                .get("ingest")
                .and_then(Value::as_str)
                .ok_or("BusDaemonSpout needs {ingest: ADDRESS}")?;
            Ok(match a.get("checkpoint").and_then(Value::as_str) {
                Some(c) => BusSpout::daemon_resuming(ingest, Since::Start, patterns(&a), c.into()),
                None => BusSpout::daemon(ingest, Since::Start, patterns(&a)),
            })
        })
}

fn patterns(a: &Value) -> Vec<String> {
    a.get("patterns")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
