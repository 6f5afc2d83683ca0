//! Raw libzmq DEALER↔ROUTER with a msgpack event round trip: the floor
//! for any ZeroMQ RPC.

use crate::*;

/// A libzmq ROUTER that decodes each msgpack event and answers `OK [arg]`,
/// the least a ZeroRPC server must do per call.
pub(crate) fn zmq_server(ctx: &zmq::Context) -> (String, std::thread::JoinHandle<()>) {
    let router = ctx.socket(zmq::ROUTER).expect("socket");
    router.bind("tcp://127.0.0.1:*").expect("bind");
    router.set_rcvtimeo(2000).expect("opt");
    let ep = router.get_last_endpoint().expect("ep").expect("utf8");
    let h = std::thread::spawn(move || {
        while let Ok(mut m) = router.recv_multipart(0) {
            let Some(payload) = m.pop() else { continue };
            let Ok(ev) = zerorpc::Event::decode(&payload, Default::default()) else {
                continue;
            };
            let arg = match ev.args {
                Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
                _ => Value::Nil,
            };
            let reply =
                zerorpc::Event::on_channel(&ev.header.message_id, "OK", Value::Array(vec![arg]));
            m.push(reply.encode().to_vec());
            if router.send_multipart(m, 0).is_err() {
                break;
            }
        }
    });
    (ep, h)
}

pub(crate) fn zmq_client(ctx: &zmq::Context, seq: usize, conc: usize) -> Row {
    let (ep, server) = zmq_server(ctx);
    let d = ctx.socket(zmq::DEALER).expect("socket");
    d.connect(&ep).expect("connect");
    let call = |d: &zmq::Socket, arg: Value| {
        let ev = zerorpc::Event::new("echo", Value::Array(vec![arg]));
        d.send_multipart([Vec::new(), ev.encode().to_vec()], 0)
            .expect("send");
    };
    let recv = |d: &zmq::Socket| {
        let m = d.recv_multipart(0).expect("recv");
        zerorpc::Event::decode(m.last().expect("payload"), Default::default()).expect("event")
    };
    for _ in 0..200 {
        call(&d, 1.into());
        recv(&d);
    }
    let mut h = hist();
    for _ in 0..seq {
        let t = Instant::now();
        call(&d, 1.into());
        recv(&d);
        h.record(t.elapsed().as_nanos() as u64).ok();
    }
    // k calls in flight from one socket (libzmq's blocking API has no tasks).
    let rate = |k: usize, n: usize, arg: Value| {
        let t = Instant::now();
        for _ in 0..k.min(n) {
            call(&d, arg.clone());
        }
        for i in 0..n {
            recv(&d);
            if i + k < n {
                call(&d, arg.clone());
            }
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let r16 = rate(16, conc, 1.into());
    let r256 = rate(256, conc, 1.into());
    let r64k = rate(16, conc / 10, Value::Binary(vec![7u8; BIG]));
    drop(d);
    server.join().ok();
    Row::calls("raw libzmq DEALER↔ROUTER + msgpack", &h, r16, r256, r64k)
}
