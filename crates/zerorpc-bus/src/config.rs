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

/// A value as found: typed in the file, or text from the environment or a flag.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Toml(&'a toml::Value),
    Text(&'a str),
}

impl Raw<'_> {
    /// The value as the user wrote it, for error messages.
    fn shown(&self) -> String {
        match self {
            Raw::Toml(v) => v.to_string(),
            Raw::Text(t) => format!("{t:?}"),
        }
    }
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

    /// Builds the configuration: defaults, then the file (`file`, from
    /// `--config`, else the one `ZERORPC_BUS_CONFIG` names, else none), then
    /// the `ZERORPC_BUS_*` variables of `env`. Pass [`process_env`] (or
    /// `std::env::vars()`) in production. Flags come after, with
    /// [`set_flag`](Self::set_flag).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(BusConfig, Provenance), ConfigError> {
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        // One value per name (the last wins, as in a real environment), in
        // name order so that errors do not depend on the iteration order.
        env.reverse();
        let mut seen = std::collections::HashSet::new();
        env.retain(|(k, _)| seen.insert(k.clone()));
        env.sort();

        let mut config = Self::defaults(&env);
        let mut prov = Provenance::defaults();

        let named = match file {
            Some(path) => Some((path.to_owned(), Source::Flag("--config".to_owned()))),
            None => env
                .iter()
                .find(|(k, v)| k == CONFIG_ENV && !v.is_empty())
                .map(|(_, v)| (PathBuf::from(v), Source::Env(CONFIG_ENV.to_owned()))),
        };
        if let Some((path, named_by)) = named {
            config.apply_file(&mut prov, &path, &named_by)?;
            prov.file = Some((path, named_by));
        }

        for (name, value) in &env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if name == CONFIG_ENV {
                continue;
            }
            let origin = Source::Env(name.clone());
            let key = KEYS
                .iter()
                .copied()
                .find(|k| env_var_name(k) == *name)
                .ok_or_else(|| {
                    let mut valid: Vec<String> = KEYS.iter().map(|k| env_var_name(k)).collect();
                    valid.push(CONFIG_ENV.to_owned());
                    unknown(name, &rest.to_lowercase(), origin.clone(), valid, |k| {
                        env_var_name(k)
                    })
                })?;
            config.apply(key, Raw::Text(value), &origin, None)?;
            prov.sources.insert(key, origin);
        }
        tracing::debug!(file = ?prov.file(), "configuration loaded");
        Ok((config, prov))
    }

    fn apply_file(
        &mut self,
        prov: &mut Provenance,
        path: &Path,
        named_by: &Source,
    ) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            named_by: named_by.clone(),
            error,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let origin = Source::File(path.to_owned());
        let base = path.parent().filter(|p| !p.as_os_str().is_empty());
        for (name, value) in &table {
            let key = KEYS.iter().copied().find(|k| k == name).ok_or_else(|| {
                let valid = KEYS.iter().map(|k| k.to_string()).collect();
                unknown(name, name, origin.clone(), valid, str::to_owned)
            })?;
            self.apply(key, Raw::Toml(value), &origin, base)?;
            prov.sources.insert(key, origin.clone());
        }
        Ok(())
    }

    /// Sets a key from a command-line flag, overriding the file and the
    /// environment. `key` is a configuration key, written with `_` or `-`
    /// and with or without a leading `--` (`max-message-bytes`); `value` is
    /// text, as in an environment variable. The origin recorded is the flag
    /// `--max-message-bytes`.
    pub fn set_flag(
        &mut self,
        prov: &mut Provenance,
        key: &str,
        value: &str,
    ) -> Result<(), ConfigError> {
        let bare = key.trim_start_matches("--").replace('-', "_");
        let flag = |k: &str| format!("--{}", k.replace('_', "-"));
        let origin = Source::Flag(flag(&bare));
        let known = KEYS.iter().copied().find(|k| *k == bare).ok_or_else(|| {
            let valid = KEYS.iter().map(|k| flag(k)).collect();
            unknown(&flag(&bare), &bare, origin.clone(), valid, flag)
        })?;
        self.apply(known, Raw::Text(value), &origin, None)?;
        prov.sources.insert(known, origin);
        Ok(())
    }

    /// Sets one key. `base` is the directory relative paths are resolved
    /// against (the file's), `None` to keep them as given.
    fn apply(
        &mut self,
        key: &'static str,
        raw: Raw<'_>,
        origin: &Source,
        base: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let fail = |expected: &str| ConfigError::BadValue {
            key: key.to_owned(),
            origin: origin.clone(),
            expected: expected.to_owned(),
            got: raw.shown(),
        };
        let text = || match raw {
            Raw::Toml(toml::Value::String(s)) => Some(s.as_str()),
            Raw::Text(s) => Some(s),
            Raw::Toml(_) => None,
        };
        let string = |check: fn(&str) -> Result<String, &'static str>, expected: &str| {
            text()
                .ok_or_else(|| fail(expected))
                .and_then(|s| check(s).map_err(&fail))
        };
        let path = |expected: &str| -> Result<Option<PathBuf>, ConfigError> {
            let s = text().ok_or_else(|| fail(expected))?;
            if s.is_empty() {
                return Ok(None);
            }
            let p = PathBuf::from(s);
            Ok(Some(match base {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p,
            }))
        };
        let opt_string = |expected: &str| -> Result<Option<String>, ConfigError> {
            let s = text().ok_or_else(|| fail(expected))?;
            Ok((!s.is_empty()).then(|| s.to_owned()))
        };
        let boolean = || match raw {
            Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
            Raw::Toml(_) => Err(fail(values::BOOL)),
            Raw::Text(t) => values::boolean(t).map_err(&fail),
        };
        let integer = || match raw {
            Raw::Toml(toml::Value::Integer(n)) => Some(*n),
            Raw::Toml(_) => None,
            Raw::Text(t) => t.trim().parse().ok(),
        };
        const PATH: &str = "a path";
        const NAME: &str = "a string";
        match key {
            "ingest" => self.ingest = string(values::endpoint, values::ENDPOINT)?,
            "publish" => self.publish = string(values::endpoint, values::ENDPOINT)?,
            "replay" => self.replay = string(values::endpoint, values::ENDPOINT)?,
            "store" => {
                self.store = path(PATH)?.ok_or_else(|| fail("a directory path (not empty)"))?
            }
            "retention" => {
                let s = text().ok_or_else(|| fail(Retention::EXPECTED))?;
                self.retention = s.parse().map_err(&fail)?;
            }
            "max_message_bytes" => {
                self.max_message_bytes = match raw {
                    Raw::Toml(toml::Value::Integer(n)) => usize::try_from(*n)
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| fail(values::BYTES))?,
                    Raw::Toml(toml::Value::String(s)) => values::bytes(s).map_err(&fail)?,
                    Raw::Text(s) => values::bytes(s).map_err(&fail)?,
                    Raw::Toml(_) => return Err(fail(values::BYTES)),
                }
            }
            "topic_prefix" => {
                self.topic_prefix = string(values::topic_prefix, values::TOPIC_PREFIX)?
            }
            "environment" => self.environment = string(values::environment, values::ENVIRONMENT)?,
            "modname" => self.modname = opt_string(NAME)?,
            "username" => self.username = opt_string(NAME)?,
            "sign_cert" => self.sign_cert = path(PATH)?,
            "sign_key" => self.sign_key = path(PATH)?,
            "ca_cert" => self.ca_cert = path(PATH)?,
            "crl" => self.crl = path(PATH)?,
            "schemas" => self.schemas = path(PATH)?,
            "validate" => self.validate = boolean()?,
            "routing_nitpicky" => self.routing_nitpicky = boolean()?,
            "endpoints" => {
                const EXPECTED: &str = "a list of ZeroMQ endpoints (tcp://HOST:PORT or ipc://PATH): a TOML array, or comma-separated text";
                let items = list(raw).ok_or_else(|| fail(EXPECTED))?;
                for item in &items {
                    values::endpoint(item).map_err(|_| fail(EXPECTED))?;
                }
                self.endpoints = items;
            }
            "transports" => {
                let items = list(raw).ok_or_else(|| fail(TRANSPORTS))?;
                let mut kinds = Vec::new();
                for item in &items {
                    let kind: TransportKind = item.parse().map_err(&fail)?;
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                if kinds.is_empty() {
                    return Err(fail(TRANSPORTS));
                }
                self.transports = kinds;
            }
            "amqp_url" => self.amqp_url = string(values::amqp_url, values::AMQP_URL)?,
            "amqp_exchange" => self.amqp_exchange = string(values::name, values::NAME)?,
            "amqp_queue" => self.amqp_queue = opt_string(NAME)?,
            "amqp_alternate_exchange" => self.amqp_alternate_exchange = opt_string(NAME)?,
            "amqp_stream_queue" => self.amqp_stream_queue = opt_string(NAME)?,
            "nats_url" => self.nats_url = string(values::nats_url, values::NATS_URL)?,
            "nats_durable" => self.nats_durable = opt_string(NAME)?,
            "nats_stream_depth" => {
                self.nats_stream_depth = integer()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| (1..=16).contains(n))
                    .ok_or_else(|| fail("a number of topic segments, 1 to 16"))?
            }
            "prefetch" => {
                self.prefetch = integer()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| fail("a number of messages, 1 to 65535"))?
            }
            "routing_policy" => {
                const EXPECTED: &str = "a table of topic = [certificate names], e.g. {\"org.fedoraproject.prod.bodhi.update.comment\" = [\"bodhi\"]}";
                let table = match raw {
                    Raw::Toml(toml::Value::Table(t)) => Some(t.clone()),
                    Raw::Text(t) => parse_inline(t).and_then(|v| match v {
                        toml::Value::Table(t) => Some(t),
                        _ => None,
                    }),
                    Raw::Toml(_) => None,
                }
                .ok_or_else(|| fail(EXPECTED))?;
                let mut policy = BTreeMap::new();
                for (topic, names) in table {
                    let names: Option<Vec<String>> = names.as_array().and_then(|items| {
                        items
                            .iter()
                            .map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    });
                    match names {
                        Some(names) if !topic.is_empty() => {
                            policy.insert(topic, names);
                        }
                        _ => return Err(fail(EXPECTED)),
                    }
                }
                self.routing_policy = policy;
            }
            // KEYS and this match list the same keys (a test checks it).
            _ => return Err(fail("a known key")),
        }
        Ok(())
    }

    /// The effective configuration as TOML lines, each value followed by its
    /// origin as a comment (`ingest = "tcp://127.0.0.1:9941"  # default`).
    /// Unset optional keys are comment lines. The output is valid TOML and
    /// loads back to the same configuration.
    pub fn render(&self, prov: &Provenance) -> String {
        let mut out = String::new();
        match &prov.file {
            Some((path, by)) => out.push_str(&format!(
                "# zerorpc-bus configuration; file {} (named by {by})\n",
                path.display()
            )),
            None => out.push_str("# zerorpc-bus configuration; no configuration file\n"),
        }
        for &key in KEYS {
            let origin = prov.source(key).cloned().unwrap_or(Source::Default);
            match self.toml_value(key) {
                Some(value) => out.push_str(&format!("{key} = {value}  # {origin}\n")),
                None => out.push_str(&format!("# {key} is not set  # {origin}\n")),
            }
        }
        out
    }

    /// One key's value as TOML text; `None` for an unset optional key.
    fn toml_value(&self, key: &str) -> Option<String> {
        let s = |v: &str| Some(toml::Value::String(v.to_owned()).to_string());
        let p = |v: &Path| s(&v.to_string_lossy());
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().filter_map(|i| s(i)).collect();
            format!("[{}]", quoted.join(", "))
        };
        match key {
            "ingest" => s(&self.ingest),
            "publish" => s(&self.publish),
            "replay" => s(&self.replay),
            "store" => p(&self.store),
            "retention" => s(&self.retention.to_string()),
            "max_message_bytes" => Some(self.max_message_bytes.to_string()),
            "topic_prefix" => s(&self.topic_prefix),
            "environment" => s(&self.environment),
            "modname" => self.modname.as_deref().and_then(s),
            "username" => self.username.as_deref().and_then(s),
            "sign_cert" => self.sign_cert.as_deref().and_then(p),
            "sign_key" => self.sign_key.as_deref().and_then(p),
            "validate" => Some(self.validate.to_string()),
            "ca_cert" => self.ca_cert.as_deref().and_then(p),
            "crl" => self.crl.as_deref().and_then(p),
            "routing_policy" => {
                let entries: Vec<String> = self
                    .routing_policy
                    .iter()
                    .filter_map(|(topic, names)| Some(format!("{} = {}", s(topic)?, list(names))))
                    .collect();
                if entries.is_empty() {
                    Some("{}".to_owned())
                } else {
                    Some(format!("{{ {} }}", entries.join(", ")))
                }
            }
            "routing_nitpicky" => Some(self.routing_nitpicky.to_string()),
            "schemas" => self.schemas.as_deref().and_then(p),
            "endpoints" => Some(list(&self.endpoints)),
            "transports" => {
                let names: Vec<String> = self
                    .transports
                    .iter()
                    .map(|t| t.as_str().to_owned())
                    .collect();
                Some(list(&names))
            }
            "amqp_url" => s(&self.amqp_url),
            "amqp_exchange" => s(&self.amqp_exchange),
            "amqp_queue" => self.amqp_queue.as_deref().and_then(s),
            "amqp_alternate_exchange" => self.amqp_alternate_exchange.as_deref().and_then(s),
            "amqp_stream_queue" => self.amqp_stream_queue.as_deref().and_then(s),
            "nats_url" => s(&self.nats_url),
            "nats_durable" => self.nats_durable.as_deref().and_then(s),
            "nats_stream_depth" => Some(self.nats_stream_depth.to_string()),
            "prefetch" => Some(self.prefetch.to_string()),
            _ => None,
        }
    }
}

/// A list of strings: a TOML array, or text that is a TOML array or
/// comma-separated.
fn list(raw: Raw<'_>) -> Option<Vec<String>> {
    let strings = |items: &[toml::Value]| {
        items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<String>>>()
    };
    match raw {
        Raw::Toml(toml::Value::Array(items)) => strings(items),
        Raw::Text(t) if t.trim_start().starts_with('[') => match parse_inline(t)? {
            toml::Value::Array(items) => strings(&items),
            _ => None,
        },
        Raw::Text(t) => Some(
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        Raw::Toml(_) => None,
    }
}

/// Parses text as one TOML value (an array or inline table).
fn parse_inline(text: &str) -> Option<toml::Value> {
    let mut table: toml::Table = toml::from_str(&format!("v = {text}")).ok()?;
    table.remove("v")
}

/// The error for an unknown key, with the closest valid key if it is close.
fn unknown(
    written: &str,
    bare: &str,
    origin: Source,
    valid: Vec<String>,
    form: impl Fn(&str) -> String,
) -> ConfigError {
    let suggestion = KEYS
        .iter()
        .map(|k| (values::edit_distance(bare, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| form(k));
    ConfigError::UnknownKey {
        key: written.to_owned(),
        origin,
        suggestion,
        valid,
    }
}

#[cfg(test)]
mod tests;
