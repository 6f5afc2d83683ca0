//! A hostile client: a raw TCP connection speaking ZMTP (NULL, as a
//! DEALER) that sends what it likes and reads only when told to. Our
//! sans-IO handshake and encoder make the bytes; nothing of the server
//! side is involved.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zerorpc::{Event, MessageId, Value};
use zmtp::{
    Decoder, Encoder, Handshake, Incoming, Limits, Message, NullMechanism, SocketType, WriteBuffer,
};

use zerorpc_testkit::within;

pub struct RawClient {
    pub stream: TcpStream,
    input: BytesMut,
    decoder: Option<Decoder>,
    encoder: Encoder,
}

impl RawClient {
    /// Connects to `endpoint` (`tcp://host:port`) and completes a NULL
    /// handshake as a DEALER.
    pub async fn connect(endpoint: &str) -> RawClient {
        let addr = endpoint.trim_start_matches("tcp://");
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut input = BytesMut::new();
        let hs = Handshake::new(
            SocketType::Dealer,
            Bytes::new(),
            Box::new(NullMechanism::new()),
        );
        let (mut r, mut w) = s.split();
        let session = within(
            "raw handshake",
            hs.run(&mut r, &mut w, &mut input, Limits::default()),
        )
        .await
        .expect("handshake");
        RawClient {
            stream: s,
            input,
            decoder: Some(session.decoder),
            encoder: session.encoder,
        }
    }

    /// Sends one event as `[delimiter, event]`.
    pub async fn send(&mut self, ev: &Event) {
        let msg: Message = vec![Bytes::new(), ev.encode()].into_iter().collect();
        let mut buf = WriteBuffer::new();
        self.encoder.encode_message(&msg, &mut buf).expect("encode");
        self.stream.write_all(&buf.to_vec()).await.expect("send");
    }

    /// Sends a request; returns its channel id.
    pub async fn call(&mut self, method: &str, args: Vec<Value>) -> MessageId {
        let ev = Event::new(method, Value::Array(args));
        let id = ev.header.message_id.clone();
        self.send(&ev).await;
        id
    }

    /// Sends an event on a channel.
    pub async fn on_channel(&mut self, channel: &MessageId, name: &str, args: Value) {
        self.send(&Event::on_channel(channel, name, args)).await;
    }

    /// Reads the next event (skipping the delimiter frame).
    pub async fn recv(&mut self) -> Event {
        within("an event from the server", async {
            loop {
                let decoder = self.decoder.as_mut().expect("decoder");
                while let Some(item) = decoder.decode(&mut self.input).expect("decode") {
                    if let Incoming::Message(m) = item {
                        let payload = m.frames().last().cloned().expect("a frame");
                        return Event::decode(&payload, Default::default()).expect("event");
                    }
                }
                let n = self.stream.read_buf(&mut self.input).await.expect("read");
                assert!(n > 0, "server closed the connection");
            }
        })
        .await
    }

    /// Reads until the server closes the connection.
    pub async fn expect_closed(&mut self, what: &str) {
        within(&format!("server to close the connection: {what}"), async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
    }
}
