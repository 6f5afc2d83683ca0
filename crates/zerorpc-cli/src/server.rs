//! Server mode: `zerorpc --server --bind ADDR demo`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use zerorpc::{ChannelConfig, Server, ServerOptions};

use crate::Cli;

/// How long in-flight calls get to finish on Ctrl-C / SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

pub async fn run(cli: Cli) -> ExitCode {
    let mut rest = cli.rest.clone();
    let service = match rest.pop() {
        Some(s) => s,
        None => {
            eprintln!("zerorpc: --server needs a service to serve (only `demo` is built in)");
            return ExitCode::from(2);
        }
    };
    if service != "demo" {
        eprintln!("zerorpc: cannot serve {service:?}: the command line serves the built-in `demo` service (write a Rust program with #[zerorpc::service] for your own)");
        return ExitCode::from(2);
    }
    let mut binds = cli.bind.clone();
    // Like Python: a bare ADDRESS is where the server binds.
    binds.extend(rest);
    if binds.is_empty() && cli.connect.is_empty() {
        eprintln!("zerorpc: give --bind ADDR (or --connect ADDR)");
        return ExitCode::from(2);
    }
    let recorder = match crate::recorder(&cli).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (socket, authorize) = match (
        crate::security::socket_options(&cli, true),
        crate::security::authorization(&cli),
    ) {
        (Ok(s), Ok(a)) => (s, a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("zerorpc: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = ServerOptions {
        channel: ChannelConfig {
            heartbeat: Duration::from_secs_f64(cli.heartbeat.max(0.01)),
            first_reply_timeout: None,
            ..Default::default()
        },
        recorder,
        socket,
        authorize,
        ..Default::default()
    };
    let server = Arc::new(Server::with_options(zerorpc::demo::Demo, opts));
    let mut bound = Vec::new();
    for b in &binds {
        match server.bind(b).await {
            Ok(ep) => {
                eprintln!("serving demo on {ep}");
                bound.push(ep.to_string());
            }
            Err(e) => {
                eprintln!("zerorpc: cannot bind {b}: {e}");
                return ExitCode::from(5);
            }
        }
    }
    for c in &cli.connect {
        // (a zerorpc:// name, e.g. a hub's worker side, is resolved once)
        let targets = match crate::naming::resolve_once(&cli, c).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("zerorpc: cannot resolve {c}: {e}");
                return ExitCode::from(5);
            }
        };
        for t in &targets {
            if let Err(e) = server.connect(t).await {
                eprintln!("zerorpc: cannot connect {t}: {e}");
                return ExitCode::from(5);
            }
            eprintln!("serving demo through {t}");
        }
    }
    let s = server.clone();
    let serving = tokio::spawn(async move { s.run().await });
    let registration = match crate::naming::register(&cli, &service, &bound).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zerorpc: {e}");
            server.shutdown();
            return ExitCode::from(5);
        }
    };
    let signal = wait_for_signal().await;
    if let Some(r) = registration {
        if let Err(e) = r.unregister().await {
            note!("zerorpc: could not unregister: {e}");
        }
    }
    note!(
        "{signal}: finishing in-flight calls (up to {}s)...",
        GRACE.as_secs()
    );
    server.shutdown_gracefully(GRACE).await;
    let _ = serving.await;
    note!("stopped");
    ExitCode::SUCCESS
}

pub async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted",
                _ = term.recv() => "terminated",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "interrupted"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted"
    }
}
