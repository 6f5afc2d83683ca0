//! Hosted consumers: a callback per message that answers what to do with
//! it, like fedora-messaging's (`Nack` → [`Verdict::Retry`], `Drop` →
//! [`Verdict::Drop`], `HaltConsumer` → [`Verdict::Halt`]).
//!
//! The callback runs in its own task (or on the blocking pool, for
//! [`consume_blocking`]), off the subscription's I/O: a long callback
//! never stalls heartbeats or other consumers; messages wait in the
//! subscription's bounded buffer, then the daemon holds them back (flow
//! control), and nothing is lost. Messages are handled one at a time, in
//! order. With a position file, a consumer that stops (or halts) resumes
//! where it left off: [`resume_from`].
//!
//! # On a broker
//!
//! A delivery from a broker with manual acknowledgements (AMQP or NATS,
//! see [`crate::transport`]) is settled on the broker from the verdict, so
//! that several consumer processes can share one queue or durable consumer:
//!
//! | verdict | AMQP | JetStream |
//! |---|---|---|
//! | [`Verdict::Ack`] | `basic.ack` | `+ACK` |
//! | [`Verdict::Retry`] | `basic.nack`, requeued after the retry delay | `-NAK` with the retry delay |
//! | [`Verdict::Drop`] (and a retry past `max_attempts`) | `basic.reject`, not requeued (dead-lettered where the queue says) | `+TERM` |
//! | [`Verdict::Halt`] | `basic.nack`, requeued; the consumer is cancelled | `-NAK`; the consumer stops |
//!
//! A retried message may come back to another process; its attempt count is
//! the broker's ([`Delivery::attempt`]). While a callback runs, the broker
//! is told now and then that the message is still being worked on
//! (JetStream `+WPI`, every [`ConsumerOptions::in_progress_every`]), so a
//! long callback does not get its message handed to someone else; AMQP's
//! heartbeats run on the connection's own task, whatever the callback does.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::subscriber::{Delivery, Event, Since, Subscription};
use crate::transport::{Ack, Settlement};
use crate::Error;

/// What the callback says of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handled: go on.
    Ack,
    /// Not now: hand it over again after a delay (doubling up to
    /// [`ConsumerOptions::max_retry_delay`]).
    Retry,
    /// Give up on it: go on without it (counted).
    Drop,
    /// Stop consuming; the message is not acknowledged (a consumer with a
    /// position file resumes with it).
    Halt,
}

/// How a hosted consumer runs.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// First delay before a retried message is handed over again.
    pub retry_delay: Duration,
    /// Longest delay between retries.
    pub max_retry_delay: Duration,
    /// Attempts after which a message that keeps asking for a retry is
    /// dropped (`None`: retry forever, as fedora-messaging does).
    pub max_attempts: Option<u32>,
    /// Where the next sequence number to handle is kept, written at most
    /// every `position_interval` and when the consumer ends.
    pub position_file: Option<PathBuf>,
    /// See `position_file`.
    pub position_interval: Duration,
    /// How often a broker hears that a long callback's message is still
    /// being worked on (keep it under the broker's ack wait).
    pub in_progress_every: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            max_attempts: None,
            position_file: None,
            position_interval: Duration::from_secs(1),
            in_progress_every: Duration::from_secs(5),
        }
    }
}

/// How a consumer ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerReport {
    /// Messages acknowledged.
    pub acked: u64,
    /// Messages dropped (by the callback or past `max_attempts`).
    pub dropped: u64,
    /// Retries made.
    pub retries: u64,
    /// Callbacks that panicked (each counted as a retry).
    pub panics: u64,
    /// Quarantined messages skipped.
    pub quarantined: u64,
    /// The sequence number of the message the callback halted on.
    pub halted_at: Option<u64>,
}

/// Where a consumer with this position file starts: after the last
/// message it handled, or `otherwise` when the file does not exist.
pub fn resume_from(position_file: &Path, otherwise: Since) -> Result<Since, Error> {
    match std::fs::read_to_string(position_file) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map(Since::Seq)
            .map_err(|e| Error::Io {
                path: position_file.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(otherwise),
        Err(source) => Err(Error::Io {
            path: position_file.display().to_string(),
            source,
        }),
    }
}

/// Runs `handler` on every message of `subscription` until it ends or the
/// handler halts.
pub async fn consume<F, Fut>(
    subscription: Subscription,
    opts: ConsumerOptions,
    mut handler: F,
) -> Result<ConsumerReport, Error>
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = Verdict> + Send + 'static,
{
    run(subscription, opts, |d| {
        let fut = handler(d);
        async move { tokio::spawn(fut).await.ok() }
    })
    .await
}

/// [`consume`] for a blocking callback (it runs on the blocking pool).
pub async fn consume_blocking<F>(
    subscription: Subscription,
    opts: ConsumerOptions,
    handler: F,
) -> Result<ConsumerReport, Error>
where
    F: Fn(Delivery) -> Verdict + Send + Sync + 'static,
{
    let handler = std::sync::Arc::new(handler);
    run(subscription, opts, move |d| {
        let h = handler.clone();
        async move { tokio::task::spawn_blocking(move || h(d)).await.ok() }
    })
    .await
}

async fn run<F, Fut>(
    mut subscription: Subscription,
    opts: ConsumerOptions,
    mut call: F,
) -> Result<ConsumerReport, Error>
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = Option<Verdict>>,
{
    let mut report = ConsumerReport::default();
    let mut position = Position::new(opts.position_file.clone(), opts.position_interval);
    while let Some(event) = subscription.recv().await {
        let delivery = match event {
            Event::Message(d) => d,
            Event::Quarantined { seq, .. } => {
                report.quarantined += 1;
                if let Some(seq) = seq {
                    position.advance(seq + 1)?;
                }
                continue;
            }
        };
        if let Some(ack) = delivery.ack.clone() {
            if settle_on_broker(&ack, delivery, &opts, &mut report, &mut call).await {
                return Ok(report);
            }
            continue;
        }
        let mut attempts = 0u32;
        let mut delay = opts.retry_delay;
        loop {
            attempts += 1;
            let verdict = match call(delivery.clone()).await {
                Some(v) => v,
                None => {
                    report.panics += 1;
                    tracing::warn!(
                        msg_id = %delivery.message.msg_id,
                        "bus consumer: the callback panicked; retrying the message"
                    );
                    Verdict::Retry
                }
            };
            match verdict {
                Verdict::Ack => report.acked += 1,
                Verdict::Drop => report.dropped += 1,
                Verdict::Halt => {
                    report.halted_at = delivery.seq;
                    // The halted message is the next to handle, even when
                    // it is the first this consumer was handed.
                    if let Some(seq) = delivery.seq {
                        position.hold(seq);
                    }
                    position.flush()?;
                    return Ok(report);
                }
                Verdict::Retry => {
                    if opts.max_attempts.is_some_and(|m| attempts >= m) {
                        tracing::warn!(
                            msg_id = %delivery.message.msg_id,
                            "bus consumer: dropping a message after {attempts} attempts"
                        );
                        report.dropped += 1;
                    } else {
                        report.retries += 1;
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(opts.max_retry_delay);
                        continue;
                    }
                }
            }
            break;
        }
        if let Some(seq) = delivery.seq {
            position.advance(seq + 1)?;
        }
    }
    position.flush()?;
    Ok(report)
}

/// Runs the callback on a broker's delivery and settles it there from the
/// verdict (see the module docs); `true` when the consumer halts.
async fn settle_on_broker<F, Fut>(
    ack: &Ack,
    delivery: Delivery,
    opts: &ConsumerOptions,
    report: &mut ConsumerReport,
    call: &mut F,
) -> bool
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = Option<Verdict>>,
{
    let attempt = delivery.attempt.max(1);
    let msg_id = delivery.message.msg_id.clone();
    let seq = delivery.seq;
    let verdict = {
        let callback = call(delivery);
        tokio::pin!(callback);
        let mut tick = tokio::time::interval(opts.in_progress_every);
        tick.tick().await;
        loop {
            tokio::select! {
                v = &mut callback => break v,
                _ = tick.tick() => {
                    if let Err(e) = ack.in_progress().await {
                        tracing::debug!(%msg_id, "bus consumer: telling the broker we are still working: {e}");
                    }
                }
            }
        }
    };
    let verdict = verdict.unwrap_or_else(|| {
        report.panics += 1;
        tracing::warn!(%msg_id, "bus consumer: the callback panicked; retrying the message");
        Verdict::Retry
    });
    let how = match verdict {
        Verdict::Ack => {
            report.acked += 1;
            Settlement::Ack
        }
        Verdict::Drop => {
            report.dropped += 1;
            Settlement::Reject
        }
        Verdict::Retry if opts.max_attempts.is_some_and(|m| attempt >= m) => {
            tracing::warn!(%msg_id, "bus consumer: dropping a message after {attempt} attempts");
            report.dropped += 1;
            Settlement::Reject
        }
        Verdict::Retry => {
            report.retries += 1;
            let doubling = 2u32.saturating_pow(attempt - 1);
            Settlement::Requeue(
                opts.retry_delay
                    .saturating_mul(doubling)
                    .min(opts.max_retry_delay),
            )
        }
        Verdict::Halt => {
            report.halted_at = seq;
            Settlement::Requeue(Duration::ZERO)
        }
    };
    if let Err(e) = ack.settle(how).await {
        // The broker hands it over again (to us or another consumer).
        tracing::warn!(%msg_id, "bus consumer: settling a message ({how:?}): {e}");
    }
    verdict == Verdict::Halt
}

/// The next sequence number to handle, saved now and then.
struct Position {
    file: Option<PathBuf>,
    interval: Duration,
    next: Option<u64>,
    saved: Option<u64>,
    last_write: Instant,
}

impl Position {
    fn new(file: Option<PathBuf>, interval: Duration) -> Position {
        Position {
            file,
            interval,
            next: None,
            saved: None,
            last_write: Instant::now(),
        }
    }

    fn advance(&mut self, next: u64) -> Result<(), Error> {
        self.next = Some(next);
        if self.last_write.elapsed() >= self.interval {
            self.flush()?;
        }
        Ok(())
    }

    /// Makes `next` the position, to be written by the next flush.
    fn hold(&mut self, next: u64) {
        self.next = Some(next);
    }

    fn flush(&mut self) -> Result<(), Error> {
        let (Some(file), Some(next)) = (&self.file, self.next) else {
            return Ok(());
        };
        if self.saved == Some(next) {
            return Ok(());
        }
        let tmp = file.with_extension("tmp");
        let io = |source| Error::Io {
            path: file.display().to_string(),
            source,
        };
        std::fs::write(&tmp, format!("{next}\n")).map_err(io)?;
        std::fs::rename(&tmp, file).map_err(io)?;
        self.saved = Some(next);
        self.last_write = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The verdict → settlement mapping, on a recording broker handle and
    //! virtual time (the real brokers' side is tested in `tests/`).

    use std::sync::{Arc, Mutex};

    use serde_json::json;
    use tokio::sync::mpsc;

    use super::*;
    use crate::message::Message;
    use crate::subscriber::Stats;
    use crate::transport::{BoxFuture, Settle};

    #[derive(Debug, Clone, PartialEq)]
    enum Seen {
        Settled(String, Settlement),
        InProgress(String),
    }

    struct Recorder {
        id: String,
        log: Arc<Mutex<Vec<Seen>>>,
    }

    impl Settle for Recorder {
        fn settle(&self, how: Settlement) -> BoxFuture<'static, Result<(), Error>> {
            self.log
                .lock()
                .unwrap()
                .push(Seen::Settled(self.id.clone(), how));
            Box::pin(async { Ok(()) })
        }
        fn in_progress(&self) -> BoxFuture<'static, Result<(), Error>> {
            self.log
                .lock()
                .unwrap()
                .push(Seen::InProgress(self.id.clone()));
            Box::pin(async { Ok(()) })
        }
    }

    /// A subscription yielding one broker delivery per `(id, attempt)`.
    fn deliveries(items: &[(&str, u32)], log: &Arc<Mutex<Vec<Seen>>>) -> Subscription {
        let (tx, rx) = mpsc::channel(items.len().max(1));
        for (id, attempt) in items {
            let mut m = Message::new("t", json!({"id": id}), 1, "u");
            m.msg_id = (*id).to_owned();
            let mut d = Delivery::new(None, m);
            d.attempt = *attempt;
            d.ack = Some(Ack::new(Recorder {
                id: (*id).to_owned(),
                log: log.clone(),
            }));
            tx.try_send(Event::Message(d)).unwrap();
        }
        drop(tx);
        Subscription::from_parts(rx, tokio::spawn(async {}), Arc::new(Stats::default()))
    }

    fn verdict_for(d: &Delivery) -> Verdict {
        match d
            .message
            .msg
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or("")
        {
            "ok" => Verdict::Ack,
            "bad" => Verdict::Drop,
            "halt" => Verdict::Halt,
            _ => Verdict::Retry,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn verdicts_become_broker_settlements() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sub = deliveries(
            &[
                ("ok", 1),
                ("bad", 1),
                ("retry", 1),
                ("retry3", 3),
                ("retry9", 9),
            ],
            &log,
        );
        let opts = ConsumerOptions {
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            ..ConsumerOptions::default()
        };
        let report = consume(sub, opts, |d| {
            let v = verdict_for(&d);
            async move { v }
        })
        .await
        .unwrap();
        let settled: Vec<Seen> = log.lock().unwrap().clone();
        assert_eq!(
            settled,
            vec![
                Seen::Settled("ok".into(), Settlement::Ack),
                Seen::Settled("bad".into(), Settlement::Reject),
                Seen::Settled("retry".into(), Settlement::Requeue(Duration::from_secs(1))),
                // The delay doubles with the broker's attempt count...
                Seen::Settled("retry3".into(), Settlement::Requeue(Duration::from_secs(4))),
                // ... up to the longest delay.
                Seen::Settled(
                    "retry9".into(),
                    Settlement::Requeue(Duration::from_secs(60))
                ),
            ]
        );
        assert_eq!((report.acked, report.dropped, report.retries), (1, 1, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_past_max_attempts_are_rejected_and_halt_requeues_and_stops() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sub = deliveries(&[("r", 1), ("r2", 2), ("halt", 1), ("never", 1)], &log);
        let opts = ConsumerOptions {
            max_attempts: Some(2),
            ..ConsumerOptions::default()
        };
        let report = consume(sub, opts, |d| {
            let v = verdict_for(&d);
            async move { v }
        })
        .await
        .unwrap();
        assert_eq!(
            log.lock().unwrap().clone(),
            vec![
                Seen::Settled("r".into(), Settlement::Requeue(Duration::from_secs(1))),
                Seen::Settled("r2".into(), Settlement::Reject),
                Seen::Settled("halt".into(), Settlement::Requeue(Duration::ZERO)),
            ],
            "the message after the halt is not handled"
        );
        assert_eq!((report.retries, report.dropped), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_callback_keeps_telling_the_broker_and_a_panic_is_a_retry() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sub = deliveries(&[("slow", 1), ("boom", 1)], &log);
        let opts = ConsumerOptions {
            in_progress_every: Duration::from_secs(5),
            ..ConsumerOptions::default()
        };
        let report = consume(sub, opts, |d| async move {
            if d.message.msg_id == "boom" {
                panic!("a callback bug");
            }
            tokio::time::sleep(Duration::from_secs(12)).await;
            Verdict::Ack
        })
        .await
        .unwrap();
        assert_eq!(
            log.lock().unwrap().clone(),
            vec![
                Seen::InProgress("slow".into()),
                Seen::InProgress("slow".into()),
                Seen::Settled("slow".into(), Settlement::Ack),
                Seen::Settled("boom".into(), Settlement::Requeue(Duration::from_secs(1))),
            ]
        );
        assert_eq!((report.acked, report.panics, report.retries), (1, 1, 1));
    }
}
