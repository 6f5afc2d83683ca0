//! The bus's configuration, with the origin of every value.
//!
//! fedmsg's configuration did not work out of the box and was read from many
//! places. Here:
//!
//! 1. every key has a default that works on one machine with no file at all;
//! 2. at most ONE TOML file is read: the one named by `--config FILE`, else
//!    by the environment variable `ZERORPC_BUS_CONFIG`; no other place is
//!    ever searched;
//! 3. environment variables `ZERORPC_BUS_<KEY>` (the key upper-cased, e.g.
//!    `ZERORPC_BUS_MAX_MESSAGE_BYTES`) override the file;
//! 4. command-line flags ([`BusConfig::set_flag`]) override everything.
//!
//! [`Provenance`] remembers where each value came from, and
//! [`BusConfig::render`] prints the effective configuration with it.
//! An unknown key in the file, or an unknown `ZERORPC_BUS_*` variable, is an
//! error that lists the valid keys: a typo is never silently ignored.
//!
//! # Keys
//!
//! | key | default | form |
//! |---|---|---|
//! | `ingest` | `tcp://127.0.0.1:9941` | endpoint publishers send to and our consumers subscribe on |
//! | `publish` | `tcp://127.0.0.1:9940` | fedmsg-wire PUB endpoint (fedmsg-gateway's port) |
//! | `replay` | `tcp://127.0.0.1:9943` | fedmsg REQ/REP replay endpoint |
//! | `store` | `$XDG_DATA_HOME/zerorpc-bus`, else `$HOME/.local/share/zerorpc-bus`, else `./zerorpc-bus-data` | directory of the durable log |
//! | `retention` | `7d` | `7d`, `12h`, `30m`, `45s`, `2w` or `none` (keep forever) |
//! | `max_message_bytes` | `1048576` | integer, or a string with `KiB`/`MiB`/`GiB` |
//! | `topic_prefix` | `org.fedoraproject` | dotted prefix |
//! | `environment` | `dev` | one topic segment (`dev`, `stg`, `prod`) |
//! | `modname`, `username` | not set | string |
//! | `sign_cert`, `sign_key`, `ca_cert`, `crl`, `schemas` | not set | path |
//! | `validate`, `routing_nitpicky` | `false` | boolean |
//! | `routing_policy` | empty | table: topic → list of certificate names |
//! | `endpoints` | empty | list of fedmsg PUB endpoints |
//! | `transports` | `["zmq"]` | where publishers send, any of `zmq` (the daemon at `ingest`), `amqp`, `nats`; consumers read from the first |
//! | `amqp_url` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ (`amqp://` or `amqps://`; `?heartbeat=N` sets the heartbeat) |
//! | `amqp_exchange` | `amq.topic` | exchange published to (fedora-messaging's) |
//! | `amqp_queue` | not set | consumers' durable queue, shared by every consumer naming it (not set: a private queue) |
//! | `amqp_alternate_exchange` | not set | where messages no queue takes go, instead of failing the publish |
//! | `amqp_stream_queue` | not set | stream queue bound to the exchange that keeps messages for replay |
//! | `nats_url` | `nats://127.0.0.1:4222` | NATS with JetStream |
//! | `nats_durable` | not set | consumers' durable consumer, shared by every consumer naming it |
//! | `nats_stream_depth` | `2` | leading topic segments naming a message's JetStream stream |
//! | `prefetch` | `64` | messages a broker hands a consumer before it settles them |
//!
//! In the file, relative paths are relative to the file's directory; from
//! the environment or a flag, to the current directory. As text (environment
//! and flags), an empty value unsets an optional key, a list is
//! comma-separated (or a TOML array), `routing_policy` is a TOML inline table
//! (`{"org.x.topic" = ["cert"]}`) and a boolean is `true`/`false` (also
//! `1`/`0`, `yes`/`no`, `on`/`off`).

mod load;
mod render;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use values::Retention;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "ZERORPC_BUS_CONFIG";
/// The prefix of the environment variables that override keys.
pub const ENV_PREFIX: &str = "ZERORPC_BUS_";

/// Every configuration key, in the order [`BusConfig::render`] prints them.
pub const KEYS: &[&str] = &[
    "ingest",
    "publish",
    "replay",
    "store",
    "retention",
    "max_message_bytes",
    "topic_prefix",
    "environment",
    "modname",
    "username",
    "sign_cert",
    "sign_key",
    "validate",
    "ca_cert",
    "crl",
    "routing_policy",
    "routing_nitpicky",
    "schemas",
    "endpoints",
    "transports",
    "amqp_url",
    "amqp_exchange",
    "amqp_queue",
    "amqp_alternate_exchange",
    "amqp_stream_queue",
    "nats_url",
    "nats_durable",
    "nats_stream_depth",
    "prefetch",
];

/// The environment variable that overrides `key`: `ZERORPC_BUS_` and the key
/// upper-cased, dots and dashes as `_`.
pub fn env_var_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_uppercase().replace(['.', '-'], "_")
    )
}

/// The process environment for [`BusConfig::load`], without panicking on
/// values that are not UTF-8 (as `std::env::vars` does): a `ZERORPC_BUS_*`
/// value that is not UTF-8 is kept with replacement characters (so it is
/// reported, not ignored); any other such variable is left out.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            match value.into_string() {
                Ok(v) => Some((name, v)),
                Err(raw) if name.starts_with(ENV_PREFIX) => {
                    Some((name, raw.to_string_lossy().into_owned()))
                }
                Err(_) => None,
            }
        })
        .collect()
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag (as written, e.g. `--ingest`).
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Where each value of a [`BusConfig`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    file: Option<(PathBuf, Source)>,
    sources: BTreeMap<&'static str, Source>,
}

impl Provenance {
    fn defaults() -> Self {
        Self {
            file: None,
            sources: KEYS.iter().map(|&k| (k, Source::Default)).collect(),
        }
    }

    /// Where `key`'s value came from; `None` if `key` is not a configuration key.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.sources.get(key)
    }

    /// The configuration file that was read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    /// What named the configuration file: `Flag("--config")` or
    /// `Env("ZERORPC_BUS_CONFIG")`.
    pub fn file_named_by(&self) -> Option<&Source> {
        self.file.as_ref().map(|(_, s)| s)
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {} (named by {named_by}): {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What named it (`flag --config` or `env ZERORPC_BUS_CONFIG`).
        named_by: Source,
        /// What the OS said.
        #[source]
        error: io::Error,
    },
    /// The configuration file is not TOML.
    #[error("configuration file {} is not valid TOML: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key that does not exist (in the file, as a `ZERORPC_BUS_*`
    /// variable, or as a flag).
    #[error("unknown configuration key {key:?} ({origin}){}; valid keys: {}",
        suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default(),
        valid.join(", "))]
    UnknownKey {
        /// The key as written (the variable name for the environment).
        key: String,
        /// Where it was written.
        origin: Source,
        /// The closest valid key, if one is close.
        suggestion: Option<String>,
        /// Every valid key, in the same form (variable names for the environment).
        valid: Vec<String>,
    },
    /// A key that must be set for what was asked.
    #[error("{key} must be set: {why}")]
    Missing {
        /// The key.
        key: String,
        /// What needs it.
        why: String,
    },
    /// A value that is not of the key's form.
    #[error("bad value for {key} ({origin}): expected {expected}, got {got}")]
    BadValue {
        /// The key.
        key: String,
        /// Where the value came from.
        origin: Source,
        /// The form the key takes.
        expected: String,
        /// The value as given.
        got: String,
    },
}

/// The bus's configuration. Every field has a default; see the
/// [module documentation](self) for the keys and their forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Where publishers send and our consumers subscribe.
    pub ingest: String,
    /// The fedmsg-wire PUB endpoint (fedmsg-gateway's port).
    pub publish: String,
    /// fedmsg's REQ/REP replay endpoint.
    pub replay: String,
    /// The directory of the durable log.
    pub store: PathBuf,
    /// How long the log keeps messages.
    pub retention: Retention,
    /// The largest message accepted, in bytes.
    pub max_message_bytes: usize,
    /// The first segments of every topic (`org.fedoraproject`).
    pub topic_prefix: String,
    /// The environment segment of topics (`dev`, `stg`, `prod`).
    pub environment: String,
    /// The module name used in topics when a publisher gives none.
    pub modname: Option<String>,
    /// The user name stamped on messages.
    pub username: Option<String>,
    /// Certificate used to sign published messages.
    pub sign_cert: Option<PathBuf>,
    /// Private key used to sign published messages.
    pub sign_key: Option<PathBuf>,
    /// Whether consumers validate signatures.
    pub validate: bool,
    /// CA certificate signatures are validated against.
    pub ca_cert: Option<PathBuf>,
    /// Certificate revocation list.
    pub crl: Option<PathBuf>,
    /// Topic → names of the certificates allowed to sign it.
    pub routing_policy: BTreeMap<String, Vec<String>>,
    /// Whether a topic missing from `routing_policy` fails validation.
    pub routing_nitpicky: bool,
    /// Directory of message schemas (see [`crate::schema`]).
    pub schemas: Option<PathBuf>,
    /// Extra fedmsg PUB endpoints `tail` connects to when given none.
    pub endpoints: Vec<String>,
    /// Where publishers send (each confirmed); consumers read from the
    /// first.
    pub transports: Vec<TransportKind>,
    /// RabbitMQ's URL.
    pub amqp_url: String,
    /// The AMQP exchange published to.
    pub amqp_exchange: String,
    /// The consumers' shared durable AMQP queue.
    pub amqp_queue: Option<String>,
    /// Where unroutable AMQP messages go instead of failing.
    pub amqp_alternate_exchange: Option<String>,
    /// The AMQP stream queue kept for replay.
    pub amqp_stream_queue: Option<String>,
    /// The NATS server's URL.
    pub nats_url: String,
    /// The consumers' shared JetStream durable consumer.
    pub nats_durable: Option<String>,
    /// Leading topic segments naming a JetStream stream.
    pub nats_stream_depth: usize,
    /// Messages a broker hands a consumer before it settles them.
    pub prefetch: u16,
}

/// A transport named in the configuration (see [`crate::transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Our ZeroMQ daemon.
    Zmq,
    /// RabbitMQ, fedora-messaging's wire.
    Amqp,
    /// NATS JetStream.
    Nats,
}

impl TransportKind {
    /// Its name in the configuration and in receipts.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Zmq => "zmq",
            TransportKind::Amqp => "amqp",
            TransportKind::Nats => "nats",
        }
    }
}

impl std::str::FromStr for TransportKind {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zmq" | "zeromq" => Ok(TransportKind::Zmq),
            "amqp" | "rabbitmq" => Ok(TransportKind::Amqp),
            "nats" | "jetstream" => Ok(TransportKind::Nats),
            _ => Err(TRANSPORTS),
        }
    }
}

/// Expected form of `transports`.
const TRANSPORTS: &str =
    "a non-empty list of transports, each zmq, amqp or nats: a TOML array, or comma-separated text";

impl Default for BusConfig {
    /// The defaults, with `store` derived from this process's `XDG_DATA_HOME`
    /// and `HOME`.
    fn default() -> Self {
        let env: Vec<(String, String)> = ["XDG_DATA_HOME", "HOME"]
            .iter()
            .filter_map(|&k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
            .collect();
        Self::defaults(&env)
    }
}

/// `$XDG_DATA_HOME/zerorpc-bus`, else `$HOME/.local/share/zerorpc-bus`, else
/// `./zerorpc-bus-data` (an `XDG_DATA_HOME` that is empty or relative is
/// ignored, as the XDG specification says).
pub fn default_store_dir(env: &[(String, String)]) -> PathBuf {
    let get = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    };
    if let Some(xdg) = get("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return xdg.join("zerorpc-bus");
    }
    if let Some(home) = get("HOME") {
        return home.join(".local/share/zerorpc-bus");
    }
    PathBuf::from("./zerorpc-bus-data")
}

impl BusConfig {
    /// The defaults, `store` derived from `env` (see [`default_store_dir`]).
    pub fn defaults(env: &[(String, String)]) -> Self {
        Self {
            ingest: "tcp://127.0.0.1:9941".to_owned(),
            publish: "tcp://127.0.0.1:9940".to_owned(),
            replay: "tcp://127.0.0.1:9943".to_owned(),
            store: default_store_dir(env),
            retention: Retention::Limit(std::time::Duration::from_secs(7 * 24 * 3600)),
            max_message_bytes: 1 << 20,
            topic_prefix: "org.fedoraproject".to_owned(),
            environment: "dev".to_owned(),
            modname: None,
            username: None,
            sign_cert: None,
            sign_key: None,
            validate: false,
            ca_cert: None,
            crl: None,
            routing_policy: BTreeMap::new(),
            routing_nitpicky: false,
            schemas: None,
            endpoints: Vec::new(),
            transports: vec![TransportKind::Zmq],
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            amqp_exchange: "amq.topic".to_owned(),
            amqp_queue: None,
            amqp_alternate_exchange: None,
            amqp_stream_queue: None,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            nats_durable: None,
            nats_stream_depth: 2,
            prefetch: 64,
        }
    }
}

#[cfg(test)]
mod tests;
