//! tarpc (bincode over TCP): calls and idle-channel memory.

use crate::*;

/// A tarpc server on loopback and a client connected to it. `limit`
/// raises both sides' in-flight limits (for the idle-channel run).
pub(crate) async fn tarpc_pair(
    limit: Option<usize>,
) -> (TarpcBenchClient, tokio::task::JoinHandle<()>) {
    let (addr, server) = tarpc_server(limit).await;
    (tarpc_client(addr, limit).await, server)
}

/// A tarpc server alone (`load --sides` runs it on a thread of its own):
/// its address and its task.
pub(crate) async fn tarpc_server(
    limit: Option<usize>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use futures::StreamExt;
    use tarpc::server::{BaseChannel, Channel};
    use tarpc::tokio_serde::formats::Bincode;
    let mut incoming = tarpc::serde_transport::tcp::listen("127.0.0.1:0", Bincode::default)
        .await
        .expect("tarpc listen");
    let addr = incoming.local_addr();
    let server = tokio::spawn(async move {
        while let Some(Ok(transport)) = incoming.next().await {
            match limit {
                None => {
                    tokio::spawn(
                        BaseChannel::with_defaults(transport)
                            .execute(TarpcServer.serve())
                            .for_each(|f| async move {
                                tokio::spawn(f);
                            }),
                    );
                }
                Some(n) => {
                    let config = tarpc::server::Config {
                        pending_response_buffer: n + 16,
                    };
                    tokio::spawn(
                        BaseChannel::new(config, transport)
                            .max_concurrent_requests(n + 16)
                            .execute(TarpcServer.serve())
                            .for_each(|f| async move {
                                tokio::spawn(f);
                            }),
                    );
                }
            }
        }
    });
    (addr, server)
}

/// A tarpc client of the server at `addr` (`limit`: as for `tarpc_pair`).
pub(crate) async fn tarpc_client(
    addr: std::net::SocketAddr,
    limit: Option<usize>,
) -> TarpcBenchClient {
    use tarpc::tokio_serde::formats::Bincode;
    let transport = tarpc::serde_transport::tcp::connect(addr, Bincode::default)
        .await
        .expect("tarpc connect");
    // (non-exhaustive: set the field on a default value)
    #[allow(clippy::field_reassign_with_default)]
    let config = {
        let mut c = tarpc::client::Config::default();
        if let Some(n) = limit {
            c.max_in_flight_requests = n + 16;
        }
        c
    };
    TarpcBenchClient::new(config, transport).spawn()
}

pub(crate) static TARPC_SLEEPING: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

pub(crate) async fn idle_tarpc(n: usize) -> f64 {
    let (client, _server) = tarpc_pair(Some(n)).await;
    client
        .echo(tarpc::context::current(), 1)
        .await
        .expect("warm up");
    idle_common(
        n,
        || {
            let c = client.clone();
            tokio::spawn(async move {
                let _ = c.sleep(tarpc::context::current(), 3_600_000).await;
            })
        },
        || TARPC_SLEEPING.load(std::sync::atomic::Ordering::SeqCst),
    )
    .await
}

#[tarpc::service]
pub(crate) trait TarpcBench {
    async fn echo(x: i64) -> i64;
    async fn blob(b: Vec<u8>) -> Vec<u8>;
    async fn sleep(ms: u64) -> u64;
}

#[derive(Clone)]
pub(crate) struct TarpcServer;

impl TarpcBench for TarpcServer {
    async fn echo(self, _: tarpc::context::Context, x: i64) -> i64 {
        x
    }
    async fn blob(self, _: tarpc::context::Context, b: Vec<u8>) -> Vec<u8> {
        b
    }
    async fn sleep(self, _: tarpc::context::Context, ms: u64) -> u64 {
        TARPC_SLEEPING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
}

/// One tarpc call: `echo` of an integer, or `blob` of 64 KiB.
pub(crate) fn tarpc_call(
    c: TarpcBenchClient,
    big: bool,
) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        if big {
            c.blob(tarpc::context::current(), vec![7u8; BIG])
                .await
                .expect("call");
        } else {
            c.echo(tarpc::context::current(), 1).await.expect("call");
        }
    })
}

pub(crate) async fn tarpc_bench(seq: usize, conc: usize) -> Row {
    let (client, server) = tarpc_pair(None).await;
    let row = call_workloads("tarpc (bincode over TCP)", seq, conc, client, tarpc_call).await;
    server.abort();
    row
}
