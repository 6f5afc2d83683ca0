//! `zerorpc bus bridge`: joining two kinds of bus (the ZeroMQ daemon, AMQP,
//! NATS), one way or both.

use std::process::ExitCode;

use zerorpc_bus::bridge::{self, run_both, BridgeStats, Memory, Side};
use zerorpc_bus::config::{BusConfig, TransportKind};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Filters, Since, Subscription};
use zerorpc_bus::transport::subscribe;

use super::{load, BridgeArgs, Failure, Outcome};

/// A bus named on the command line: a transport name, or a URL that says
/// which transport and where.
fn bus_named(cfg: &BusConfig, name: &str) -> Result<(TransportKind, BusConfig), Failure> {
    let mut cfg = cfg.clone();
    let kind = if let Ok(kind) = name.parse::<TransportKind>() {
        kind
    } else if name.starts_with("amqp://") || name.starts_with("amqps://") {
        cfg.amqp_url = name.to_owned();
        TransportKind::Amqp
    } else if name.starts_with("nats://") || name.starts_with("tls://") {
        cfg.nats_url = name.to_owned();
        TransportKind::Nats
    } else if name.starts_with("tcp://") || name.starts_with("ipc://") {
        cfg.ingest = name.to_owned();
        TransportKind::Zmq
    } else {
        return Err(Failure(
            2,
            format!("{name:?} is not a bus: zmq, amqp, nats, or a tcp://, amqp:// or nats:// URL"),
        ));
    };
    cfg.transports = vec![kind];
    Ok((kind, cfg))
}

/// One side of a bridge: where it publishes, and, when it is read
/// (`read`), its subscription: through a queue of its own on brokers
/// (`zerorpc-bridge-to-<other>`, unless configured), from the next message
/// on the daemon.
async fn bridge_side(
    cfg: &BusConfig,
    name: &str,
    other: &str,
    patterns: &[String],
    read: bool,
    write: bool,
) -> Result<(String, Option<Subscription>, Option<Publisher>), Failure> {
    let (kind, mut cfg) = bus_named(cfg, name)?;
    let (other_kind, _) = bus_named(&cfg, other)?;
    let subscription = if read {
        let queue = format!("zerorpc-bridge-to-{}", other_kind.as_str());
        cfg.amqp_queue.get_or_insert_with(|| queue.clone());
        cfg.nats_durable.get_or_insert(queue);
        let filters = Filters::from_config(&cfg, patterns.to_vec(), false)?;
        Some(subscribe(&cfg, kind, Since::Next, filters, true).await?)
    } else {
        None
    };
    // A bridge passes messages on as they are: no schema check, no
    // signature of its own.
    let publisher = if write {
        let mut opts = PublisherOptions::from_config(&cfg)?;
        opts.schemas = None;
        opts.signer = None;
        Some(Publisher::from_config(&cfg, opts).await?)
    } else {
        None
    };
    Ok((kind.as_str().to_owned(), subscription, publisher))
}

pub(super) async fn bridge(a: BridgeArgs) -> Outcome {
    let (cfg, _) = load(&a.common, &[])?;
    let (from_name, from_sub, from_pub) =
        bridge_side(&cfg, &a.from, &a.to, &a.patterns, true, a.both).await?;
    let (to_name, to_sub, to_pub) =
        bridge_side(&cfg, &a.to, &a.from, &a.patterns, a.both, true).await?;
    if from_name == to_name {
        return Err(Failure(
            2,
            format!(
                "--from and --to are both {from_name}: a bridge joins two different kinds of bus"
            ),
        ));
    }
    note!(
        "zerorpc bus: bridging {from_name} {} {to_name}",
        if a.both { "<->" } else { "->" },
    );
    let work = async {
        match (from_sub, from_pub, to_sub, to_pub) {
            (Some(from_sub), Some(from_pub), Some(to_sub), Some(to_pub)) => {
                let a_side = Side {
                    name: from_name.clone(),
                    subscription: from_sub,
                    publisher: from_pub,
                };
                let b_side = Side {
                    name: to_name.clone(),
                    subscription: to_sub,
                    publisher: to_pub,
                };
                run_both(a_side, b_side, a.window).await.map(|_| ())
            }
            (Some(from_sub), _, None, Some(to_pub)) => {
                let (memory, stats) = (Memory::default(), BridgeStats::default());
                bridge::run(
                    from_sub, &from_name, &to_pub, &to_name, &memory, &stats, a.window,
                )
                .await
            }
            _ => Ok(()),
        }
    };
    tokio::select! {
        r = work => {
            r?;
            Ok(ExitCode::from(5))
        }
        _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
    }
}
