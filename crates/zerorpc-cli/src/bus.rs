//! `zerorpc bus ...`: the fedmsg-compatible event bus (`zerorpc-bus`):
//! serve, publish, tail, replay, record, bridge, config.

mod args;
mod bridge;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use zerorpc_bus::config::{BusConfig, Provenance, TransportKind};
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::record::{RecordReader, RecordWriter};
use zerorpc_bus::schema::SchemaRegistry;
use zerorpc_bus::subscriber::{Delivery, Event, Filters, Since, Subscription};
use zerorpc_bus::transport::subscribe;

pub use args::{
    BridgeArgs, BusArgs, BusCommand, Common, ConfigArgs, PublishArgs, RecordArgs, ReplayArgs,
    ServeArgs, Source, TailArgs,
};
use bridge::bridge;

/// Runs a bus command.
pub async fn run(args: BusArgs) -> ExitCode {
    let result = match args.command {
        BusCommand::Serve(a) => serve(a).await,
        BusCommand::Publish(a) => publish(a).await,
        BusCommand::Tail(a) => tail(a).await,
        BusCommand::Replay(a) => replay(a).await,
        BusCommand::Record(a) => record(a).await,
        BusCommand::Bridge(a) => bridge(a).await,
        BusCommand::Config(a) => config(a),
    };
    match result {
        Ok(code) => code,
        Err(Failure(code, text)) => {
            eprintln!("zerorpc bus: {text}");
            ExitCode::from(code)
        }
    }
}

/// An exit code and what to say.
struct Failure(u8, String);

impl From<zerorpc_bus::Error> for Failure {
    fn from(e: zerorpc_bus::Error) -> Self {
        use zerorpc_bus::Error as E;
        let code = match &e {
            E::Config(_) => 2,
            E::Rejected { .. } | E::Schema(_) => 1,
            E::Unconfirmed { .. } | E::Unroutable { .. } => 3,
            _ => 5,
        };
        Failure(code, e.to_string())
    }
}

type Outcome = Result<ExitCode, Failure>;

/// The configuration: file, environment, then `flags` (key, value).
fn load(
    common: &Common,
    flags: &[(&str, Option<String>)],
) -> Result<(BusConfig, Provenance), Failure> {
    let (mut cfg, mut prov) = BusConfig::load(common.config.as_deref(), std::env::vars())
        .map_err(|e| Failure(2, e.to_string()))?;
    let global = [
        ("ingest", common.bus.clone()),
        ("transports", common.transport.clone()),
    ];
    for (key, value) in global.iter().chain(flags.iter()) {
        if let Some(v) = value {
            cfg.set_flag(&mut prov, key, v)
                .map_err(|e| Failure(2, e.to_string()))?;
        }
    }
    Ok((cfg, prov))
}

async fn serve(a: ServeArgs) -> Outcome {
    let (cfg, _) = load(
        &a.common,
        &[
            ("ingest", a.ingest.clone()),
            ("publish", a.publish.clone()),
            ("replay", a.replay.clone()),
            ("store", a.store.clone()),
            ("retention", a.retention.clone()),
            ("schemas", a.schemas.clone()),
            ("validate", a.validate.then(|| "true".into())),
        ],
    )?;
    let mut opts = DaemonOptions::new(cfg.store.clone());
    opts.ingest = cfg.ingest.clone();
    opts.publish = cfg.publish.clone();
    opts.replay = Some(cfg.replay.clone()).filter(|r| !r.is_empty());
    opts.retention = cfg.retention.as_duration();
    opts.max_message_bytes = cfg.max_message_bytes;
    let checks = Filters::from_config(&cfg, Vec::new(), false)?;
    opts.schemas = checks.schemas;
    opts.validator = checks.validator;
    let daemon = Daemon::start(opts).await?;
    note!(
        "zerorpc bus: serving: ingest {}, fedmsg PUB {}, replay {}, log {} (last seq {})",
        daemon.ingest_endpoint(),
        daemon.publish_endpoint(),
        daemon.replay_endpoint().unwrap_or("off"),
        cfg.store.display(),
        daemon.info().last_seq
    );
    let every = (a.stats_interval > 0.0).then(|| Duration::from_secs_f64(a.stats_interval));
    let stats = async {
        match every {
            Some(every) => loop {
                tokio::time::sleep(every).await;
                let i = daemon.info();
                note!(
                    "zerorpc bus: last seq {}, stored {}, duplicates {}, rejected {:?}, subscribers {}, PUB drops {}",
                    i.last_seq, i.stored, i.duplicates, i.rejected, i.subscribers, i.pub_dropped
                );
            },
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = stats => {}
    }
    note!("zerorpc bus: stopping");
    daemon.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn publisher(
    common: &Common,
    modname: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    schema_dir: Option<String>,
) -> Result<Publisher, Failure> {
    let (cfg, _) = load(
        common,
        &[
            ("modname", modname),
            ("sign_cert", cert),
            ("sign_key", key),
            ("schemas", schema_dir),
        ],
    )?;
    let mut opts = PublisherOptions::from_config(&cfg)?;
    if cfg.modname.is_none() {
        opts.modname = "zerorpc".into();
    }
    Ok(Publisher::from_config(&cfg, opts).await?)
}

async fn publish(a: PublishArgs) -> Outcome {
    let p = publisher(&a.common, a.modname, a.sign_cert, a.sign_key, a.schemas).await?;
    if let Some(file) = &a.file {
        let reader = RecordReader::open(file)?;
        let mut n = 0u64;
        for line in reader {
            let (line_no, value) = line?;
            let (Some(topic), Some(body)) = (
                value.get("topic").and_then(|t| t.as_str()),
                value.get("msg"),
            ) else {
                return Err(Failure(
                    2,
                    format!(
                        "{}:{line_no}: not a fedmsg envelope (topic, msg)",
                        file.display()
                    ),
                ));
            };
            let msg = p.envelope_exact(topic.to_owned(), body.clone())?;
            if a.no_wait {
                p.send_nowait(&msg).await?;
            } else {
                p.send(&msg).await?;
            }
            n += 1;
        }
        p.flush().await;
        note!(
            "zerorpc bus: published {n} messages from {}",
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(topic), Some(body)) = (a.topic, a.body) else {
        return Err(Failure(
            2,
            "publish needs TOPIC and JSON (or --file)".into(),
        ));
    };
    let body: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| Failure(2, format!("the body is not JSON: {e}")))?;
    if a.no_wait {
        let id = p.publish_nowait(&topic, body).await?;
        p.flush().await;
        println!("{id}");
    } else {
        let c = p.publish(&topic, body).await?;
        let seq = c.seq().map(|s| format!(" seq {s}")).unwrap_or_default();
        let dup = if c.duplicate() {
            " (already stored)"
        } else {
            ""
        };
        println!("{}{seq}{dup}", c.msg_id);
    }
    Ok(ExitCode::SUCCESS)
}

/// Unix seconds, or an age (`10m`) before now.
fn parse_time(s: &str) -> Result<f64, Failure> {
    if let Ok(t) = s.parse::<f64>() {
        return Ok(t);
    }
    let bad = || {
        Failure(
            2,
            format!("--since {s:?}: expected unix seconds or an age like 10m, 2h, 1d"),
        )
    };
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(bad()),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    Ok(now - secs)
}

async fn subscription(
    common: &Common,
    s: &Source,
    default_since: Since,
) -> Result<(Subscription, Option<Arc<SchemaRegistry>>), Failure> {
    let (cfg, _) = load(common, &[("schemas", s.schemas.clone())])?;
    let cfg = with_queue(cfg, s.queue.clone());
    let filters = Filters::from_config(&cfg, s.patterns.clone(), s.validate)?;
    let schemas = filters.schemas.clone();
    let since = match (s.since_seq, &s.since) {
        (Some(n), _) => Some(Since::Seq(n)),
        (None, Some(t)) => Some(Since::Time(parse_time(t)?)),
        (None, None) => None,
    };
    let sub = if !s.connect.is_empty() {
        if since.is_some() {
            return Err(Failure(
                2,
                "--since-seq and --since read the daemon's log: a fedmsg endpoint (--connect) has none"
                    .into(),
            ));
        }
        Subscription::fedmsg(&s.connect, filters).await?
    } else {
        let kind = cfg.transports[0];
        let sub = subscribe(&cfg, kind, since.unwrap_or(default_since), filters, false).await?;
        match kind {
            TransportKind::Zmq => note!(
                "zerorpc bus: following {} from seq {}",
                cfg.ingest,
                sub.next_seq()
            ),
            other => note!("zerorpc bus: following {}", other.as_str()),
        }
        sub
    };
    Ok((sub, schemas))
}

fn print(d: &Delivery, json: bool, schemas: Option<&SchemaRegistry>) {
    if json {
        println!("{}", d.message.to_canonical_json());
        return;
    }
    let seq = d.seq.map(|s| format!("{s} ")).unwrap_or_default();
    let summary = schemas
        .and_then(|s| s.summary(&d.message.topic, &d.message.msg))
        .unwrap_or_else(|| d.message.msg.to_string());
    println!("{seq}{} {summary}", d.message.topic);
}

async fn tail(a: TailArgs) -> Outcome {
    let (mut sub, schemas) = subscription(&a.common, &a.source, Since::Next).await?;
    let mut seen = 0u64;
    loop {
        tokio::select! {
            event = sub.next() => match event {
                Some(Event::Message(d)) => {
                    print(&d, a.json, schemas.as_deref());
                    seen += 1;
                    if a.source.count.is_some_and(|c| seen >= c) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Some(Event::Quarantined { seq, reason, .. }) => {
                    note!("zerorpc bus: quarantined{}: {reason}", seq.map(|s| format!(" seq {s}")).unwrap_or_default());
                }
                None => return Ok(ExitCode::from(5)),
            },
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn replay(a: ReplayArgs) -> Outcome {
    let (cfg, _) = load(&a.common, &[])?;
    if cfg.transports[0] != TransportKind::Zmq {
        return replay_broker(&a, &cfg).await;
    }
    let client = zerorpc_bus::daemon::BusServiceClient::new(
        zerorpc::Client::connect(&cfg.ingest)
            .await
            .map_err(zerorpc_bus::Error::from)?,
    );
    let info = client.info().await.map_err(zerorpc_bus::Error::from)?;
    let mut from = match (a.since_seq, &a.since) {
        (Some(n), _) => n,
        (None, Some(t)) => client
            .seek_time(parse_time(t)?)
            .await
            .map_err(zerorpc_bus::Error::from)?,
        (None, None) => info.first_seq.max(1),
    };
    while from <= info.last_seq {
        let (upto, batch) = client
            .read(from, a.patterns.clone(), 1000)
            .await
            .map_err(zerorpc_bus::Error::from)?;
        if upto < from {
            break;
        }
        for (seq, raw) in batch.into_iter().filter(|(s, _)| *s <= info.last_seq) {
            match zerorpc_bus::message::Message::from_json(&raw) {
                Ok(message) => print(&Delivery::new(Some(seq), message), a.json, None),
                Err(e) => note!("zerorpc bus: seq {seq}: {e}"),
            }
        }
        from = upto + 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// Replay from a broker's log (a RabbitMQ stream queue, a JetStream
/// stream), until nothing has come for `--idle` seconds.
async fn replay_broker(a: &ReplayArgs, cfg: &BusConfig) -> Outcome {
    let since = match (a.since_seq, &a.since) {
        (Some(n), _) => Since::Seq(n),
        (None, Some(t)) => Since::Time(parse_time(t)?),
        (None, None) => Since::Start,
    };
    let filters = Filters::from_config(cfg, a.patterns.clone(), false)?;
    let mut sub = subscribe(cfg, cfg.transports[0], since, filters, false).await?;
    let idle = Duration::from_secs_f64(a.idle.max(0.05));
    loop {
        match tokio::time::timeout(idle, sub.next()).await {
            Ok(Some(Event::Message(d))) => print(&d, a.json, None),
            Ok(Some(Event::Quarantined { seq, reason, .. })) => note!(
                "zerorpc bus: quarantined{}: {reason}",
                seq.map(|s| format!(" seq {s}")).unwrap_or_default()
            ),
            Ok(None) => return Ok(ExitCode::from(5)),
            Err(_) => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn record(a: RecordArgs) -> Outcome {
    let (mut sub, _) = subscription(&a.common, &a.source, Since::Next).await?;
    let mut out = RecordWriter::create(&a.file)?;
    let mut n = 0u64;
    let result = loop {
        tokio::select! {
            event = sub.next() => match event {
                Some(Event::Message(d)) => {
                    out.write(&d.message.to_canonical_json())?;
                    n += 1;
                    if a.source.count.is_some_and(|c| n >= c) {
                        break Ok(ExitCode::SUCCESS);
                    }
                }
                Some(Event::Quarantined { reason, .. }) => note!("zerorpc bus: quarantined: {reason}"),
                None => break Ok(ExitCode::from(5)),
            },
            _ = tokio::signal::ctrl_c() => break Ok(ExitCode::SUCCESS),
        }
    };
    out.flush()?;
    note!("zerorpc bus: recorded {n} messages to {}", a.file.display());
    result
}

/// `cfg` with `queue` as the shared queue of whichever broker it names.
fn with_queue(mut cfg: BusConfig, queue: Option<String>) -> BusConfig {
    if let Some(q) = queue {
        cfg.amqp_queue = Some(q.clone());
        cfg.nats_durable = Some(q);
    }
    cfg
}

fn config(a: ConfigArgs) -> Outcome {
    let (cfg, prov) = load(&a.common, &[])?;
    print!("{}", cfg.render(&prov));
    Ok(ExitCode::SUCCESS)
}
