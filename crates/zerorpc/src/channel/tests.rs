//! The channel state machine's unit tests: explicit times, no sockets, no sleeps.

use super::*;

fn cfg() -> ChannelConfig {
    ChannelConfig {
        heartbeat: Duration::from_secs(5),
        lost_after: 2,
        first_reply_timeout: Some(Duration::from_secs(30)),
        window: 100,
        announced_window: 1000,
    }
}

fn drain(c: &mut Channel) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

fn secs(t0: Instant, s: f64) -> Instant {
    t0 + Duration::from_secs_f64(s)
}

#[test]
fn an_idle_channel_keeps_no_output_buffer_after_its_heartbeat() {
    let t0 = Instant::now();
    let mut c = Channel::client(MessageId::random(), cfg(), t0);
    c.handle_timeout(secs(t0, 5.0)).unwrap();
    assert!(c.out.capacity() > 0);
    assert_eq!(drain(&mut c).len(), 1);
    assert_eq!(c.out.capacity(), 0, "the heartbeat's buffer is freed");
    // replies and items keep it (a stream reuses it)
    c.send(EventKind::Ok, Value::Nil);
    assert_eq!(drain(&mut c).len(), 1);
    assert!(c.out.capacity() > 0);
}

#[test]
fn heartbeats_every_interval_and_lost_at_the_first_heartbeat_past_two_silent_intervals() {
    let t0 = Instant::now();
    let id = MessageId::random();
    let mut c = Channel::client(id.clone(), cfg(), t0);
    assert_eq!(c.poll_timeout(), secs(t0, 5.0));
    c.handle_timeout(secs(t0, 5.0)).unwrap();
    let hb = drain(&mut c);
    assert_eq!(hb.len(), 1);
    assert_eq!(hb[0].name, EventKind::Heartbeat);
    assert_eq!(hb[0].header.response_to.as_ref(), Some(&id));
    assert_eq!(hb[0].args, Value::Array(vec![Value::from(0)]));
    // the remote heart-beats back at 6 s
    let remote_hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
    assert_eq!(c.on_event(remote_hb, secs(t0, 6.0)).unwrap(), None);
    c.handle_timeout(secs(t0, 10.0)).unwrap();
    assert_eq!(drain(&mut c).len(), 1);
    // 9 s of silence at our heartbeat of 15 s: still alive
    c.handle_timeout(secs(t0, 15.0)).unwrap();
    assert_eq!(drain(&mut c).len(), 1);
    // between heartbeats nothing is checked or sent
    assert_eq!(c.poll_timeout(), secs(t0, 20.0));
    c.handle_timeout(secs(t0, 16.5)).unwrap();
    assert!(drain(&mut c).is_empty());
    // 14 s > 2 intervals at our heartbeat of 20 s: lost
    assert_eq!(
        c.handle_timeout(secs(t0, 20.0)),
        Err(ChannelError::LostRemote(Duration::from_secs(14)))
    );
    // exactly two intervals of silence is not yet "more than two"
    let mut c = Channel::client(id.clone(), cfg(), t0);
    c.handle_timeout(secs(t0, 5.0)).unwrap();
    let any = Event::on_channel(&id, EventKind::Stream, Value::from(1));
    c.on_event(any, secs(t0, 10.0)).unwrap();
    c.handle_timeout(secs(t0, 10.0)).unwrap();
    c.handle_timeout(secs(t0, 15.0)).unwrap();
    c.handle_timeout(secs(t0, 20.0)).unwrap();
    assert!(c.handle_timeout(secs(t0, 25.0)).is_err());
}

#[test]
fn a_passive_heartbeat_client_is_not_lost_before_its_first_heartbeat() {
    // zerorpc-python's `passive_heartbeat=True` client (the Python CLI)
    // sends its first heartbeat one interval after hearing ours: about
    // 2 intervals after its request, later when it is busy.
    let t0 = Instant::now();
    let req = Event::new("slow", Value::Array(vec![12.into()]));
    let id = req.header.message_id.clone();
    let mut s = Channel::server(&req, cfg(), t0);
    // our heartbeat at 5 s; nothing heard since the request
    alive_tick(&mut s, secs(t0, 5.0));
    // our heartbeat at 10 s still finds the client not lost (the old
    // rule, silence since the request >= 2 intervals, lost it here)
    alive_tick(&mut s, secs(t0, 10.0));
    // its first heartbeat comes late, at 14.9 s; then every interval
    for at in [14.9, 19.9, 24.9] {
        let hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
        s.on_event(hb, secs(t0, at)).unwrap();
        alive_tick(&mut s, secs(t0, at + 0.1));
    }
    // a client that never heart-beats is still lost: silence counts
    // from our first heartbeat
    let mut s = Channel::server(&req, cfg(), t0);
    for at in [5.0, 10.0, 15.0] {
        alive_tick(&mut s, secs(t0, at));
    }
    assert_eq!(
        s.handle_timeout(secs(t0, 20.0)),
        Err(ChannelError::LostRemote(Duration::from_secs(15)))
    );
}

/// A due heartbeat that must not find the remote lost.
fn alive_tick(c: &mut Channel, now: Instant) {
    c.handle_timeout(now).unwrap();
    let out = drain(c);
    assert!(
        out.iter().all(|e| e.name == EventKind::Heartbeat),
        "{out:?}"
    );
}

#[test]
fn a_servers_deadline_error_is_the_callers_own_expiry() {
    let (s, ms) = (Duration::from_secs(1), Duration::from_millis(300));
    assert_eq!(
        expiry("DeadlineExceeded", None, Some(s)),
        Some(ChannelError::Timeout(s))
    );
    assert_eq!(
        expiry("DeadlineExceeded", Some(ms), Some(s)),
        Some(ChannelError::DeadlineExceeded(ms))
    );
    assert_eq!(expiry("DeadlineExceeded", None, None), None);
    assert_eq!(expiry("ValueError", Some(ms), Some(s)), None);
    let mut c = Channel::client(MessageId::random(), cfg(), Instant::now());
    assert_eq!(
        c.expiry_of("DeadlineExceeded"),
        Some(ChannelError::Timeout(Duration::from_secs(30)))
    );
    c.set_deadline(Instant::now(), ms);
    assert_eq!(c.deadline_budget(), Some(ms));
}

#[test]
fn a_deadline_bounds_the_first_reply_on_both_sides() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    // Client: the deadline comes before its own timeout and wins.
    let id = MessageId::random();
    let mut c = Channel::client(id.clone(), cfg(), t0);
    c.set_deadline(t0 + ms(800), ms(800));
    assert_eq!(c.poll_timeout(), t0 + ms(800));
    c.handle_timeout(t0 + ms(799)).unwrap();
    assert_eq!(
        c.handle_timeout(t0 + ms(800)),
        Err(ChannelError::DeadlineExceeded(ms(800)))
    );
    // ...unless the first reply came in time; heartbeats do not count.
    let mut c = Channel::client(id.clone(), cfg(), t0);
    c.set_deadline(t0 + ms(800), ms(800));
    let hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
    c.on_event(hb, t0 + ms(100)).unwrap();
    assert_eq!(c.deadline(), Some(t0 + ms(800)));
    let item = Event::on_channel(&id, EventKind::Stream, Value::from(1));
    c.on_event(item, t0 + ms(500)).unwrap();
    assert_eq!(c.deadline(), None);
    c.handle_timeout(t0 + ms(900)).unwrap();
    // Server: the same until it sends its first reply.
    let req = Event::new("slow", Value::Array(vec![]));
    let mut s = Channel::server(&req, cfg(), t0);
    s.set_deadline(t0 + ms(300), ms(300));
    assert_eq!(s.poll_timeout(), t0 + ms(300));
    assert_eq!(
        s.handle_timeout(t0 + ms(300)),
        Err(ChannelError::DeadlineExceeded(ms(300)))
    );
    let mut s = Channel::server(&req, cfg(), t0);
    s.set_deadline(t0 + ms(300), ms(300));
    assert!(s.send(EventKind::Stream, 1.into()));
    assert_eq!(s.poll_timeout(), t0 + cfg().heartbeat);
    s.handle_timeout(t0 + ms(400)).unwrap();
}

#[test]
fn a_request_that_waits_sends_no_heartbeat_but_keeps_its_timeout() {
    let t0 = Instant::now();
    let mut c = Channel::client(MessageId::random(), cfg(), t0);
    c.request_waits();
    // Nothing is due before the first-reply timeout: no heartbeat goes
    // ahead of the request, and no silence is counted.
    assert_eq!(c.poll_timeout(), secs(t0, 30.0));
    c.handle_timeout(secs(t0, 12.0)).unwrap();
    assert!(drain(&mut c).is_empty());
    // Sent at 12 s: heartbeats from then on, the timeout from the start.
    c.request_sent(secs(t0, 12.0));
    assert_eq!(c.poll_timeout(), secs(t0, 17.0));
    c.handle_timeout(secs(t0, 17.0)).unwrap();
    assert_eq!(drain(&mut c).len(), 1);
    assert!(matches!(
        c.handle_timeout(secs(t0, 30.0)),
        Err(ChannelError::Timeout(_))
    ));
    // Under a deadline sooner than the timeout, the deadline ends it.
    let mut c = Channel::client(MessageId::random(), cfg(), t0);
    c.request_waits();
    c.set_deadline(secs(t0, 2.0), Duration::from_secs(2));
    assert_eq!(c.poll_timeout(), secs(t0, 2.0));
    assert!(matches!(
        c.handle_timeout(secs(t0, 2.0)),
        Err(ChannelError::DeadlineExceeded(_))
    ));
}

#[test]
fn first_reply_timeout_only_bounds_the_first_reply() {
    let t0 = Instant::now();
    let id = MessageId::random();
    let mut c = Channel::client(
        id.clone(),
        ChannelConfig {
            heartbeat: Duration::from_secs(100),
            first_reply_timeout: Some(Duration::from_secs(3)),
            ..cfg()
        },
        t0,
    );
    assert_eq!(c.poll_timeout(), t0 + Duration::from_secs(3));
    assert!(matches!(
        c.handle_timeout(t0 + Duration::from_secs(3)),
        Err(ChannelError::Timeout(_))
    ));
    let mut c = Channel::client(
        id.clone(),
        ChannelConfig {
            first_reply_timeout: Some(Duration::from_secs(3)),
            ..cfg()
        },
        t0,
    );
    let item = Event::on_channel(&id, EventKind::Stream, Value::from(1));
    assert!(c
        .on_event(item, t0 + Duration::from_secs(1))
        .unwrap()
        .is_some());
    // heartbeats keep it going long after the timeout
    for s in (4..100).step_by(4) {
        let hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
        c.on_event(hb, t0 + Duration::from_secs(s)).unwrap();
        c.handle_timeout(t0 + Duration::from_secs(s)).unwrap();
    }
    // heartbeats alone do not count as the first reply
    let mut c = Channel::client(
        id.clone(),
        ChannelConfig {
            heartbeat: Duration::from_secs(1),
            first_reply_timeout: Some(Duration::from_secs(3)),
            ..cfg()
        },
        t0,
    );
    for ms in (500..3000).step_by(500) {
        let hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
        c.on_event(hb, t0 + Duration::from_millis(ms)).unwrap();
        c.handle_timeout(t0 + Duration::from_millis(ms)).unwrap();
    }
    assert!(c.handle_timeout(t0 + Duration::from_secs(3)).is_err());
}

#[test]
fn sender_respects_additive_credit() {
    let t0 = Instant::now();
    let req = Event::new("range", Value::Array(vec![1000.into()]));
    let mut s = Channel::server(&req, cfg(), t0);
    assert_eq!(s.credit_mode(), CreditMode::Additive);
    assert!(s.send(EventKind::Stream, 0.into()));
    assert!(!s.can_send_item());
    assert!(!s.send(EventKind::Stream, 1.into()), "no credit, refused");
    let more = Event::on_channel(
        &req.header.message_id,
        EventKind::More,
        Value::Array(vec![3.into()]),
    );
    s.on_event(more, t0).unwrap();
    let more = Event::on_channel(
        &req.header.message_id,
        EventKind::More,
        Value::Array(vec![2.into()]),
    );
    s.on_event(more, t0).unwrap();
    assert_eq!(s.send_credit(), 5);
    let bad = Event::on_channel(&req.header.message_id, EventKind::More, Value::from("x"));
    assert_eq!(s.on_event(bad, t0), Err(ChannelError::BadCredit));
}

#[test]
fn credit_is_clamped_to_a_sane_window() {
    let req = Event::new("count", Value::Array(vec![]));
    let t0 = Instant::now();
    let mut s = Channel::server(&req, cfg(), t0);
    let huge = Value::from(1u64 << 63);
    for _ in 0..3 {
        let more = Event::on_channel(
            &req.header.message_id,
            EventKind::More,
            Value::Array(vec![huge.clone()]),
        );
        s.on_event(more, t0).unwrap();
    }
    assert_eq!(s.send_credit(), MAX_SEND_CREDIT);
}

#[test]
fn node_peers_get_absolute_credit() {
    let t0 = Instant::now();
    let mut req = Event::new("range", Value::Array(vec![]));
    req.header.message_id = MessageId::from_str_id("6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    let mut s = Channel::server(&req, cfg(), t0);
    assert_eq!(s.credit_mode(), CreditMode::Absolute);
    for n in [10u64, 4] {
        let more = Event::on_channel(
            &req.header.message_id,
            EventKind::More,
            Value::Array(vec![n.into()]),
        );
        s.on_event(more, t0).unwrap();
        assert_eq!(s.send_credit(), n, "absolute, not added");
    }
}

/// A sender and a receiver whose consumer is slow, 10,000 items: the most
/// items the receiver held at once (it fails if the stream stalls).
fn slow_consumer_peak(announce: bool) -> u64 {
    let t0 = Instant::now();
    let req = Event::new("range", Value::Array(vec![]));
    let id = req.header.message_id.clone();
    let mut client = Channel::client(id.clone(), cfg(), t0);
    let mut server = Channel::server(&req, cfg(), t0);
    if announce {
        server.announce_window();
    }
    let mut queued: u64 = 0; // items at the client not yet consumed
    let mut peak = 0;
    let mut in_flight = VecDeque::new();
    let mut sent = 0u64;
    let mut received = 0u64;
    for step in 0..20_000u64 {
        while server.can_send_item() && sent < 10_000 {
            assert!(server.send(EventKind::Stream, sent.into()));
            sent += 1;
        }
        in_flight.extend(drain(&mut server));
        // deliver everything in flight
        while let Some(ev) = in_flight.pop_front() {
            if client.on_event(ev, t0).unwrap().is_some() {
                queued += 1;
                received += 1;
            }
        }
        peak = peak.max(queued);
        // consume a few
        if step % 3 == 0 && queued > 0 {
            let k = queued.min(7);
            queued -= k;
            client.consumed(k);
        }
        for ev in drain(&mut client) {
            server.on_event(ev, t0).unwrap();
        }
        if received == 10_000 {
            break;
        }
    }
    assert_eq!(received, 10_000, "the stream completes");
    peak
}

#[test]
fn receiver_window_never_overflows_and_keeps_stream_moving() {
    // The sender never has more items in flight than the window.
    let peak = slow_consumer_peak(false);
    assert!(peak <= 100, "receiver holds at most its window: {peak}");
}

#[test]
fn a_sender_that_announces_it_holds_items_back_is_granted_the_announced_window() {
    let peak = slow_consumer_peak(true);
    assert!(
        peak > 100 && peak <= 1000,
        "the receiver grants up to announced_window (1000), not window (100): held {peak}"
    );
}

#[test]
fn only_the_first_stream_event_carries_the_announcement() {
    let t0 = Instant::now();
    let req = Event::new("range", Value::Array(vec![]));
    let announced = |ev: &Event| {
        ev.header
            .extra
            .iter()
            .any(|(k, _)| k.as_str() == Some(WINDOW_MAX_KEY))
    };
    let mut s = Channel::server(&req, cfg(), t0);
    s.announce_window();
    s.on_event(
        Event::on_channel(
            &req.header.message_id,
            EventKind::More,
            Value::Array(vec![5.into()]),
        ),
        t0,
    )
    .unwrap();
    for i in 0..3 {
        assert!(s.send(EventKind::Stream, i.into()));
    }
    s.send(EventKind::StreamDone, Value::Nil);
    let sent = drain(&mut s);
    let flags: Vec<bool> = sent.iter().map(announced).collect();
    assert_eq!(flags, [true, false, false, false]);
    assert_eq!(
        sent[0].header.extra,
        [(Value::from(WINDOW_MAX_KEY), Value::from(MAX_SEND_CREDIT))]
    );
    // A single reply announces nothing; nor does a sender that was not told to.
    let mut s = Channel::server(&req, cfg(), t0);
    s.announce_window();
    s.send(EventKind::Ok, Value::Array(vec![1.into()]));
    assert!(!announced(&drain(&mut s)[0]));
    let mut s = Channel::server(&req, cfg(), t0);
    s.send(EventKind::Stream, 1.into());
    assert!(!announced(&drain(&mut s)[0]));
}

#[test]
fn the_announced_window_is_bounded_by_the_receivers_settings() {
    let t0 = Instant::now();
    // (announced, window, announced_window) -> the first grant after item 1
    for (max, window, announced_window, grant) in [
        (300u64, 100, 1000, 299u64),
        (1 << 16, 100, 1000, 999),
        (10, 100, 1000, 99),
        (1 << 16, 100, 100, 99),
        (1 << 40, 2000, 1000, 1999),
    ] {
        let id = MessageId::random();
        let cfg = ChannelConfig {
            window,
            announced_window,
            ..cfg()
        };
        let mut c = Channel::client(id.clone(), cfg, t0);
        let mut first = Event::on_channel(&id, EventKind::Stream, Value::from(1));
        first
            .header
            .extra
            .push((Value::from(WINDOW_MAX_KEY), Value::from(max)));
        assert!(c.on_event(first, t0).unwrap().is_some());
        c.consumed(1);
        let more = drain(&mut c);
        assert_eq!(more.len(), 1, "one grant");
        assert_eq!(more[0].kind(), Some(EventKind::More));
        assert_eq!(
            credit_arg(&more[0].args),
            Some(grant),
            "announced {max}, window {window}, announced_window {announced_window}"
        );
    }
}

#[test]
fn every_event_of_a_traced_channel_carries_its_context_on_the_wire() {
    let t0 = Instant::now();
    let request = Event::new("f", Value::Array(vec![]));
    let parent = TraceContext::new_root();
    for tracestate in [None, Some("vendor=1".to_owned())] {
        let ctx = TraceContext {
            tracestate: tracestate.clone(),
            ..parent.child()
        };
        let mut s = Channel::server(&request, cfg(), t0);
        s.set_trace(&ctx);
        s.handle_timeout(secs(t0, 5.0)).unwrap();
        assert!(s.send(EventKind::Ok, Value::Array(vec![Value::from(1)])));
        let sent = drain(&mut s);
        assert_eq!(sent.len(), 2, "a heartbeat and the reply");
        for ev in sent {
            // (what a peer reads: the encoded event)
            let got = Event::decode(&ev.encode(), Default::default()).unwrap();
            let read = TraceContext::from_header(&got.header).expect("a trace context");
            assert_eq!(read.trace_id, ctx.trace_id);
            assert_eq!(read.span_id, ctx.span_id);
            assert_eq!(read.tracestate, tracestate);
        }
    }
}

/// What our drivers send (`transmit_into`, straight from the queued parts)
/// is what `poll_transmit`'s event encodes to, but for the fresh message
/// id: replies, the first stream item with its window announcement, items
/// after it, a long value sent in pieces, heartbeats, credit; traced, with
/// and without a `tracestate`, and not.
#[test]
fn transmitting_into_a_message_writes_the_event_poll_transmit_makes() {
    let t0 = Instant::now();
    let request = Event::new("f", Value::Array(vec![]));
    let parent = TraceContext::new_root();
    let traced = |tracestate: Option<&str>| TraceContext {
        tracestate: tracestate.map(str::to_owned),
        ..parent.child()
    };
    for ctx in [None, Some(traced(None)), Some(traced(Some("vendor=1")))] {
        // Two channels fed the same: one read as events, one as messages.
        let [mut a, mut b] = [(); 2].map(|()| {
            let mut s = Channel::server(&request, cfg(), t0);
            s.announce_window();
            if let Some(ctx) = &ctx {
                s.set_trace(ctx);
            }
            s.on_event(
                Event::on_channel(
                    &request.header.message_id,
                    EventKind::More,
                    Value::Array(vec![Value::from(5)]),
                ),
                t0,
            )
            .unwrap();
            s
        });
        let mut c = Channel::client(MessageId::random(), cfg(), t0);
        let mut c2 = Channel::client(c.id().clone(), cfg(), t0);
        let mut compared = 0;
        let mut compare = |x: &mut Channel, y: &mut Channel| {
            while let Some(ev) = x.poll_transmit() {
                let mut m = zmtp::Message::from(bytes::Bytes::from_static(b"envelope"));
                let kind = y.transmit_into(&mut m);
                assert_eq!(kind, ev.kind(), "the kind transmitted");
                let frames: Vec<bytes::Bytes> = m.into_frames().collect();
                assert_eq!(frames.len(), 2, "one frame appended");
                assert_eq!(&frames[0][..], b"envelope");
                let want = Event::decode(&ev.encode(), Default::default()).unwrap();
                let mut got = Event::decode(&frames[1], Default::default()).unwrap();
                assert_ne!(got.header.message_id, want.header.message_id, "a fresh id");
                got.header.message_id = want.header.message_id.clone();
                assert_eq!(got, want);
                compared += 1;
            }
            assert!(y.transmit_into(&mut zmtp::Message::new()).is_none());
        };
        for s in [&mut a, &mut b] {
            for i in 0..3 {
                assert!(s.send(EventKind::Stream, Value::from(i)));
            }
            let long = Value::Binary(vec![7; crate::event::PIECE_MIN]);
            assert!(s.send(EventKind::Stream, Value::Array(vec![long])));
            s.handle_timeout(secs(t0, 5.0)).unwrap();
            assert!(s.send(EventKind::StreamDone, Value::Nil));
        }
        compare(&mut a, &mut b);
        // a client's heartbeat and credit
        for s in [&mut c, &mut c2] {
            s.on_event(
                Event::on_channel(s.id(), EventKind::Stream, Value::from(1)),
                t0,
            )
            .unwrap();
            s.consumed(1);
            s.handle_timeout(secs(t0, 5.0)).unwrap();
        }
        compare(&mut c, &mut c2);
        assert_eq!(compared, 8, "6 from the server, 2 from the client");
    }
}

/// A reply our client decodes as such ([`Channel::on_received`]) moves the
/// channel as the same event does through [`Channel::on_event`]: the
/// window a stream announces, credit, the end of the first-reply wait.
#[test]
fn a_received_reply_moves_the_channel_as_its_event_does() {
    let t0 = Instant::now();
    let mut a = Channel::client(MessageId::random(), cfg(), t0);
    let mut b = Channel::client(a.id().clone(), cfg(), t0);
    let mut first = Event::on_channel(a.id(), EventKind::Stream, Value::from(1));
    first
        .header
        .extra
        .push((Value::from(WINDOW_MAX_KEY), Value::from(600)));
    let heartbeat = Event::on_channel(a.id(), EventKind::Heartbeat, Value::Nil);
    let done = Event::on_channel(a.id(), EventKind::StreamDone, Value::Nil);
    for (i, ev) in [first, heartbeat, done].into_iter().enumerate() {
        let (_, r) = Event::decode_reply(&ev.encode(), Default::default()).unwrap();
        let from_event = a.on_event(ev, secs(t0, i as f64)).unwrap();
        let from_reply = b.on_received(r, secs(t0, i as f64)).unwrap();
        assert_eq!(from_event.map(|e| e.kind()), from_reply.map(|r| r.kind));
        a.consumed(1);
        b.consumed(1);
        let (ea, eb) = (drain(&mut a), drain(&mut b));
        assert_eq!(
            ea.iter()
                .map(|e| (e.kind(), e.args.clone()))
                .collect::<Vec<_>>(),
            eb.iter()
                .map(|e| (e.kind(), e.args.clone()))
                .collect::<Vec<_>>(),
        );
        if i == 0 {
            assert_eq!(
                ea.first().map(|e| e.args.clone()),
                Some(Value::Array(vec![Value::from(599)])),
                "the announced window granted (less the item held)"
            );
        }
    }
    assert_eq!(a.poll_timeout(), b.poll_timeout());
}
