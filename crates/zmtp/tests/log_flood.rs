//! A peer that fails handshakes as fast as it can must not flood the logs:
//! connection warnings are rate-limited per cause, with counts of what
//! was suppressed. (Its own binary: it installs the global subscriber.)

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zmtp::RouterSocket;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_log_a_few_warnings_not_one_each() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();
    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let addr = ep.to_string().trim_start_matches("tcp://").to_owned();
    const N: u64 = 300;
    for _ in 0..N {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        // Not a ZMTP greeting.
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        // The server closes it.
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        while router.handshake_failures() < N {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every failure counted");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("handshake failed"))
        .count();
    eprintln!("{N} failed handshakes logged {lines} warning line(s):\n{text}");
    assert!(lines >= 1, "the first failure is logged");
    assert!(lines <= 5, "{lines} warning lines for {N} failures");
    assert_eq!(
        router.handshake_failures(),
        N,
        "every failure is still counted"
    );
}
