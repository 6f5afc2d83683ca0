//! The OpenAPI 3.0 document, generated from introspection.

use serde_json::{json, Map, Value as J};

use crate::json::to_json;
use zerorpc::describe::{MethodSpec, ServiceInfo};

fn error_response(description: &str) -> J {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The request body's schema: positional (an array) or, when the argument
/// names are known, named (an object); OpenAPI 3.0 has no `prefixItems`,
/// so the array's items are described in words.
fn request_schema(m: &MethodSpec) -> J {
    let Some(args) = &m.args else {
        return json!({
            "type": "array",
            "items": {},
            "description": "positional arguments (the service does not tell their names)"
        });
    };
    let names: Vec<&str> = args.iter().map(|a| a.name.as_str()).collect();
    let required: Vec<&str> = args
        .iter()
        .filter(|a| a.default.is_none())
        .map(|a| a.name.as_str())
        .collect();
    let positional = json!({
        "type": "array",
        "items": {},
        "minItems": required.len(),
        "maxItems": args.len(),
        "description": if names.is_empty() {
            "no arguments".to_owned()
        } else {
            format!("positional arguments: {}", names.join(", "))
        },
    });
    let properties: Map<String, J> = args
        .iter()
        .map(|a| {
            let mut p = Map::new();
            p.insert(
                "description".into(),
                J::from(format!("argument `{}`", a.name)),
            );
            if let Some(d) = &a.default {
                p.insert("default".into(), to_json(d));
            }
            (a.name.clone(), J::Object(p))
        })
        .collect();
    let mut named = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
        "description": "named arguments (placed by name)",
    });
    if !required.is_empty() {
        named["required"] = json!(required);
    }
    json!({"oneOf": [positional, named]})
}

fn operation(m: &MethodSpec, secured: bool) -> J {
    let mut op = json!({
        "operationId": m.name,
        "requestBody": {
            "required": false,
            "description": "a JSON array (positional arguments), an object (named arguments), or nothing / null (no arguments)",
            "content": {"application/json": {"schema": request_schema(m)}}
        },
        "responses": {
            "200": {
                "description": "the result; a streamed result is a JSON array, or one item per line (application/x-ndjson) or per event (text/event-stream) when asked for with Accept",
                "content": {
                    "application/json": {"schema": {}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "text/event-stream": {"schema": {"type": "string"}}
                }
            },
            "400": error_response("malformed JSON, nested too deep, or wrong arguments (TypeError)"),
            "404": error_response("no such method (NameError)"),
            "408": error_response("the request body did not arrive in time"),
            "413": error_response("request body too large, or more values than the service accepts"),
            "500": error_response("the method raised an error"),
            "502": error_response("the service was lost or the connection dropped"),
            "503": error_response("too many request bodies at once: retry later"),
            "504": error_response("no reply within the timeout"),
        }
    });
    if let Some(s) = m.summary() {
        op["summary"] = J::from(s);
    }
    if let Some(d) = &m.doc {
        op["description"] = J::from(d.as_str());
    }
    if secured {
        op["responses"]["401"] = error_response("missing or wrong bearer token");
    }
    op
}

/// The document for `info`; with a bearer security scheme when `secured`.
pub(crate) fn document(info: &ServiceInfo, secured: bool) -> J {
    let paths: Map<String, J> = info
        .methods
        .iter()
        .map(|m| {
            (
                format!("/{}", m.name),
                json!({"post": operation(m, secured)}),
            )
        })
        .collect();
    let mut components = json!({
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["name", "message", "traceback"],
                        "properties": {
                            "name": {"type": "string", "description": "the error's type name (NameError, TypeError, ValueError...)"},
                            "message": {"type": "string"},
                            "traceback": {"type": "string", "description": "the remote traceback, possibly empty"}
                        }
                    }
                }
            }
        }
    });
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": info.name,
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("The ZeroRPC service `{}` through zerorpc-gateway: POST /METHOD with the arguments as JSON.", info.name),
        },
        "paths": paths,
    });
    if secured {
        components["securitySchemes"] = json!({"bearer": {"type": "http", "scheme": "bearer"}});
        doc["security"] = json!([{"bearer": []}]);
    }
    doc["components"] = components;
    doc
}
