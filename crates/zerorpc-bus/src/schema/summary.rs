//! Human summaries of message bodies from `x-summary` templates.

use serde_json::Value;

/// What a placeholder renders as when its path is missing from the body
/// (or leads to `null`).
pub const MISSING: &str = "?";

/// Renders a summary template against a message body.
///
/// A placeholder `{a.b.c}` is a dotted path into the body: each part is an
/// object key, or an index when the value there is an array (`{builds.0.nvr}`).
/// Values render as follows: a string as itself, a number or boolean as its
/// JSON text, an array as its items separated by `, `, an object as compact
/// JSON, and a missing path or `null` as `?`. `{{` and `}}` are literal braces;
/// a `{` that is never closed is kept as written. Rendering never fails.
///
/// ```
/// use serde_json::json;
/// use zerorpc_bus::schema::render_summary;
/// let body = json!({"agent": "bowlofeggs", "update": {"alias": "FEDORA-2018-1"}});
/// assert_eq!(
///     render_summary("{agent} commented on {update.alias} ({karma})", &body),
///     "bowlofeggs commented on FEDORA-2018-1 (?)"
/// );
/// ```
pub fn render_summary(template: &str, body: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{') {
            match after.find('}') {
                Some(end) => {
                    out.push_str(&render_path(after[..end].trim(), body));
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(tail);
                    rest = "";
                }
            }
        } else {
            // A lone `}`: kept as written.
            out.push('}');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Looks a dotted path up in `body`; `None` if any step is missing.
fn lookup<'v>(body: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return None;
    }
    path.split('.').try_fold(body, |value, part| match value {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn render_path(path: &str, body: &Value) -> String {
    match lookup(body, path) {
        None | Some(Value::Null) => MISSING.to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(render_scalar_or_json)
            .collect::<Vec<_>>()
            .join(", "),
        Some(value) => render_scalar_or_json(value),
    }
}

fn render_scalar_or_json(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => MISSING.to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_paths_and_indexes() {
        let body = json!({
            "agent": "bowlofeggs",
            "comment": {"update": {"alias": "FEDORA-2018-abc", "builds": [{"nvr": "pkg-1.0-1"}]}}
        });
        assert_eq!(
            render_summary(
                "{agent} commented on {comment.update.alias}: {comment.update.builds.0.nvr}",
                &body
            ),
            "bowlofeggs commented on FEDORA-2018-abc: pkg-1.0-1"
        );
    }

    #[test]
    fn missing_paths_render_as_question_marks() {
        let body = json!({"agent": "a", "update": {"alias": null}, "list": [1]});
        assert_eq!(
            render_summary(
                "{nope} {update.alias} {update.alias.deeper} {agent.x} {list.5} {list.x} {}",
                &body
            ),
            "? ? ? ? ? ? ?"
        );
        // Not an object at all.
        assert_eq!(render_summary("{a}", &json!("text")), "?");
    }

    #[test]
    fn non_string_values() {
        let body = json!({
            "karma": -1, "ratio": 0.5, "critpath": true,
            "builds": ["a-1", "b-2", 3, null],
            "owner": {"name": "x"}
        });
        assert_eq!(
            render_summary("{karma} {ratio} {critpath} [{builds}] {owner}", &body),
            "-1 0.5 true [a-1, b-2, 3, ?] {\"name\":\"x\"}"
        );
    }

    #[test]
    fn braces_escapes_and_unclosed() {
        let body = json!({"a": "x"});
        assert_eq!(render_summary("{{a}} = {a}", &body), "{a} = x");
        assert_eq!(render_summary("open {a", &body), "open {a");
        assert_eq!(render_summary("lone } and {a}", &body), "lone } and x");
        assert_eq!(render_summary("{ a }", &body), "x");
        assert_eq!(render_summary("", &body), "");
        assert_eq!(render_summary("é{a}ü", &body), "éxü");
    }
}
