//! The hub's routing and driver, tested.

use super::*;
use crate::channel::{MAX_SEND_CREDIT, WINDOW_MAX_KEY};

fn core() -> HubCore {
    HubCore::new(&HubOptions {
        heartbeat: Duration::from_secs(1),
        max_pending: 2,
        ..HubOptions::default()
    })
}

fn from_client(client: &'static [u8], ev: &Event) -> Message {
    Message::from_iter([Bytes::from_static(client), Bytes::new(), ev.encode()])
}

fn from_worker(worker: &'static [u8], client: &'static [u8], ev: &Event) -> Message {
    Message::from_iter([
        Bytes::from_static(worker),
        Bytes::from_static(client),
        Bytes::new(),
        ev.encode(),
    ])
}

fn drain(h: &mut HubCore) -> Vec<HubOutput> {
    std::iter::from_fn(|| h.poll_output()).collect()
}

/// (destination id, event name) of each output.
fn summary(out: &[HubOutput]) -> Vec<(String, String)> {
    out.iter()
        .map(|o| {
            let (HubOutput::ToClient(m) | HubOutput::ToWorker(m)) = o;
            let ev = Event::decode(m.last().unwrap(), DecodeLimits::default()).unwrap();
            let to = String::from_utf8_lossy(&m.frames()[0]).into_owned();
            (to, ev.name)
        })
        .collect()
}

#[test]
fn channels_stick_to_their_worker_and_new_ones_go_to_the_least_busy() {
    let t0 = Instant::now();
    let mut h = core();
    h.worker_joined(Bytes::from_static(b"wA"), t0);
    h.worker_joined(Bytes::from_static(b"wB"), t0);
    let a = Event::new("slow", Value::Array(vec![]));
    let b = Event::new("slow", Value::Array(vec![]));
    h.on_client(from_client(b"c1", &a), t0);
    h.on_client(from_client(b"c1", &b), t0);
    let first = summary(&drain(&mut h));
    assert_ne!(first[0].0, first[1].0, "one call on each worker: {first:?}");
    let a_worker = first[0].0.clone();
    // Heartbeats and credit of channel a follow it.
    for _ in 0..3 {
        let hb = Event::on_channel(&a.header.message_id, "_zpc_hb", Value::Nil);
        h.on_client(from_client(b"c1", &hb), t0);
        assert_eq!(
            summary(&drain(&mut h)),
            vec![(a_worker.clone(), "_zpc_hb".into())]
        );
    }
    // a ends: its worker is the least busy again and gets the next call.
    let wa: &'static [u8] = if a_worker == "wA" { b"wA" } else { b"wB" };
    let ok = Event::on_channel(&a.header.message_id, "OK", Value::Array(vec![1.into()]));
    h.on_worker(from_worker(wa, b"c1", &ok), t0);
    assert_eq!(summary(&drain(&mut h)), vec![("c1".into(), "OK".into())]);
    h.on_client(from_client(b"c2", &Event::new("echo", Value::Nil)), t0);
    assert_eq!(summary(&drain(&mut h))[0].0, a_worker);
    let st = h.stats(t0);
    assert_eq!((st.in_flight, st.completed), (2, 1));
}

#[test]
fn waiting_calls_are_kept_alive_then_dispatched_or_refused_when_full() {
    let t0 = Instant::now();
    let mut h = core();
    for _ in 0..3 {
        h.on_client(from_client(b"c1", &Event::new("echo", Value::Nil)), t0);
    }
    // Two wait (each told at once it is alive); the third is refused.
    let out = summary(&drain(&mut h));
    assert_eq!(
        out.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
        vec!["_zpc_hb", "_zpc_hb", "ERR"]
    );
    let st = h.stats(t0);
    assert_eq!((st.pending, st.overloaded, st.failed), (2, 1, 1));
    h.handle_timeout(t0 + Duration::from_millis(1100));
    let out = summary(&drain(&mut h));
    assert_eq!(out, vec![("c1".into(), "_zpc_hb".into()); 2]);
    h.worker_joined(Bytes::from_static(b"wA"), t0 + Duration::from_secs(2));
    let out = summary(&drain(&mut h));
    assert_eq!(out, vec![("wA".into(), "echo".into()); 2]);
}

#[test]
fn a_silent_worker_is_pinged_then_lost_and_its_callers_told() {
    let t0 = Instant::now();
    let mut h = core();
    h.worker_joined(Bytes::from_static(b"wA"), t0);
    let call = Event::new("slow", Value::Nil);
    h.on_client(from_client(b"c1", &call), t0);
    drain(&mut h);
    h.handle_timeout(t0 + Duration::from_millis(1100));
    assert_eq!(
        summary(&drain(&mut h)),
        vec![("wA".into(), "_zerorpc_ping".into())]
    );
    h.handle_timeout(t0 + Duration::from_millis(2100));
    let out = drain(&mut h);
    assert_eq!(summary(&out), vec![("c1".into(), "ERR".into())]);
    let HubOutput::ToClient(m) = &out[0] else {
        unreachable!()
    };
    let ev = Event::decode(m.last().unwrap(), DecodeLimits::default()).unwrap();
    assert_eq!(
        ev.header.response_to.as_ref(),
        Some(&call.header.message_id)
    );
    assert!(ev.args.to_string().contains("LostRemote"));
    // No live worker: the next call waits rather than going to wA.
    h.on_client(
        from_client(b"c1", &Event::new("echo", Value::Nil)),
        t0 + Duration::from_secs(3),
    );
    assert_eq!(
        summary(&drain(&mut h)),
        vec![("c1".into(), "_zpc_hb".into())]
    );
    // wA speaks again (its ping answer): it is back and gets the call.
    let pong = Event::new("OK", Value::Nil);
    h.on_worker(
        Message::from_iter([Bytes::from_static(b"wA"), Bytes::new(), pong.encode()]),
        t0 + Duration::from_secs(3),
    );
    h.handle_timeout(t0 + Duration::from_secs(3));
    assert_eq!(summary(&drain(&mut h)), vec![("wA".into(), "echo".into())]);
}

#[test]
fn a_waiting_call_whose_caller_went_silent_expires_and_is_never_dispatched() {
    let t0 = Instant::now();
    let mut h = core();
    let silent = Event::new("echo", Value::Nil);
    let alive = Event::new("add", Value::Nil);
    h.on_client(from_client(b"c1", &silent), t0);
    h.on_client(from_client(b"c2", &alive), t0);
    drain(&mut h);
    // c2 keeps heart-beating its waiting call; c1 says nothing more.
    for s in 1..=3 {
        let at = t0 + Duration::from_millis(1000 * s - 100);
        let hb = Event::on_channel(&alive.header.message_id, "_zpc_hb", Value::Nil);
        h.on_client(from_client(b"c2", &hb), at);
        h.handle_timeout(at);
    }
    assert_eq!(h.stats(t0).pending, 2, "not yet: under three intervals");
    h.handle_timeout(t0 + Duration::from_millis(3100));
    let st = h.stats(t0 + Duration::from_millis(3100));
    assert_eq!((st.pending, st.expired), (1, 1));
    drain(&mut h);
    h.worker_joined(Bytes::from_static(b"wA"), t0 + Duration::from_secs(4));
    assert_eq!(summary(&drain(&mut h)), vec![("wA".into(), "add".into())]);
    let st = h.stats(t0 + Duration::from_secs(4));
    assert_eq!((st.pending, st.in_flight), (0, 1));
}

#[test]
fn calls_a_full_worker_refuses_wait_again_and_are_not_in_flight() {
    let t0 = Instant::now();
    let mut h = HubCore::new(&HubOptions {
        heartbeat: Duration::from_secs(1),
        max_pending: 100,
        ..HubOptions::default()
    });
    let w = Bytes::from_static(b"wA");
    h.worker_joined(w.clone(), t0);
    let calls: Vec<Event> = (0..4)
        .map(|i| Event::new(format!("m{i}"), Value::Nil))
        .collect();
    for c in &calls {
        h.on_client(from_client(b"c1", c), t0);
    }
    let out = drain(&mut h);
    assert_eq!(out.len(), 4);
    // The worker's queue took the first call only.
    let newly_full = h.refused(out[1..].to_vec(), t0);
    assert_eq!(newly_full, vec![w.clone()]);
    assert!(drain(&mut h).is_empty(), "nothing goes to a full worker");
    let st = h.stats(t0);
    assert_eq!((st.in_flight, st.pending, st.dropped), (1, 3, 0));
    assert_eq!(st.workers[0].1, 1);
    // New calls wait behind them.
    h.on_client(from_client(b"c1", &Event::new("m4", Value::Nil)), t0);
    assert_eq!(
        summary(&drain(&mut h)),
        vec![("c1".into(), "_zpc_hb".into())]
    );
    // Room again: the waiting calls go out in their order.
    h.worker_ready(&w, t0);
    let names: Vec<String> = summary(&drain(&mut h))
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, vec!["m1", "m2", "m3", "m4"]);
    let st = h.stats(t0);
    assert_eq!((st.in_flight, st.pending), (5, 0));
}

#[test]
fn a_refused_heartbeat_to_a_waiting_caller_is_retried_at_the_next_tick() {
    let t0 = Instant::now();
    let mut h = core();
    h.on_client(from_client(b"c1", &Event::new("echo", Value::Nil)), t0);
    let out = drain(&mut h);
    assert_eq!(summary(&out), vec![("c1".into(), "_zpc_hb".into())]);
    assert!(h.refused(out, t0).is_empty());
    assert_eq!(h.stats(t0).dropped, 0);
    h.handle_timeout(t0 + Duration::from_millis(250));
    assert_eq!(
        summary(&drain(&mut h)),
        vec![("c1".into(), "_zpc_hb".into())]
    );
}

#[test]
fn garbage_and_strangers_are_dropped() {
    let t0 = Instant::now();
    let mut h = core();
    h.worker_joined(Bytes::from_static(b"wA"), t0);
    h.on_client(
        Message::from_iter([Bytes::from_static(b"c1"), Bytes::from_static(b"\xc1")]),
        t0,
    );
    h.on_client(Message::from_iter([Bytes::from_static(b"c1")]), t0);
    let stray = Event::on_channel(&MessageId::random(), "OK", Value::Nil);
    h.on_worker(from_worker(b"wA", b"c1", &stray), t0);
    h.on_client(
        from_client(
            b"c1",
            &Event::on_channel(&MessageId::random(), "_zpc_hb", Value::Nil),
        ),
        t0,
    );
    assert!(drain(&mut h).is_empty());
}

#[test]
fn a_workers_window_announcement_does_not_pass_the_hub() {
    // The hub drops a client's events when its queue is full, so a client
    // must not widen its window on a worker's word.
    let t0 = Instant::now();
    let mut h = core();
    h.worker_joined(Bytes::from_static(b"wA"), t0);
    let call = Event::new("range", Value::Array(vec![]));
    h.on_client(from_client(b"c1", &call), t0);
    drain(&mut h);
    let mut first = Event::on_channel(&call.header.message_id, "STREAM", Value::from(7));
    first.header.extra = vec![
        (Value::from("x-keep"), Value::from(1)),
        (Value::from(WINDOW_MAX_KEY), Value::from(MAX_SEND_CREDIT)),
    ];
    h.on_worker(from_worker(b"wA", b"c1", &first), t0);
    let out = drain(&mut h);
    let [HubOutput::ToClient(m)] = out.as_slice() else {
        panic!("one event to the client: {}", out.len());
    };
    assert_eq!(m.frames()[0].as_ref(), b"c1");
    let ev = Event::decode(m.last().unwrap(), DecodeLimits::default()).unwrap();
    assert_eq!(ev.name, "STREAM");
    assert_eq!(ev.args, Value::from(7));
    assert_eq!(
        ev.header.extra,
        vec![(Value::from("x-keep"), Value::from(1))]
    );
    assert_eq!(ev.header.response_to, Some(call.header.message_id.clone()));
}

#[test]
fn a_new_hub_reports_zero_calls_per_second_not_minus_zero() {
    let h = core();
    let rate = h.stats(Instant::now()).calls_per_sec;
    assert_eq!(rate, 0.0);
    assert!(rate.is_sign_positive(), "{rate}");
    // (what `_zerorpc_hub_stats` answers)
    let answered = h.stats(Instant::now()).to_value()["calls_per_sec"].as_f64();
    assert!(answered.is_some_and(|r| r == 0.0 && r.is_sign_positive()));
}
