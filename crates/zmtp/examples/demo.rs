//! A tour of the transport: request/reply, pipeline and publish/subscribe
//! over real TCP and IPC sockets, all in one process.
//!
//! `cargo run --release -p zmtp --example demo`

use std::time::{Duration, Instant};

use bytes::Bytes;
use zmtp::{
    DealerSocket, Message, PubSocket, PullSocket, PushSocket, RouterSocket, SocketEvent, SubSocket,
    ZmtpError,
};

#[tokio::main]
async fn main() -> Result<(), ZmtpError> {
    // 1. ROUTER server on an OS-chosen port, DEALER client.
    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await?;
    println!("ROUTER listening on {ep}");
    let mut events = router.monitor();
    tokio::spawn(async move {
        while let Ok(mut m) = router.recv().await {
            let body = m.last().cloned().unwrap_or_default();
            let reply = format!("hello, {}", String::from_utf8_lossy(&body));
            let id = m.pop_front().unwrap_or_default();
            let _ = router
                .send(Message::from_iter([id, Bytes::new(), Bytes::from(reply)]))
                .await;
        }
    });
    let dealer = DealerSocket::new();
    dealer.connect(&ep.to_string()).await?;
    dealer
        .send(Message::from_iter([&b""[..], b"world"]))
        .await?;
    let reply = dealer.recv().await?;
    println!(
        "DEALER got reply: {:?}",
        String::from_utf8_lossy(reply.last().map(|b| &b[..]).unwrap_or_default())
    );
    if let Ok(SocketEvent::Connected {
        routing_id,
        socket_type,
        ..
    }) = events.recv().await
    {
        let hex: String = routing_id
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!("ROUTER saw a {socket_type} connect; it routes to it by id 0x{hex}");
    }

    // 2. Round trips, one at a time.
    let n = 10_000;
    let t = Instant::now();
    for _ in 0..n {
        dealer.send(Message::from_iter([&b""[..], b"x"])).await?;
        dealer.recv().await?;
    }
    let per = t.elapsed() / n;
    println!("{n} sequential round trips: {per:?} each");

    // 3. PUSH -> PULL pipeline over IPC.
    let path = std::env::temp_dir().join(format!("zmtp-demo-{}.sock", std::process::id()));
    let pull = PullSocket::new();
    let ipc = pull.bind(&format!("ipc://{}", path.display())).await?;
    let push = PushSocket::new();
    push.connect(&ipc.to_string()).await?;
    let count = 200_000;
    let t = Instant::now();
    let sender = tokio::spawn(async move {
        for i in 0..count as u32 {
            push.send(Message::from(i.to_be_bytes().to_vec())).await?;
        }
        Ok::<_, ZmtpError>(push)
    });
    for _ in 0..count {
        pull.recv().await?;
    }
    let _push = sender.await.expect("sender task")?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "PUSH->PULL over {ipc}: {count} messages, {:.0} msgs/s",
        count as f64 / secs
    );

    // 4. PUB/SUB with prefix filtering done on the publisher side.
    let publisher = PubSocket::new();
    let pub_ep = publisher.bind("tcp://127.0.0.1:0").await?;
    let sub = SubSocket::new();
    sub.subscribe(&b"weather."[..]).await?;
    sub.connect(&pub_ep.to_string()).await?;
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // Subscriptions travel asynchronously: publish until one lands.
            publisher.send(Message::from_iter([&b"sports.football"[..], b"3-1"]))?;
            publisher.send(Message::from_iter([&b"weather.paris"[..], b"sunny"]))?;
            if let Some(m) = sub.try_recv()? {
                return Ok::<_, ZmtpError>(m);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .map_err(|_| ZmtpError::Closed)??;
    println!(
        "SUB (subscribed to \"weather.\") received: {} = {}",
        String::from_utf8_lossy(&got.frames()[0]),
        String::from_utf8_lossy(&got.frames()[1])
    );
    Ok(())
}
