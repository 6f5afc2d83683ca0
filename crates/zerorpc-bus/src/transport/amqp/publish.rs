//! Publishing: one connection, confirm-mode channels, pipelined
//! `basic.publish` with `mandatory`, and what each message's confirm
//! means (ack, returned then ack, nack, lost with the connection).
//!
//! A batch uses one channel for itself from a small pool (a second batch
//! sent meanwhile gets another channel), because lapin hands a message the
//! broker returned (`basic.return`) to whichever confirm of the same ack
//! frame it completes first: within a channel that serves one batch at a
//! time, returned messages are matched to their publish by `message_id`.
//!
//! The connection is re-opened on demand: a batch that lost its channel
//! (or could not get one) republishes what was not confirmed, with
//! backoff, until `confirm_timeout` from the batch's start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use lapin::message::BasicReturnMessage;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use super::conn::{self, broker_error};
use super::wire::{self, Encoded};
use super::{AmqpOptions, NAME};
use crate::transport::{BoxFuture, Outgoing, Receipt, Transport};
use crate::Error;

/// Idle confirm channels kept for the next batches.
const IDLE_CHANNELS: usize = 8;

/// A publishing connection.
pub struct Amqp {
    inner: Arc<Inner>,
}

struct Inner {
    opts: AmqpOptions,
    state: Mutex<State>,
    /// Publishes awaiting their confirm, over every batch.
    window: Arc<Semaphore>,
}

#[derive(Default)]
struct State {
    conn: Option<Connection>,
    idle: Vec<Channel>,
}

/// What became of one publish in one attempt.
enum Outcome {
    /// Settled: confirmed (a receipt) or failed for good.
    Done(Result<Receipt, Error>),
    /// Lost with the channel or connection (why): publish it again.
    Lost(String),
}

impl Amqp {
    /// Connects (and declares the stream queue, when configured).
    pub async fn connect(opts: AmqpOptions) -> Result<Amqp, Error> {
        let conn = conn::open(&opts.url, "zerorpc-bus publisher", conn::CONNECT_TIMEOUT).await?;
        if let Some(stream) = &opts.stream_queue {
            declare_stream(&conn, &opts, stream).await?;
        }
        let window = Arc::new(Semaphore::new(opts.window.max(1)));
        let state = State {
            conn: Some(conn),
            idle: Vec::new(),
        };
        Ok(Amqp {
            inner: Arc::new(Inner {
                opts,
                state: Mutex::new(state),
                window,
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &AmqpOptions {
        &self.inner.opts
    }
}

/// Declares the durable stream queue `stream` bound to the exchange with
/// `#` (every message).
async fn declare_stream(conn: &Connection, opts: &AmqpOptions, stream: &str) -> Result<(), Error> {
    let url = &opts.url;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| broker_error(url, "cannot open a channel", e))?;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), wire::long_string("stream"));
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(stream.into(), durable, args)
        .await
        .map_err(|e| broker_error(url, &format!("cannot declare the stream {stream:?}"), e))?;
    ch.queue_bind(
        stream.into(),
        opts.exchange.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| broker_error(url, &format!("cannot bind the stream {stream:?}"), e))?;
    let _ = ch.close(200, "declared".into()).await;
    Ok(())
}

impl Transport for Amqp {
    fn name(&self) -> &str {
        NAME
    }

    fn send(&self, batch: Arc<[Outgoing]>) -> BoxFuture<'static, Vec<Result<Receipt, Error>>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.send(&batch).await })
    }
}

impl Inner {
    async fn send(&self, batch: &[Outgoing]) -> Vec<Result<Receipt, Error>> {
        let deadline = Instant::now() + self.opts.confirm_timeout;
        let encoded: Vec<Encoded> = batch.iter().map(wire::encode).collect();
        let mut results: Vec<Option<Result<Receipt, Error>>> =
            std::iter::repeat_with(|| None).take(batch.len()).collect();
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        let mut backoff = Duration::from_millis(50);
        let mut why = String::new();
        while !todo.is_empty() {
            let mut lost = Vec::new();
            match self.channel(deadline).await {
                Ok(ch) => {
                    let outcomes = self.attempt(&ch, batch, &encoded, &todo, deadline).await;
                    let healthy = outcomes.iter().all(|(_, o)| matches!(o, Outcome::Done(_)));
                    for (i, o) in outcomes {
                        match o {
                            Outcome::Done(r) => results[i] = Some(r),
                            Outcome::Lost(cause) => {
                                why = cause;
                                lost.push(i);
                            }
                        }
                    }
                    self.give_back(ch, healthy).await;
                }
                Err(e) => {
                    // A connection attempt cut short by the deadline says
                    // less than the failure before it.
                    if why.is_empty() || Instant::now() < deadline {
                        why = conn::cause(&e);
                    }
                    lost = todo.clone();
                }
            }
            todo = lost;
            if todo.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left < backoff {
                // No time for another attempt worth the name.
                tokio::time::sleep(left).await;
                break;
            }
            tracing::info!(
                "amqp: {} message(s) not confirmed yet ({why}); retrying",
                todo.len()
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        for i in todo {
            results[i] = Some(Err(Error::Unconfirmed {
                msg_id: batch[i].message.msg_id.clone(),
                reason: format!(
                    "amqp: {why} (gave up after the confirm timeout, {:?})",
                    self.opts.confirm_timeout
                ),
            }));
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::Closed)))
            .collect()
    }

    /// A confirm-mode channel, reconnecting when the connection is gone.
    async fn channel(&self, deadline: Instant) -> Result<Channel, Error> {
        let url = &self.opts.url;
        let mut state = self.state.lock().await;
        while let Some(ch) = state.idle.pop() {
            if ch.status().connected() {
                return Ok(ch);
            }
        }
        let alive = state.conn.as_ref().is_some_and(|c| c.status().connected());
        if !alive {
            state.conn = None;
            let left = deadline.saturating_duration_since(Instant::now());
            let c = conn::open(url, "zerorpc-bus publisher", left).await?;
            tracing::info!("amqp: connected to {}", conn::broker_addr(url));
            state.conn = Some(c);
        }
        let Some(c) = state.conn.as_ref() else {
            return Err(Error::Closed);
        };
        let ch = match c.create_channel().await {
            Ok(ch) => ch,
            Err(e) => {
                state.conn = None;
                return Err(broker_error(url, "cannot open a channel", e));
            }
        };
        if let Err(e) = ch.confirm_select(ConfirmSelectOptions::default()).await {
            return Err(broker_error(url, "cannot enable publisher confirms", e));
        }
        Ok(ch)
    }

    /// Keeps `ch` for the next batch when it is fine.
    async fn give_back(&self, ch: Channel, healthy: bool) {
        if healthy && ch.status().connected() {
            let mut state = self.state.lock().await;
            if state.idle.len() < IDLE_CHANNELS {
                state.idle.push(ch);
                return;
            }
        }
        if ch.status().connected() {
            let _ = ch.close(200, "done".into()).await;
        }
    }

    /// Publishes `todo` (indices into `batch`) on `ch` and waits for each
    /// confirm; republishes what was returned to the alternate exchange
    /// when there is one.
    async fn attempt(
        &self,
        ch: &Channel,
        batch: &[Outgoing],
        encoded: &[Encoded],
        todo: &[usize],
        deadline: Instant,
    ) -> Vec<(usize, Outcome)> {
        let exchange = self.opts.exchange.as_str();
        let (confirmed, returned) = self
            .publish_all(ch, exchange, encoded, todo, deadline)
            .await;
        let mut returned = by_message_id(returned);
        let mut outcomes = Vec::with_capacity(todo.len());
        let mut to_alternate = Vec::new();
        for (i, c) in confirmed {
            let o = match c {
                Ok(()) if take_returned(&mut returned, &batch[i].message.msg_id) => {
                    if self.opts.alternate_exchange.is_some() {
                        to_alternate.push(i);
                        continue;
                    }
                    Outcome::Done(Err(unroutable(&batch[i], exchange)))
                }
                Ok(()) => Outcome::Done(Ok(receipt(false))),
                Err(o) => o,
            };
            outcomes.push((i, o));
        }
        if let (Some(ae), false) = (&self.opts.alternate_exchange, to_alternate.is_empty()) {
            let (confirmed, returned) = self
                .publish_all(ch, ae, encoded, &to_alternate, deadline)
                .await;
            let mut returned = by_message_id(returned);
            for (i, c) in confirmed {
                let o = match c {
                    Ok(()) if take_returned(&mut returned, &batch[i].message.msg_id) => {
                        Outcome::Done(Err(unroutable(&batch[i], exchange)))
                    }
                    Ok(()) => Outcome::Done(Ok(receipt(true))),
                    Err(o) => o,
                };
                outcomes.push((i, o));
            }
        }
        outcomes
    }

    /// Publishes `todo` to `exchange` pipelined (at most the window
    /// unconfirmed) and collects each confirm: `Ok(())` for an ack (the
    /// message may still have been returned: see the returned messages),
    /// else its outcome.
    async fn publish_all(
        &self,
        ch: &Channel,
        exchange: &str,
        encoded: &[Encoded],
        todo: &[usize],
        deadline: Instant,
    ) -> (Vec<(usize, Result<(), Outcome>)>, Vec<BasicReturnMessage>) {
        let url = &self.opts.url;
        let options = BasicPublishOptions {
            mandatory: self.opts.mandatory,
            ..Default::default()
        };
        let mut results = Vec::with_capacity(todo.len());
        let mut returned = Vec::new();
        let mut confirms = FuturesOrdered::new();
        let mut settle =
            |(i, r): (usize, Result<Confirmation, lapin::Error>),
             results: &mut Vec<(usize, Result<(), Outcome>)>| {
                let r = match r {
                    Ok(Confirmation::Ack(ret)) => {
                        returned.extend(ret);
                        Ok(())
                    }
                    Ok(Confirmation::Nack(ret)) => {
                        returned.extend(ret);
                        Err(Outcome::Done(Err(Error::Unconfirmed {
                            msg_id: encoded_id(&encoded[i]),
                            reason: format!(
                                "amqp: the broker at {} refused it (basic.nack)",
                                conn::broker_addr(url)
                            ),
                        })))
                    }
                    Ok(Confirmation::NotRequested) => Err(Outcome::Lost(
                        "the channel is not in confirm mode".to_owned(),
                    )),
                    Err(e) => Err(Outcome::Lost(lost_cause(url, &e))),
                };
                results.push((i, r));
            };
        let mut rest = todo.iter().copied();
        let mut broken: Option<String> = None;
        for i in rest.by_ref() {
            // A free slot in the window, settling confirms meanwhile.
            let permit = loop {
                tokio::select! {
                    p = tokio::time::timeout_at(deadline, self.window.clone().acquire_owned()) => {
                        break p;
                    }
                    Some(c) = confirms.next(), if !confirms.is_empty() => settle(c, &mut results),
                }
            };
            let permit = match permit {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => {
                    broken = Some("the publisher is closed".to_owned());
                    results.push((i, Err(Outcome::Lost("closed".to_owned()))));
                    break;
                }
                Err(_) => {
                    let why = "the publish window stayed full".to_owned();
                    results.push((i, Err(Outcome::Lost(why.clone()))));
                    broken = Some(why);
                    break;
                }
            };
            let e = &encoded[i];
            let published = ch
                .basic_publish(
                    exchange.into(),
                    e.routing_key.as_str().into(),
                    options,
                    &e.body,
                    e.properties.clone(),
                )
                .await;
            match published {
                Ok(confirm) => confirms.push_back(async move {
                    let r = confirm.await;
                    drop(permit);
                    (i, r)
                }),
                Err(err) => {
                    let why = lost_cause(url, &err);
                    results.push((i, Err(Outcome::Lost(why.clone()))));
                    broken = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = broken {
            for i in rest {
                results.push((i, Err(Outcome::Lost(why.clone()))));
            }
        }
        loop {
            match tokio::time::timeout_at(deadline, confirms.next()).await {
                Ok(Some(c)) => settle(c, &mut results),
                Ok(None) => break,
                Err(_) => {
                    // No confirm in time: whatever is still out is lost.
                    let waiting: Vec<usize> = todo
                        .iter()
                        .copied()
                        .filter(|i| !results.iter().any(|(j, _)| j == i))
                        .collect();
                    for i in waiting {
                        let why = format!(
                            "no confirmation from the broker at {}",
                            conn::broker_addr(url)
                        );
                        results.push((i, Err(Outcome::Lost(why))));
                    }
                    break;
                }
            }
        }
        (results, returned)
    }
}

fn receipt(alternate: bool) -> Receipt {
    Receipt {
        transport: NAME.to_owned(),
        seq: None,
        duplicate: false,
        alternate,
    }
}

fn unroutable(out: &Outgoing, exchange: &str) -> Error {
    Error::Unroutable {
        msg_id: out.message.msg_id.clone(),
        transport: NAME.to_owned(),
        route: format!("exchange {exchange}, key {}", out.message.topic),
    }
}

fn encoded_id(e: &Encoded) -> String {
    e.properties
        .message_id()
        .as_ref()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default()
}

/// Why a publish was lost, in words: the connection's state when it is
/// the connection that failed.
fn lost_cause(url: &str, e: &lapin::Error) -> String {
    format!("lost the broker at {}: {e}", conn::broker_addr(url))
}

/// Returned messages counted by `message_id`.
fn by_message_id(returned: Vec<BasicReturnMessage>) -> HashMap<String, usize> {
    let mut map = HashMap::new();
    for r in returned {
        tracing::debug!(
            code = r.reply_code,
            text = %r.reply_text,
            "amqp: the broker returned a message"
        );
        let id = r
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        *map.entry(id).or_insert(0) += 1;
    }
    map
}

/// Whether a message with `msg_id` was returned (counting it off).
fn take_returned(returned: &mut HashMap<String, usize>, msg_id: &str) -> bool {
    match returned.get_mut(msg_id) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}
