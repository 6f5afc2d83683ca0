//! Building a [`BusConfig`]: reading the file and the environment, setting
//! flags, and checking each key's value against its form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    env_var_name, values, BusConfig, ConfigError, Provenance, Retention, Source, TransportKind,
    CONFIG_ENV, ENV_PREFIX, KEYS, TRANSPORTS,
};

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
    /// Builds the configuration: defaults, then the file (`file`, from
    /// `--config`, else the one `ZERORPC_BUS_CONFIG` names, else none), then
    /// the `ZERORPC_BUS_*` variables of `env`. Pass [`process_env`](super::process_env) (or
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
