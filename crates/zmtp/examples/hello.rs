// The transport alone: a DEALER talks to a ROUTER, which answers by
// routing id. `cargo run -p zmtp --example hello`.
use zmtp::{DealerSocket, Message, RouterSocket, ZmtpError};

#[tokio::main]
async fn main() -> Result<(), ZmtpError> {
    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await?; // real port in `ep`
    let dealer = DealerSocket::new();
    dealer.connect(&ep.to_string()).await?; // reconnects with backoff
    dealer
        .send(Message::from_iter([&b""[..], b"hello"]))
        .await?;
    let msg = router.recv().await?; // [routing id, "", "hello"]
    router.send(msg).await?; // routed back by the first frame
    let reply = dealer.recv().await?; // ["", "hello"]
    assert_eq!(reply.last().map(|f| &f[..]), Some(&b"hello"[..]));
    println!("{} frames back: hello", reply.len());
    Ok(())
}
