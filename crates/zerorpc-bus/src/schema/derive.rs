//! Schemas derived from Rust types with `schemars`, and writing them as
//! schema files.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::compile::{bad, compile_entry};
use super::{SchemaError, SUMMARY_KEY, TOPIC_KEY};

/// The JSON Schema (draft 2020-12) of the Rust type `T`, derived with
/// `schemars`: what `T`'s serde serialization produces.
pub fn schema_for<T: schemars::JsonSchema>() -> Value {
    schemars::SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value()
}

/// Writes `T`'s derived schema (see [`schema_for`]) as a schema file for
/// `topic` (a topic or topic glob) into `dir`, which is created if needed,
/// with `summary` as its `x-summary`. Returns the file written: `dir/<topic>.json`,
/// characters other than letters, digits, `.`, `-` and `_` replaced by `_`.
/// An existing file of that name is replaced.
///
/// This is how a crate exports its message types' schemas for the daemon
/// and for Python consumers.
pub fn write_schema_file<T: schemars::JsonSchema>(
    dir: &Path,
    topic: &str,
    summary: Option<&str>,
) -> Result<PathBuf, SchemaError> {
    let mut schema = schema_for::<T>();
    let origin = format!("schema for {topic:?}");
    if let Value::Object(map) = &mut schema {
        map.insert(TOPIC_KEY.to_owned(), Value::String(topic.to_owned()));
        if let Some(s) = summary {
            map.insert(SUMMARY_KEY.to_owned(), Value::String(s.to_owned()));
        }
    }
    // Refuse to write what load_dir would refuse to read.
    compile_entry(topic, schema.clone(), origin.clone())?;
    let file_name: String = topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{file_name}.json"));
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| SchemaError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut text = serde_json::to_string_pretty(&schema)
        .map_err(|e| bad(&origin, format!("cannot be written as JSON: {e}")))?;
    text.push('\n');
    // Written beside and renamed, so a reader never sees half a file.
    let tmp = dir.join(format!(".{file_name}.json.tmp"));
    std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    tracing::debug!(file = %path.display(), topic, "schema file written");
    Ok(path)
}
