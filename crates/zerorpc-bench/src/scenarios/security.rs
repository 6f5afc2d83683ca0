//! `zerorpc-bench security`: CURVE against NULL calls/s.

use crate::*;

/// Calls over a fresh server and client, with CURVE or without.
pub(crate) async fn security_row(curve: bool, quick: bool) -> Row {
    let (seq, conc) = if quick {
        (2_000, 20_000)
    } else {
        (10_000, 100_000)
    };
    let (server_opts, opts) = secured(curve);
    let (server, ep) = demo_server(server_opts).await;
    let name = if curve { "CURVE" } else { "NULL" };
    let row = tokio::spawn(async move {
        let c = Client::connect_with(&[&ep], opts).await.expect("connect");
        call_workloads(name, seq, conc, c, echo_call).await
    })
    .await
    .expect("bench task");
    server.shutdown();
    row
}

/// A server's and a client's options, with CURVE (fresh keys; any client
/// allowed) or NULL.
pub(crate) fn secured(curve: bool) -> (zerorpc::ServerOptions, zerorpc::ClientOptions) {
    use zerorpc::zmtp::curve::CurveKeyPair;
    use zerorpc::zmtp::{AllowAny, Security, SocketOptions};
    let server_keys = CurveKeyPair::generate();
    let (server_sec, client_sec) = if curve {
        (
            Security::curve_server(server_keys.clone(), AllowAny),
            Security::curve_client(CurveKeyPair::generate(), server_keys.public),
        )
    } else {
        (Security::Null, Security::Null)
    };
    let server = zerorpc::ServerOptions {
        socket: SocketOptions {
            security: server_sec,
            ..Default::default()
        },
        ..Default::default()
    };
    let client = zerorpc::ClientOptions {
        socket: SocketOptions {
            security: client_sec,
            ..Default::default()
        },
        ..Default::default()
    };
    (server, client)
}

/// NULL vs CURVE, alternating three times; prints every run and the
/// median ratios.
pub(crate) async fn security_bench(quick: bool) {
    alternate("CURVE", "NULL", |curve| security_row(curve, quick)).await;
}
