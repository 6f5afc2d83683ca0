//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use zmtp::{Message, SocketEvent};

/// Generous bound used only to turn a wedge into a failure, never to
/// measure anything.
pub const WEDGE: Duration = Duration::from_secs(30);

pub fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "zmtp=info".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// One libzmq context for the whole test binary.
pub fn ctx() -> &'static zmq::Context {
    static CTX: OnceLock<zmq::Context> = OnceLock::new();
    CTX.get_or_init(zmq::Context::new)
}

/// A libzmq socket that never blocks a test forever.
pub fn zsock(kind: zmq::SocketType) -> zmq::Socket {
    let s = ctx().socket(kind).expect("libzmq socket");
    s.set_rcvtimeo(20_000).unwrap();
    s.set_sndtimeo(20_000).unwrap();
    s.set_linger(1000).unwrap();
    s
}

/// Runs libzmq code on a blocking thread.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("libzmq side panicked")
}

/// Bounds an async step with the wedge timeout.
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WEDGE, f)
        .await
        .unwrap_or_else(|_| panic!("wedged: {what}"))
}

pub fn msg(frames: &[&[u8]]) -> Message {
    frames.iter().map(|f| Bytes::copy_from_slice(f)).collect()
}

pub fn frames(m: &Message) -> Vec<Vec<u8>> {
    m.frames().iter().map(|f| f.to_vec()).collect()
}

/// Waits for the first event matching `pred`.
pub async fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<SocketEvent>,
    what: &str,
    pred: impl Fn(&SocketEvent) -> bool,
) -> SocketEvent {
    within(what, async {
        loop {
            match rx.recv().await {
                Ok(ev) if pred(&ev) => return ev,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("monitor closed: {e}"),
            }
        }
    })
    .await
}

/// A libzmq endpoint bound on a free loopback port.
pub fn zbind(s: &zmq::Socket) -> String {
    s.bind("tcp://127.0.0.1:*").unwrap();
    s.get_last_endpoint().unwrap().unwrap()
}
