//! The `server_recv` target: requests built from the input, replayed
//! through the server's receive path (`server_core`).

use super::*;

/// A msgpack value from the input (`depth` levels of containers).
fn value(input: &mut Input, depth: u8) -> Value {
    let b = input.byte();
    match b % 10 {
        0 => Value::Nil,
        1 => Value::Boolean(b & 0x10 != 0),
        2 => Value::from(i64::from(input.byte() as i8)),
        3 => Value::from(input.small()),
        4 => Value::F64(f64::from_bits(u64::from_be_bytes(input.array()))),
        5 => Value::from(String::from_utf8_lossy(input.chunk()).into_owned()),
        6 => Value::Binary(input.chunk().to_vec()),
        7 if depth > 0 => Value::Array((0..b >> 5).map(|_| value(input, depth - 1)).collect()),
        8 if depth > 0 => Value::Map(
            (0..b >> 5)
                .map(|_| (value(input, 0), value(input, depth - 1)))
                .collect(),
        ),
        _ => Value::from(u64::from(b >> 4)),
    }
}

const SERVER_METHODS: [&str; 14] = [
    "echo",
    "add",
    "lolita",
    "range",
    "fail",
    "record",
    "slow",
    "bytes",
    "_zerorpc_ping",
    "_zerorpc_list",
    "_zerorpc_help",
    "_zerorpc_args",
    "_zerorpc_inspect",
    "nope",
];

/// A request built from the input: a method (of the demo service, or any
/// name), arguments, a short message id (bin, or str like Node's), and
/// maybe a deadline and trace headers.
fn server_request(input: &mut Input) -> Event {
    let b = input.byte();
    let name = if b & 0x80 != 0 {
        String::from_utf8_lossy(input.chunk()).into_owned()
    } else {
        SERVER_METHODS[usize::from(b) % SERVER_METHODS.len()].to_owned()
    };
    let args = if b & 0x40 != 0 {
        value(input, 2)
    } else {
        Value::Array((0..(b >> 4) & 3).map(|_| value(input, 1)).collect())
    };
    let mut ev = Event::new(name, args);
    let id = input.byte();
    ev.header.message_id = if id & 1 == 0 {
        MessageId::from_bin(vec![id >> 1])
    } else {
        MessageId::from_str_id(&format!("n{}", id >> 1))
    };
    let h = input.byte();
    if h & 1 != 0 {
        ev.header.deadline_ms = Some(match input.byte() {
            0xFF => u64::MAX,
            ms => u64::from(ms) * 100,
        });
    }
    let text = |input: &mut Input| Value::from(String::from_utf8_lossy(input.chunk()).into_owned());
    if h & 2 != 0 {
        let tp = if h & 0x10 != 0 {
            text(input)
        } else {
            let (t, s): ([u8; 16], [u8; 8]) = (input.array(), input.array());
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            Value::from(format!("00-{}-{}-{:02x}", hex(&t), hex(&s), input.byte()))
        };
        ev.header.set("traceparent", tp);
    }
    if h & 4 != 0 {
        ev.header.set("tracestate", text(input));
    }
    if h & 8 != 0 {
        ev.header.set("trace_id", text(input));
    }
    ev
}

/// The server's receive path: sequences of ROUTER messages (an identity,
/// maybe the empty delimiter, an event: requests, events on open
/// channels, undecodable bytes, odd frame counts) from three clients, time
/// passing, calls starting, clients disconnecting.
///
/// What it covers: `Server::run` hands each message to a private
/// `handle_message`, which needs a `RouterSocket` with live peers, and
/// each call to a private `ServerCall` future; so this target replays
/// their steps (in `server_core`, said there line by line) over the
/// public sans-IO pieces they use, which are the code under test: event
/// decoding with the server's limits; the channel table (requests open a
/// call, events go to their `(identity, channel)`'s call, duplicates are
/// ignored, limits answer `ServerOverloaded`); `Channel::server` from
/// arbitrary requests (bin and str ids), deadlines from `deadline_ms`
/// (`u64::MAX` included), trace contexts from `traceparent`,
/// `tracestate` and legacy `trace_id` headers onto every reply;
/// `Channel::on_event` with whatever arrives (a bad `_zpc_more` abandons
/// the call), heartbeats, loss and deadline expiry with an explicit
/// `now`; the demo service's dispatch as `start_handler` does it
/// (introspection, argument decoding into its typed methods, `NameError`,
/// handler errors, streams under credit). Properties: no panic; every
/// reply decodes, is a protocol event on its own channel and carries its
/// call's trace; a stream never sends without credit; no more calls open
/// than the limits allow.
///
/// Not covered: the socket and its queues, the mailbox (events are
/// handled at once, never dropped for a full queue), back-pressure and
/// concurrency slots (a call starts when the input says), tracing records
/// and metrics, authorization, handlers that need a runtime (`slow`) or
/// allocate up to 32 MiB (`bytes`): those two never answer here.
pub fn server_recv(data: &[u8]) {
    use server_core::{ServerCore, MAX_CALLS};
    let mut input = Input(data);
    let mut now = Instant::now();
    let mut core = ServerCore::new();
    // libzmq's generated routing ids: 0, then four bytes.
    let peers: Vec<Bytes> = (1..=3u8)
        .map(|i| Bytes::from(vec![0, 0, 0, 0, i]))
        .collect();
    while !input.is_empty() {
        let op = input.byte();
        let who = peers[usize::from(op >> 6) % peers.len()].clone();
        // (ZeroMQ clients send the empty delimiter; zerorpc's DEALERs do not)
        let envelope = |frames: &mut Vec<Bytes>| {
            if op & 0x20 != 0 {
                frames.push(Bytes::new());
            }
        };
        match op & 7 {
            0 => {
                let mut frames = vec![who];
                envelope(&mut frames);
                frames.push(Bytes::copy_from_slice(input.chunk()));
                core.on_message(frames, now);
            }
            1 => {
                let mut frames = vec![who];
                envelope(&mut frames);
                frames.push(server_request(&mut input).encode());
                core.on_message(frames, now);
            }
            2 => {
                let k = input.byte();
                let Some((owner, id)) = core.call_id(usize::from(k)) else {
                    continue;
                };
                let kind = [
                    "_zpc_hb",
                    "_zpc_more",
                    "STREAM",
                    "OK",
                    "ERR",
                    "STREAM_DONE",
                    "x",
                ][usize::from(k >> 4) % 7];
                let args = match (kind, input.byte()) {
                    ("_zpc_more", a) if a < 0xC0 => Value::Array(vec![Value::from(a)]),
                    (_, a) if a < 0x80 => Value::Array(vec![Value::from(0)]),
                    _ => value(&mut input, 1),
                };
                let ev = Event::on_channel(&id, kind, args);
                // (the owner, or another client naming its channel)
                let mut frames = vec![if k & 8 != 0 { who } else { owner }];
                envelope(&mut frames);
                frames.push(ev.encode());
                core.on_message(frames, now);
            }
            3 => {
                now += Duration::from_millis(u64::from(input.byte()) * 50);
                core.poll_all(now, false);
            }
            4 => {
                let i = usize::from(input.byte());
                if core.len() > 0 {
                    core.poll(i % core.len(), now, true);
                }
            }
            5 => core.poll_all(now, true),
            6 => core.disconnect(&who),
            _ => {
                // odd shapes: no event, several envelope frames, nothing
                let n = usize::from(input.byte() % 5);
                let mut frames: Vec<Bytes> = if op & 8 != 0 { vec![] } else { vec![who] };
                frames.extend((0..n).map(|_| Bytes::copy_from_slice(input.chunk())));
                core.on_message(frames, now);
            }
        }
        assert!(core.len() <= MAX_CALLS, "more calls open than allowed");
    }
    // Everything winds down: heartbeats stop, calls are lost.
    now += Duration::from_secs(60);
    core.poll_all(now, false);
}
