//! A topic → JSON Schema registry for message bodies (fedmsg's `msg`).
//!
//! fedmsg consumers read plain dictionaries, and when a publisher renames a
//! key they fail with `KeyError`s. Here each topic can have a JSON Schema for
//! its body, checked when a message is published or consumed; a failure
//! names the failing field by its JSON pointer (`/update/alias`).
//!
//! # Schema files
//!
//! [`SchemaRegistry::load_dir`] loads every `*.json`, `*.yaml` and `*.yml`
//! file of one directory (not its subdirectories; names starting with `.`
//! are skipped). Each file is one JSON Schema document (draft 2020-12 unless
//! its `$schema` names another: 2019-09, 7, 6 and 4 are understood) plus our
//! keys:
//!
//! * `"x-topic"` (required): the topic, or an fnmatch-style glob of topics,
//!   the schema applies to. `*` matches any run of characters, dots
//!   included; `?` matches one character; nothing else is special.
//! * `"x-summary"` (optional): a summary template such as
//!   `"{agent} commented on {update.alias}"`, see [`render_summary`].
//! * `"x-fedora-messaging-schema"` (optional): the name of the matching
//!   fedora-messaging schema class (its `fedora.messages` entry point, e.g.
//!   `bodhi.update.comment.v1`). Messages we publish over AMQP carry it in
//!   their `fedora_messaging_schema` header, so a Python consumer gets that
//!   class; a message arriving with that header is checked against this
//!   schema.
//! * `"$id"` (optional): the schema's identity. Without one, the schema's id
//!   is its `x-topic`. Ids are unique in a registry.
//!
//! ```json
//! {
//!   "$id": "https://example.org/schemas/bodhi.update.comment/2",
//!   "x-topic": "org.fedoraproject.*.bodhi.update.comment",
//!   "x-summary": "{agent} commented on {comment.update.alias}",
//!   "type": "object",
//!   "required": ["agent", "comment"],
//!   "properties": {"agent": {"type": "string"}}
//! }
//! ```
//!
//! External `$ref`s are never fetched (no network, no files): a schema must
//! be self-contained (`$defs` and `#/...` references are fine).
//!
//! # Which schema applies
//!
//! 1. If the caller names a schema ([`SchemaRegistry::check_with`] with a
//!    reference, e.g. the `$schema` a message carries), that schema is used;
//!    it must be registered and its `x-topic` must match the topic.
//! 2. Otherwise, among the schemas whose pattern matches the topic, the most
//!    specific pattern wins: a literal topic beats any glob; among globs the
//!    longer pattern wins, then the one with fewer `*`, then the
//!    alphabetically first.
//! 3. Several schemas may share that pattern: they are versions of one
//!    topic's schema, told apart by `$id`. The version is the number that
//!    ends the `$id` (`…/bodhi.update.comment/2`, or `…/v2`). The body is
//!    checked against the newest version first and then the older ones; the
//!    first that accepts it is reported in [`Checked::Valid`]. If none does,
//!    the error lists the newest version's violations. (Callers that must
//!    have one exact version pass its id.)
//!
//! Versions may also be separate topics: a schema for `….comment.v2`
//! applies to messages whose topic literally ends in `.v2`.
//!
//! # Schemas derived from Rust types
//!
//! [`schema_for`], [`SchemaRegistry::add_type`] and [`write_schema_file`]
//! derive schemas with `schemars`, so a Rust publisher's message type and the
//! schema its consumers (Python ones included) load cannot drift apart.

mod compile;
mod derive;
mod glob;
mod summary;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use jsonschema::Validator;
use serde_json::Value;

use compile::{bad, compile_entry, invalid, read_schema_file, violations};
pub use derive::{schema_for, write_schema_file};
use glob::TopicPattern;
pub use summary::render_summary;

/// The key naming the topic (or topic glob) a schema applies to.
pub const TOPIC_KEY: &str = "x-topic";
/// The key holding a schema's summary template.
pub const SUMMARY_KEY: &str = "x-summary";
/// The key naming a schema's fedora-messaging schema class.
pub const FEDORA_MESSAGING_KEY: &str = "x-fedora-messaging-schema";

/// A registry or a check that failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A schema directory or file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A schema that cannot be used: not JSON/YAML, no `x-topic`, not a valid
    /// JSON Schema, an external `$ref`…
    #[error("{origin}: {problem}")]
    BadSchema {
        /// Where the schema came from: its file, or `schema for "<pattern>"`.
        origin: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Two schemas with the same id (the same `$id`, or the same `x-topic`
    /// and no `$id`).
    #[error("schema {schema_id:?} is defined twice: in {first} and in {second}")]
    Duplicate {
        /// The id both define.
        schema_id: String,
        /// Where the first definition came from.
        first: String,
        /// Where the second one came from.
        second: String,
    },
    /// The caller named a schema that is not registered.
    #[error("no schema with id {reference:?} is registered")]
    UnknownSchema {
        /// The reference as given.
        reference: String,
    },
    /// The caller named a schema that is not for this topic.
    #[error("schema {schema_id:?} applies to topics {pattern:?}, not to {topic:?}")]
    WrongTopic {
        /// The message's topic.
        topic: String,
        /// The schema named.
        schema_id: String,
        /// The schema's `x-topic`.
        pattern: String,
    },
    /// A message body that its topic's schema rejects.
    #[error(
        "message on {topic:?} does not match schema {schema_id:?}: {}",
        ViolationList(violations)
    )]
    Invalid {
        /// The message's topic.
        topic: String,
        /// The schema that rejected it.
        schema_id: String,
        /// Every failing field; never empty.
        violations: Vec<Violation>,
    },
}

/// One reason a body does not match its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the failing field in the body, e.g. `/update/alias`
    /// or `/builds/0/nvr`; empty for the body itself. For a missing required
    /// field it points at the field that should be there.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(body): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

struct ViolationList<'a>(&'a [Violation]);

impl fmt::Display for ViolationList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// The outcome of a successful [`SchemaRegistry::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Checked {
    /// A schema applied and the body matches it.
    Valid {
        /// The schema's id (its `$id`, or its `x-topic` when it has none).
        schema_id: String,
    },
    /// No schema is registered for the topic: nothing was checked.
    NoSchema,
}

/// One registered schema.
struct Entry {
    pattern: TopicPattern,
    schema_id: String,
    version: Option<u64>,
    summary: Option<String>,
    fedora_messaging: Option<String>,
    origin: String,
    schema: Value,
    validator: Validator,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("pattern", &self.pattern.as_str())
            .field("schema_id", &self.schema_id)
            .field("version", &self.version)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Topic → JSON Schema registry; see the [module documentation](self) for
/// the files it loads and the rule that picks a topic's schema.
#[derive(Debug, Default)]
pub struct SchemaRegistry {
    entries: Vec<Entry>,
}

impl SchemaRegistry {
    /// A registry with no schemas: every check is [`Checked::NoSchema`].
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads every schema file (`*.json`, `*.yaml`, `*.yml`) of `dir`.
    ///
    /// Files are read in name order. A file that cannot be read or parsed,
    /// that lacks `x-topic`, or that is not a valid JSON Schema is an error
    /// naming the file; so is a second definition of a schema id.
    pub fn load_dir(dir: &Path) -> Result<Self, SchemaError> {
        let io_err = |source| SchemaError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err)? {
            let path = entry.map_err(io_err)?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| n.starts_with('.'));
            if hidden || !path.is_file() {
                continue;
            }
            match path.extension().and_then(|e| e.to_str()) {
                Some("json" | "yaml" | "yml") => files.push(path),
                _ => tracing::debug!(file = %path.display(), "not a schema file; skipped"),
            }
        }
        files.sort();
        let mut registry = Self::empty();
        for path in files {
            let schema = read_schema_file(&path)?;
            let origin = path.display().to_string();
            if !schema.is_object() {
                return Err(bad(&origin, "a schema must be a JSON object"));
            }
            let pattern = match schema.get(TOPIC_KEY) {
                Some(Value::String(p)) => p.clone(),
                Some(_) => {
                    return Err(bad(&origin, format!("{TOPIC_KEY:?} must be a string")));
                }
                None => {
                    return Err(bad(
                        &origin,
                        format!("no {TOPIC_KEY:?} key: a schema file names the topic (or topic glob) it applies to"),
                    ));
                }
            };
            registry.insert(&pattern, schema, origin)?;
        }
        tracing::debug!(dir = %dir.display(), schemas = registry.len(), "schemas loaded");
        Ok(registry)
    }

    /// Registers `schema` for the topics matching `topic_pattern`.
    ///
    /// The schema may carry `x-summary` and `$id`; if it carries `x-topic`,
    /// that must equal `topic_pattern`.
    pub fn add(&mut self, topic_pattern: &str, schema: Value) -> Result<(), SchemaError> {
        let origin = format!("schema for {topic_pattern:?}");
        match schema.get(TOPIC_KEY) {
            None => {}
            Some(Value::String(p)) if p == topic_pattern => {}
            Some(other) => {
                return Err(bad(
                    &origin,
                    format!("its {TOPIC_KEY:?} is {other}, not {topic_pattern:?}"),
                ));
            }
        }
        self.insert(topic_pattern, schema, origin)
    }

    /// Registers the schema derived from the Rust type `T` (see [`schema_for`])
    /// for the topics matching `topic_pattern`.
    pub fn add_type<T: schemars::JsonSchema>(
        &mut self,
        topic_pattern: &str,
    ) -> Result<(), SchemaError> {
        self.add(topic_pattern, schema_for::<T>())
    }

    fn insert(
        &mut self,
        pattern_text: &str,
        schema: Value,
        origin: String,
    ) -> Result<(), SchemaError> {
        let entry = compile_entry(pattern_text, schema, origin)?;
        if let Some(existing) = self.entries.iter().find(|e| e.schema_id == entry.schema_id) {
            return Err(SchemaError::Duplicate {
                schema_id: entry.schema_id,
                first: existing.origin.clone(),
                second: entry.origin,
            });
        }
        tracing::debug!(
            topic = pattern_text,
            schema_id = %entry.schema_id,
            origin = %entry.origin,
            "schema registered"
        );
        self.entries.push(entry);
        Ok(())
    }

    /// Checks `body` against the schema for `topic` (chosen as the
    /// [module documentation](self) says).
    ///
    /// `Ok(Checked::NoSchema)` if no schema matches the topic;
    /// `Err(SchemaError::Invalid { .. })` naming the failing fields if the
    /// body does not match.
    pub fn check(&self, topic: &str, body: &Value) -> Result<Checked, SchemaError> {
        self.check_with(topic, body, None)
    }

    /// Like [`check`](Self::check), but when `schema_ref` is given the body
    /// is checked against exactly that schema: `schema_ref` is a schema id
    /// (a `$id`, or the `x-topic` of a schema without one; a trailing `#` is
    /// ignored), e.g. the `$schema` a message names. An unregistered id is
    /// [`SchemaError::UnknownSchema`]; a schema whose `x-topic` does not
    /// match `topic` is [`SchemaError::WrongTopic`].
    pub fn check_with(
        &self,
        topic: &str,
        body: &Value,
        schema_ref: Option<&str>,
    ) -> Result<Checked, SchemaError> {
        if let Some(reference) = schema_ref {
            let entry = self.by_id(reference)?;
            if !entry.pattern.matches(topic) {
                return Err(SchemaError::WrongTopic {
                    topic: topic.to_owned(),
                    schema_id: entry.schema_id.clone(),
                    pattern: entry.pattern.as_str().to_owned(),
                });
            }
            return match violations(&entry.validator, body) {
                None => Ok(Checked::Valid {
                    schema_id: entry.schema_id.clone(),
                }),
                Some(violations) => Err(invalid(topic, entry, violations)),
            };
        }
        let candidates = self.candidates(topic);
        let Some(newest) = candidates.first() else {
            return Ok(Checked::NoSchema);
        };
        let mut first_failure = None;
        for entry in &candidates {
            match violations(&entry.validator, body) {
                None => {
                    return Ok(Checked::Valid {
                        schema_id: entry.schema_id.clone(),
                    })
                }
                Some(v) if first_failure.is_none() => first_failure = Some(v),
                Some(_) => {}
            }
        }
        Err(invalid(topic, newest, first_failure.unwrap_or_default()))
    }

    /// The fedora-messaging schema name (`x-fedora-messaging-schema`) of
    /// the schema `schema_id` (as [`Checked::Valid`] names it).
    pub fn fedora_messaging_name(&self, schema_id: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.schema_id == schema_id)
            .and_then(|e| e.fedora_messaging.as_deref())
    }

    /// Whether any schema names a fedora-messaging class.
    pub fn names_fedora_messaging_classes(&self) -> bool {
        self.entries.iter().any(|e| e.fedora_messaging.is_some())
    }

    /// The id of the schema whose `x-fedora-messaging-schema` is `name`.
    pub fn schema_id_for_fedora_messaging(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.fedora_messaging.as_deref() == Some(name))
            .map(|e| e.schema_id.as_str())
    }

    /// The human summary of a message: the `x-summary` template of the
    /// topic's schema rendered against `body` (see [`render_summary`]).
    ///
    /// Among the topic's schema versions, the newest one that accepts the
    /// body and has a template is used, else the newest with a template.
    /// `None` if no schema for the topic has a template.
    pub fn summary(&self, topic: &str, body: &Value) -> Option<String> {
        let candidates = self.candidates(topic);
        let with_template: Vec<&Entry> = candidates
            .into_iter()
            .filter(|e| e.summary.is_some())
            .collect();
        let chosen = with_template
            .iter()
            .find(|e| e.validator.is_valid(body))
            .or_else(|| with_template.first())?;
        chosen
            .summary
            .as_deref()
            .map(|template| render_summary(template, body))
    }

    /// How many schemas are registered (each version counts).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no schema is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The topic patterns that have a schema, sorted, each once.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.entries.iter().map(|e| e.pattern.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// The ids of all registered schemas, sorted.
    pub fn schema_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.entries.iter().map(|e| e.schema_id.as_str()).collect();
        ids.sort_unstable();
        ids
    }

    /// The schema document registered under `schema_id` (as loaded, with
    /// its `x-` keys), if any.
    pub fn schema(&self, schema_id: &str) -> Option<&Value> {
        self.by_id(schema_id).ok().map(|e| &e.schema)
    }

    fn by_id(&self, reference: &str) -> Result<&Entry, SchemaError> {
        let wanted = reference.strip_suffix('#').unwrap_or(reference);
        self.entries
            .iter()
            .find(|e| e.schema_id.strip_suffix('#').unwrap_or(&e.schema_id) == wanted)
            .ok_or_else(|| SchemaError::UnknownSchema {
                reference: reference.to_owned(),
            })
    }

    /// The schemas that apply to `topic`: those with the most specific
    /// matching pattern, newest version first.
    fn candidates(&self, topic: &str) -> Vec<&Entry> {
        let best = self
            .entries
            .iter()
            .filter(|e| e.pattern.matches(topic))
            .map(|e| &e.pattern)
            .max_by(|a, b| a.specificity_cmp(b));
        let Some(best) = best else {
            return Vec::new();
        };
        let mut chosen: Vec<&Entry> = self.entries.iter().filter(|e| &e.pattern == best).collect();
        // Newest first: a higher version first, unnumbered ones last; ties by id.
        chosen.sort_by(|a, b| {
            b.version
                .cmp(&a.version)
                .then_with(|| a.schema_id.cmp(&b.schema_id))
        });
        chosen
    }
}

#[cfg(test)]
mod tests;
