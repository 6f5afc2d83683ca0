//! The brokers the bus tests need (the machine's RabbitMQ and NATS, never
//! skipped), a TCP proxy to cut them off, and NATS stream cleanup.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::free_port;

/// The machine's RabbitMQ as an AMQP URL (`ZERORPC_TEST_AMQP_URL`, else
/// `amqp://guest:guest@127.0.0.1:5672/%2f`); panics with a clear message
/// when nothing listens there: the bus's AMQP tests need a real broker and
/// never skip.
pub fn rabbitmq_url() -> String {
    let url = std::env::var("ZERORPC_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    require_listening(
        &url,
        5672,
        "RabbitMQ (apt-get install rabbitmq-server; guest/guest)",
    );
    url
}

/// The machine's NATS server (with JetStream) as a URL
/// (`ZERORPC_TEST_NATS_URL`, else `nats://127.0.0.1:4222`); panics with a
/// clear message when nothing listens there.
pub fn nats_url() -> String {
    let url = std::env::var("ZERORPC_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    require_listening(&url, 4222, "NATS with JetStream (nats-server -js)");
    url
}

/// Panics unless a TCP connection to the host and port of `url` succeeds.
fn require_listening(url: &str, default_port: u16, what: &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let addr = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|sa| {
            std::net::TcpStream::connect_timeout(&sa, std::time::Duration::from_secs(5)).is_ok()
        });
    assert!(
        reachable,
        "these tests need {what} listening at {addr} ({url}); it is not reachable. \
         Start it (or point the ZERORPC_TEST_*_URL variable at one): the tests do not skip"
    );
}

/// A fedora-messaging configuration file in `dir` for the machine's
/// RabbitMQ (see [`rabbitmq_url`]): what `FEDORA_MESSAGING_CONF` names.
pub fn fedora_messaging_conf(dir: &Path) -> PathBuf {
    let conf = dir.join("fedora-messaging.toml");
    std::fs::write(
        &conf,
        format!(
            "amqp_url = \"{}\"\npublish_exchange = \"amq.topic\"\n\n[client_properties]\napp = \"zerorpc-bus tests\"\n",
            rabbitmq_url()
        ),
    )
    .expect("writing the fedora-messaging configuration");
    conf
}

/// A TCP proxy in front of a real service, to take the service away from
/// its clients and give it back (a broker outage without stopping the
/// machine's broker). Runs on the calling tokio runtime.
pub struct TcpProxy {
    port: u16,
    target: std::net::SocketAddr,
    running: Option<tokio::task::JoinHandle<()>>,
    /// The open connections' sockets (both sides), for [`TcpProxy::cut`].
    open: Arc<std::sync::Mutex<Vec<std::os::fd::RawFd>>>,
}

/// Keeps a connection's sockets in [`TcpProxy`]'s list while they are
/// open: made after them, so dropped (and unlisted) before they close.
struct Listed {
    open: Arc<std::sync::Mutex<Vec<std::os::fd::RawFd>>>,
    fds: [std::os::fd::RawFd; 2],
}

impl Drop for Listed {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|fd| !self.fds.contains(fd));
    }
}

impl TcpProxy {
    /// Listens on a free local port and forwards every connection to
    /// `target` (`host:port`).
    pub async fn start(target: &str) -> TcpProxy {
        let target = tokio::net::lookup_host(target)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("TcpProxy: cannot resolve {target}"));
        let mut p = TcpProxy {
            port: free_port(),
            target,
            running: None,
            open: Arc::default(),
        };
        p.resume().await;
        p
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops listening and cuts every connection (the service is "down").
    pub fn cut(&mut self) {
        if let Some(task) = self.running.take() {
            task.abort();
        }
        // The abort lands when the runtime next polls the tasks; the
        // connections are shut now, so nothing more passes after `cut`.
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for fd in open.iter() {
            // SAFETY: the fd is listed only while its socket is open (see
            // `Listed`), and the list is locked.
            unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        self.cut();
        let addr = format!("127.0.0.1:{}", self.port);
        // The port may linger a moment after a cut.
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(&addr).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("TcpProxy: cannot bind {addr} again: {e}"),
            }
        };
        let (target, open) = (self.target, self.open.clone());
        self.running = Some(tokio::spawn(async move {
            use std::os::fd::AsRawFd;
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let open = open.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let fds = [inbound.as_raw_fd(), outbound.as_raw_fd()];
                        open.lock().unwrap_or_else(|e| e.into_inner()).extend(fds);
                        let _listed = Listed { open, fds };
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            // Dropping the JoinSet (on abort, too) aborts every connection.
            drop(conns);
        }));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Deletes, when dropped, the JetStream streams of these topic prefixes
/// (`a.b` → stream `A_B`, as the bus names them) from [`nats_url`]'s
/// server: what a test made there goes, whether it passed or not.
pub struct DropNatsStreams(pub Vec<String>);

impl Drop for DropNatsStreams {
    fn drop(&mut self) {
        let names: Vec<String> = std::mem::take(&mut self.0)
            .iter()
            .map(|p| p.to_uppercase().replace('.', "_"))
            .collect();
        // A runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(client) = async_nats::connect(nats_url()).await else {
                    return;
                };
                let js = async_nats::jetstream::new(client);
                for name in names {
                    let _ = js.delete_stream(&name).await;
                }
            })
        })
        .join();
    }
}

#[cfg(test)]
mod broker_checks {
    #[test]
    fn an_absent_broker_fails_with_a_clear_message() {
        let port = super::free_port();
        let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
        let err = std::panic::catch_unwind(|| super::require_listening(&url, 5672, "RabbitMQ"))
            .expect_err("nothing listens there");
        let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            text.contains("need RabbitMQ") && text.contains(&format!("127.0.0.1:{port}")),
            "{text}"
        );
        // And one that listens passes.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("nats://127.0.0.1:{}", l.local_addr().unwrap().port());
        super::require_listening(&url, 4222, "NATS");
    }
}
