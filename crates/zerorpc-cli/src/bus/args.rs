//! The command line of `zerorpc bus`: its subcommands and their options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
