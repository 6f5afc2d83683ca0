//! `zerorpc bus ...`: the fedmsg-compatible event bus (`zerorpc-bus`):
//! serve, publish, tail, replay, record, bridge, config.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use zerorpc_bus::bridge::{self, run_both, BridgeStats, Memory, Side};
use zerorpc_bus::config::{BusConfig, Provenance, TransportKind};
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::record::{RecordReader, RecordWriter};
use zerorpc_bus::schema::SchemaRegistry;
use zerorpc_bus::subscriber::{Delivery, Event, Filters, Since, Subscription};
use zerorpc_bus::transport::subscribe;

const EXAMPLES: &str = "\
Examples:
  zerorpc bus serve                                the daemon: ingest tcp://127.0.0.1:9941, fedmsg PUB :9940, replay :9943
  zerorpc bus publish bodhi.update '{\"alias\": \"FEDORA-1\"}'   topic org.fedoraproject.dev.zerorpc.bodhi.update
  zerorpc bus tail                                 every new message from the daemon
  zerorpc bus tail 'org.fedoraproject.*.bodhi.*'   only those topics
  zerorpc bus tail --connect tcp://fedmsg-relay:9940   any fedmsg PUB endpoint
  zerorpc bus replay --since-seq 1 --json          the log, from the start
  zerorpc bus record out.jsonl --count 100         save messages, one JSON envelope a line
  zerorpc bus publish --file out.jsonl             publish a recording again
  zerorpc bus publish --transport amqp,zmq x '{}'  one publish onto RabbitMQ and the daemon, each confirmed
  zerorpc bus tail --transport amqp --queue workers   consume RabbitMQ's shared queue `workers`
  zerorpc bus replay --transport nats --since-seq 100  a JetStream stream from sequence 100
  zerorpc bus bridge --from zmq --to amqp --both   fedmsg's ZeroMQ side and fedora-messaging's AMQP side, both ways
  zerorpc bus config                               the effective configuration, and where each value came from

Configuration: defaults, then one optional TOML file (--config FILE or ZERORPC_BUS_CONFIG),
then ZERORPC_BUS_<KEY> environment variables, then flags.";

/// The event bus: fedmsg-compatible publish/subscribe that loses nothing
#[derive(Parser, Debug)]
#[command(name = "zerorpc bus", after_help = EXAMPLES)]
pub struct BusArgs {
    #[command(subcommand)]
    pub command: BusCommand,
}

/// Options every bus command takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The configuration file (TOML; also ZERORPC_BUS_CONFIG)
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The daemon's ingest endpoint (config key `ingest`)
    #[arg(long, value_name = "ADDR", global = true)]
    pub bus: Option<String>,
    /// Where to publish (each confirmed) and read (the first): zmq, amqp,
    /// nats, comma-separated (config key `transports`)
    #[arg(long, value_name = "LIST", global = true)]
    pub transport: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum BusCommand {
    /// Run the bus daemon
    Serve(ServeArgs),
    /// Publish a message (waits for the daemon's confirmation)
    Publish(PublishArgs),
    /// Forward messages from one bus onto another (both ways with --both)
    Bridge(BridgeArgs),
    /// Print messages as they come
    Tail(TailArgs),
    /// Print messages from the daemon's log
    Replay(ReplayArgs),
    /// Save messages to a file, one JSON envelope a line
    Record(RecordArgs),
    /// Print the effective configuration and where each value came from
    Config(ConfigArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Where publishers and our subscribers connect (ZeroRPC)
    #[arg(long, value_name = "ADDR")]
    pub ingest: Option<String>,
    /// The fedmsg-wire PUB endpoint
    #[arg(long, value_name = "ADDR")]
    pub publish: Option<String>,
    /// fedmsg's REQ/REP replay endpoint
    #[arg(long, value_name = "ADDR")]
    pub replay: Option<String>,
    /// The log's directory
    #[arg(long, value_name = "DIR")]
    pub store: Option<String>,
    /// How long messages are kept (7d, 12h, 30m, none)
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<String>,
    /// JSON Schemas checked on ingest (a directory)
    #[arg(long, value_name = "DIR")]
    pub schemas: Option<String>,
    /// Reject unsigned or invalid signatures (needs ca_cert in the config)
    #[arg(long)]
    pub validate: bool,
    /// Seconds between statistics lines on stderr (0: none)
    #[arg(long, default_value_t = 0.0, value_name = "S")]
    pub stats_interval: f64,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    #[command(flatten)]
    pub common: Common,
    /// The module name in <prefix>.<environment>.<modname>.<topic>
    #[arg(long)]
    pub modname: Option<String>,
    /// Sign with this certificate (PEM; with --sign-key)
    #[arg(long, value_name = "FILE")]
    pub sign_cert: Option<String>,
    /// Sign with this private key (PEM)
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<String>,
    /// Check the body against this schema directory before sending
    #[arg(long, value_name = "DIR")]
    pub schemas: Option<String>,
    /// Do not wait for the confirmation
    #[arg(long)]
    pub no_wait: bool,
    /// Publish every message of a recording (topic and body; a new msg_id,
    /// timestamp and i)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["topic", "body"])]
    pub file: Option<PathBuf>,
    /// The topic (suffix after the modname, or a full topic)
    #[arg(required_unless_present = "file")]
    pub topic: Option<String>,
    /// The body, JSON
    #[arg(required_unless_present = "file")]
    pub body: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct Source {
    /// Listen to this fedmsg PUB endpoint instead of the daemon (repeatable)
    #[arg(long = "connect", value_name = "ADDR")]
    pub connect: Vec<String>,
    /// Start at this sequence number (daemon only)
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub since_seq: Option<u64>,
    /// Start at this time: unix seconds, or an age like 10m, 2h, 1d (daemon only)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Validate signatures (needs ca_cert in the config); invalid ones are quarantined
    #[arg(long)]
    pub validate: bool,
    /// Check bodies against this schema directory; invalid ones are quarantined
    #[arg(long, value_name = "DIR")]
    pub schemas: Option<String>,
    /// Stop after this many messages
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// On a broker: the shared queue (AMQP) or durable consumer (NATS) to
    /// read through (config keys `amqp_queue`, `nats_durable`)
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,
    /// Topic globs (`*` any characters, `?` one); none: every topic
    pub patterns: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub source: Source,
    /// Print each envelope as JSON (one line each)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub common: Common,
    /// Start at this sequence number (default: the oldest kept)
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub since_seq: Option<u64>,
    /// Start at this time: unix seconds, or an age like 10m, 2h, 1d
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Print each envelope as JSON (one line each)
    #[arg(long)]
    pub json: bool,
    /// On a broker: stop once nothing has come for this long (seconds)
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    pub idle: f64,
    /// Topic globs; none: every topic
    pub patterns: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BridgeArgs {
    #[command(flatten)]
    pub common: Common,
    /// The bus to read: zmq, amqp, nats (as configured), or a URL
    /// (tcp://… for a daemon, amqp://…, nats://…)
    #[arg(long, value_name = "BUS")]
    pub from: String,
    /// The bus to write to (same forms)
    #[arg(long, value_name = "BUS")]
    pub to: String,
    /// Both ways at once (one process: the only loop-free two-way bridge to
    /// a daemon, whose messages carry no headers)
    #[arg(long)]
    pub both: bool,
    /// Messages on their way at once
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub window: usize,
    /// Topic globs to bridge; none: every topic
    pub patterns: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    #[command(flatten)]
    pub common: Common,
    /// The recording to write
    pub file: PathBuf,
    #[command(flatten)]
    pub source: Source,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub common: Common,
}

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

async fn bridge(a: BridgeArgs) -> Outcome {
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

fn config(a: ConfigArgs) -> Outcome {
    let (cfg, prov) = load(&a.common, &[])?;
    print!("{}", cfg.render(&prov));
    Ok(ExitCode::SUCCESS)
}
