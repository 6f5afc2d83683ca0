//! Watching calls, for both sides through one interface: a call's span
//! for the [`Recorder`], its metrics, and the [`ErrorHook`](crate::ErrorHook)
//! (see [`OnError`]).
//!
//! A client or server with anything to watch holds [`Observers`]; it asks
//! them once per call for a [`CallWatch`] ([`Observers::start`]), tells
//! the watch each stream item and how the call ended
//! ([`CallWatch::item`], [`CallWatch::end`]), and drops it when the call
//! is over: the watch then tells the recorder and the metrics, once. A
//! watch dropped before it was told an end records the call as
//! cancelled. Without observers (the default) a call makes no watch and
//! pays nothing for this.

use std::sync::Arc;
use std::time::Instant;

use rmpv::Value;

use crate::record::{Outcome, Payload, Peer, Recorder, Side, Span};
use crate::{CallError, ErrorReport, OnError, TraceContext};

/// What watches the calls of one client or server.
#[derive(Debug)]
pub(crate) struct Observers {
    side: Side,
    /// Each traced call's span goes here.
    recorder: Option<Recorder>,
    /// Keep a recorded call's arguments and result (client side).
    payloads: bool,
    metrics: bool,
    on_error: Option<OnError>,
}

/// The call a watch starts for.
pub(crate) struct CallStart<'a> {
    /// Its trace context (a call without one is not recorded).
    pub(crate) ctx: Option<&'a TraceContext>,
    /// The service called (a client's: the endpoint).
    pub(crate) service: &'a Arc<str>,
    /// The method, as labelled (a server labels methods it does not have
    /// as [`crate::record::UNKNOWN_METHOD`]).
    pub(crate) method: Arc<str>,
    /// The other side.
    pub(crate) peer: Peer,
    /// The arguments, when the call's payload is to be kept: see
    /// [`Observers::keeps_payloads`].
    pub(crate) args: Option<Vec<Value>>,
    /// When it started, on the monotonic clock (its record's wall-clock
    /// start is worked out when the record is built).
    pub(crate) at: Instant,
}

impl Observers {
    /// The observers of one side's calls, or none when nothing is watched.
    pub(crate) fn new(
        side: Side,
        recorder: Option<Recorder>,
        payloads: bool,
        metrics: bool,
        on_error: Option<OnError>,
    ) -> Option<Arc<Observers>> {
        (recorder.is_some() || metrics || on_error.is_some()).then(|| {
            Arc::new(Observers {
                side,
                recorder,
                payloads,
                metrics,
                on_error,
            })
        })
    }

    /// Whether a call with this trace context should hand its arguments
    /// to [`CallStart::args`] (its payload is recorded).
    pub(crate) fn keeps_payloads(&self, ctx: Option<&TraceContext>) -> bool {
        self.payloads && self.recorder.is_some() && ctx.is_some()
    }

    /// Starts watching a call.
    pub(crate) fn start(self: &Arc<Self>, call: CallStart<'_>) -> Box<CallWatch> {
        let CallStart {
            ctx,
            service,
            method,
            peer,
            args,
            at,
        } = call;
        // (a recorded call's method is kept once, by its span)
        let (span, method) = match (&self.recorder, ctx) {
            (Some(_), Some(ctx)) => {
                let span = Span::started(ctx.clone(), self.side, service.clone(), method, peer, at);
                (Some(span), None)
            }
            _ => (None, Some(method)),
        };
        if self.metrics {
            crate::metrics::call_started(self.side, service);
        }
        Box::new(CallWatch {
            obs: self.clone(),
            service: service.clone(),
            method,
            span,
            ids: match (&self.on_error, ctx) {
                (Some(_), Some(ctx)) => Some((ctx.trace_id, ctx.span_id)),
                _ => None,
            },
            started: at,
            ended: None,
            outcome: Outcome::Cancelled,
            items: 0,
            payload: args.map(|args| GatheredPayload {
                args,
                items: Some(Vec::new()),
                bytes: 0,
            }),
        })
    }
}

/// What is watched of one call: its span, its stream's items, and how
/// it ended; reported when dropped.
pub(crate) struct CallWatch {
    obs: Arc<Observers>,
    service: Arc<str>,
    /// The method called (none when the span holds it: see
    /// [`CallWatch::method`]).
    method: Option<Arc<str>>,
    /// Recorded when the watch is dropped (with a recorder).
    span: Option<Span>,
    /// The trace and span ids, for the error hook.
    ids: Option<([u8; 16], [u8; 8])>,
    started: Instant,
    /// When the call's outcome was decided (a reply queued, a loss seen):
    /// its span and its duration end there, not when it is torn down.
    ended: Option<Instant>,
    outcome: Outcome,
    items: u64,
    /// The arguments and the items so far, when payloads are recorded.
    payload: Option<GatheredPayload>,
}

/// A call's payload being gathered (the items are dropped once they grow
/// past [`Payload::MAX_BYTES`]).
struct GatheredPayload {
    args: Vec<Value>,
    items: Option<Vec<Value>>,
    bytes: usize,
}

/// How a watched call ended.
pub(crate) enum Ended<'a> {
    /// With a single value (`OK`).
    Value(&'a Value),
    /// With a stream collected into this value, of so many items.
    Collected(&'a Value, u64),
    /// At the end of a stream whose items the watch was shown.
    StreamDone,
    /// With a remote error (client) or a handler's (server).
    Failed(&'a CallError),
    /// Otherwise: lost, timed out, cancelled, or a local error.
    Other(Outcome),
}

impl CallWatch {
    /// The method called.
    fn method(&self) -> &str {
        match &self.span {
            Some(span) => span.method(),
            None => self.method.as_deref().unwrap_or_default(),
        }
    }

    /// The caller's authenticated user (server side).
    pub(crate) fn set_user(&mut self, user: Option<Arc<str>>) {
        if let Some(span) = &mut self.span {
            span.set_user(user);
        }
    }

    /// A stream item went or arrived.
    pub(crate) fn item(&mut self, v: &Value) {
        self.items += 1;
        // (once past the cap, nothing more is measured or kept)
        if let Some(p) = self.payload.as_mut().filter(|p| p.items.is_some()) {
            p.bytes += Payload::size_of(v);
            match &mut p.items {
                Some(items) if p.bytes <= Payload::MAX_BYTES => items.push(v.clone()),
                _ => p.items = None,
            }
        }
    }

    /// The call ended (a later end replaces an earlier one: a call whose
    /// reply went out may still lose its client). A failure is reported
    /// to the error hook now.
    pub(crate) fn end(&mut self, ended: Ended<'_>) {
        self.ended = Some(Instant::now());
        if let (Some(p), Some(span)) = (self.payload.take(), self.span.as_mut()) {
            let result = match &ended {
                Ended::Value(v) | Ended::Collected(v, _) => Some((*v).clone()),
                Ended::StreamDone => p.items.map(Value::Array),
                Ended::Failed(_) | Ended::Other(_) => None,
            };
            // (a stream too big to keep is recorded without its payload)
            if result.is_some() || !matches!(ended, Ended::StreamDone) {
                span.set_payload(Payload::capped(p.args, result));
            }
        }
        self.outcome = match ended {
            Ended::Value(_) => Outcome::Ok,
            Ended::Collected(_, items) => {
                self.items = items;
                Outcome::Stream { items }
            }
            Ended::StreamDone => Outcome::Stream { items: self.items },
            Ended::Failed(e) => {
                if let Some(span) = &mut self.span {
                    span.set_traceback(&e.traceback);
                }
                self.report(e);
                Outcome::failed(e)
            }
            Ended::Other(o) => o,
        };
    }

    /// Tells the error hook (if any) of an error.
    fn report(&self, e: &CallError) {
        let Some(hook) = &self.obs.on_error else {
            return;
        };
        hook.report(&ErrorReport {
            side: self.obs.side,
            service: self.service.to_string(),
            method: self.method().to_owned(),
            error: e.clone(),
            trace_id: self.ids.map(|(t, _)| crate::hex::hex(&t)),
            span_id: self.ids.map(|(_, s)| crate::hex::hex(&s)),
        });
    }
}

impl Drop for CallWatch {
    fn drop(&mut self) {
        let ended = self.ended.unwrap_or_else(Instant::now);
        let outcome = std::mem::replace(&mut self.outcome, Outcome::Cancelled);
        if self.obs.metrics {
            let took = ended.saturating_duration_since(self.started);
            crate::metrics::call_ended(
                self.obs.side,
                &self.service,
                self.method(),
                &outcome,
                took,
                self.items,
            );
        }
        if let (Some(span), Some(rec)) = (self.span.take(), &self.obs.recorder) {
            span.finish_at(rec, outcome, ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, TraceSink};
    use futures::future::BoxFuture;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A sink keeping what it is given.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<Record>>>);

    impl TraceSink for Kept {
        fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
            self.0.lock().unwrap().extend(batch);
            Box::pin(async { Ok(()) })
        }
    }

    type Reports = Arc<Mutex<Vec<ErrorReport>>>;

    fn observers(side: Side, payloads: bool) -> (Arc<Observers>, Kept, Recorder, Reports) {
        let kept = Kept::default();
        let recorder = Recorder::new(kept.clone(), 100);
        let reports = Reports::default();
        let r = reports.clone();
        let hook = OnError::new(move |e: &ErrorReport| r.lock().unwrap().push(e.clone()));
        let obs = Observers::new(side, Some(recorder.clone()), payloads, false, Some(hook));
        (obs.expect("something watches"), kept, recorder, reports)
    }

    fn start(obs: &Arc<Observers>, ctx: &TraceContext, args: Option<Vec<Value>>) -> Box<CallWatch> {
        obs.start(CallStart {
            ctx: Some(ctx),
            service: &Arc::from("svc"),
            method: "m".into(),
            peer: Peer::Endpoint("tcp://x".into()),
            args,
            at: Instant::now(),
        })
    }

    async fn records(kept: &Kept, recorder: &Recorder) -> Vec<Record> {
        assert!(recorder.flush(Duration::from_secs(10)).await);
        std::mem::take(&mut *kept.0.lock().unwrap())
    }

    #[test]
    fn nothing_to_watch_is_no_observers() {
        assert!(Observers::new(Side::Client, None, true, false, None).is_none());
    }

    #[tokio::test]
    async fn a_watch_dropped_before_its_end_records_a_cancelled_call() {
        let (obs, kept, recorder, reports) = observers(Side::Client, false);
        let ctx = TraceContext::new_root();
        drop(start(&obs, &ctx, None));
        let got = records(&kept, &recorder).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].outcome, Outcome::Cancelled);
        assert_eq!((got[0].side, &*got[0].method), (Side::Client, "m"));
        assert_eq!(got[0].span_id, ctx.span_id_hex());
        assert!(reports.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_handlers_error_is_reported_once_with_its_ids_and_recorded_with_its_traceback() {
        let (obs, kept, recorder, reports) = observers(Side::Server, false);
        let ctx = TraceContext::new_root();
        let mut w = start(&obs, &ctx, None);
        let e = CallError::new("ValueError", "bad").with_traceback("Traceback: here\n");
        w.end(Ended::Failed(&e));
        drop(w);
        let got = records(&kept, &recorder).await;
        assert_eq!(got[0].outcome, Outcome::failed(&e));
        assert_eq!(got[0].traceback.as_deref(), Some("Traceback: here\n"));
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(
            (r.side, &*r.service, &*r.method),
            (Side::Server, "svc", "m")
        );
        assert_eq!(r.error, e);
        assert_eq!(r.trace_id, Some(ctx.trace_id_hex()));
        assert_eq!(r.span_id, Some(ctx.span_id_hex()));
    }

    #[tokio::test]
    async fn an_error_the_server_makes_is_recorded_not_reported_and_a_later_end_wins() {
        let (obs, kept, recorder, reports) = observers(Side::Server, false);
        let ctx = TraceContext::new_root();
        let mut w = start(&obs, &ctx, None);
        let e = CallError::new("DeadlineExceeded", "too late");
        w.end(Ended::Other(Outcome::failed(&e)));
        let mut w2 = start(&obs, &ctx, None);
        w2.end(Ended::Value(&Value::from(1)));
        w2.end(Ended::Other(Outcome::Lost));
        drop((w, w2));
        let got = records(&kept, &recorder).await;
        let outcomes: Vec<_> = got.iter().map(|r| r.outcome.clone()).collect();
        assert_eq!(outcomes, [Outcome::failed(&e), Outcome::Lost]);
        assert!(reports.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_streams_items_are_counted_and_kept_until_they_outgrow_the_cap() {
        let (obs, kept, recorder, _) = observers(Side::Client, true);
        let ctx = TraceContext::new_root();
        let args = vec![Value::from("a")];
        let mut small = start(
            &obs,
            &ctx,
            obs.keeps_payloads(Some(&ctx)).then(|| args.clone()),
        );
        for i in 0..3 {
            small.item(&Value::from(i));
        }
        small.end(Ended::StreamDone);
        let mut big = start(&obs, &ctx, Some(args.clone()));
        let chunk = Value::from(vec![0u8; 1024]);
        let n = Payload::MAX_BYTES / 1024 + 2;
        for _ in 0..n {
            big.item(&chunk);
        }
        big.end(Ended::StreamDone);
        drop((small, big));
        let got = records(&kept, &recorder).await;
        assert_eq!(got[0].outcome, Outcome::Stream { items: 3 });
        let p = got[0].payload.as_ref().expect("a small stream's payload");
        assert_eq!(p.args, args);
        assert_eq!(
            p.result,
            Some(Value::Array((0..3).map(Value::from).collect()))
        );
        assert_eq!(got[1].outcome, Outcome::Stream { items: n as u64 });
        assert!(
            got[1].payload.is_none(),
            "a stream past the cap keeps no payload"
        );
    }
}
