//! Reading and compiling one schema file into a registry entry, and turning
//! a validator's errors into [`Violation`]s.

use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::Value;

use super::glob::TopicPattern;
use super::{Entry, SchemaError, Violation, FEDORA_MESSAGING_KEY, SUMMARY_KEY};

/// The longest violation message kept, in characters (validator messages
/// quote the offending value, which may be large).
const MAX_MESSAGE_CHARS: usize = 300;

pub(super) fn bad(origin: &str, problem: impl Into<String>) -> SchemaError {
    SchemaError::BadSchema {
        origin: origin.to_owned(),
        problem: problem.into(),
    }
}

pub(super) fn invalid(topic: &str, entry: &Entry, violations: Vec<Violation>) -> SchemaError {
    SchemaError::Invalid {
        topic: topic.to_owned(),
        schema_id: entry.schema_id.clone(),
        violations,
    }
}

pub(super) fn read_schema_file(path: &Path) -> Result<Value, SchemaError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
        path: path.to_owned(),
        source,
    })?;
    let origin = path.display().to_string();
    let value: Value = match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => serde_norway::from_str(&text)
            .map_err(|e| bad(&origin, format!("not valid YAML: {e}")))?,
        _ => {
            serde_json::from_str(&text).map_err(|e| bad(&origin, format!("not valid JSON: {e}")))?
        }
    };
    Ok(value)
}

/// Checks and compiles one schema.
pub(super) fn compile_entry(
    pattern_text: &str,
    schema: Value,
    origin: String,
) -> Result<Entry, SchemaError> {
    let pattern = TopicPattern::parse(pattern_text).map_err(|p| bad(&origin, p))?;
    let Value::Object(map) = &schema else {
        return Err(bad(&origin, "a schema must be a JSON object"));
    };
    let summary = match map.get(SUMMARY_KEY) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad(&origin, format!("{SUMMARY_KEY:?} must be a string"))),
    };
    let fedora_messaging = match map.get(FEDORA_MESSAGING_KEY) {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            return Err(bad(
                &origin,
                format!("{FEDORA_MESSAGING_KEY:?} must be a non-empty string"),
            ))
        }
    };
    let schema_id = match map.get("$id") {
        None => pattern_text.to_owned(),
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(_) => return Err(bad(&origin, "\"$id\" must be a non-empty string")),
    };
    let version = map
        .get("$id")
        .and_then(Value::as_str)
        .and_then(version_of_id);
    let validator = jsonschema::options().build(&schema).map_err(|e| {
        bad(
            &origin,
            format!("not a usable JSON Schema: {}", short(&e.to_string())),
        )
    })?;
    Ok(Entry {
        pattern,
        schema_id,
        version,
        summary,
        fedora_messaging,
        origin,
        schema,
        validator,
    })
}

/// The version number that ends a schema `$id`: `…/2`, `…/v2` (a trailing
/// `/` or `#` is ignored).
fn version_of_id(id: &str) -> Option<u64> {
    let id = id.trim_end_matches(['#', '/']);
    let last = id.rsplit('/').next()?;
    let digits = last
        .strip_prefix('v')
        .or_else(|| last.strip_prefix('V'))
        .unwrap_or(last);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// All the ways `body` fails `validator`, or `None` if it passes.
pub(super) fn violations(validator: &Validator, body: &Value) -> Option<Vec<Violation>> {
    let mut out = Vec::new();
    for error in validator.iter_errors(body) {
        let at = error.instance_path().as_str();
        match error.kind() {
            ValidationErrorKind::Required { property } => {
                let name = property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_owned);
                out.push(Violation {
                    path: child_pointer(at, &name),
                    message: "required field is missing".to_owned(),
                });
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    out.push(Violation {
                        path: child_pointer(at, name),
                        message: "field is not allowed by the schema".to_owned(),
                    });
                }
            }
            _ => out.push(Violation {
                path: at.to_owned(),
                message: short(&error.to_string()),
            }),
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// `parent` (a JSON pointer) extended by the property `name`, escaped.
fn child_pointer(parent: &str, name: &str) -> String {
    format!("{parent}/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// `text` cut to [`MAX_MESSAGE_CHARS`] characters.
fn short(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}
