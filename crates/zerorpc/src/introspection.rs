//! The `_zerorpc_*` methods every server answers (PROTOCOL.md section 6).

use rmpv::Value;

use crate::error::CallError;
use crate::service::{MethodInfo, Service};

/// The introspection method names.
pub const METHODS: [&str; 6] = [
    "_zerorpc_ping",
    "_zerorpc_name",
    "_zerorpc_list",
    "_zerorpc_help",
    "_zerorpc_args",
    "_zerorpc_inspect",
];

fn find(service: &dyn Service, args: &[Value]) -> Result<MethodInfo, CallError> {
    let name = args
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| CallError::bad_args("expected the method name as first argument"))?;
    service
        .methods()
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| CallError::new("NameError", name))
}

/// Answers an introspection call, or `None` if `method` is not one.
pub fn answer(
    service: &dyn Service,
    method: &str,
    args: &[Value],
) -> Option<Result<Value, CallError>> {
    let name = || Value::from(service.name());
    Some(match method {
        "_zerorpc_ping" => Ok(Value::Array(vec![Value::from("pong"), name()])),
        "_zerorpc_name" => Ok(name()),
        // Like Python: the service's own methods, not these.
        "_zerorpc_list" => Ok(Value::Array(
            service
                .methods()
                .iter()
                .map(|m| Value::from(m.name.as_str()))
                .collect(),
        )),
        "_zerorpc_help" => find(service, args).map(|m| Value::from(m.doc.as_str())),
        "_zerorpc_args" => find(service, args).map(|m| args_spec(&m)),
        "_zerorpc_inspect" => Ok(inspect(service)),
        _ => return None,
    })
}

/// Python's `[args, varargs, keywords, defaults]`.
fn args_spec(m: &MethodInfo) -> Value {
    let names = Value::Array(
        m.args
            .iter()
            .map(|a| Value::from(a.name.as_str()))
            .collect(),
    );
    let defaults: Vec<Value> = m.args.iter().filter_map(|a| a.default.clone()).collect();
    Value::Array(vec![
        names,
        Value::Nil,
        Value::Nil,
        if defaults.is_empty() {
            Value::Nil
        } else {
            Value::Array(defaults)
        },
    ])
}

fn inspect(service: &dyn Service) -> Value {
    let methods = service
        .methods()
        .into_iter()
        .map(|m| {
            let args = m
                .args
                .iter()
                .map(|a| {
                    let mut e = vec![(Value::from("name"), Value::from(a.name.as_str()))];
                    if let Some(d) = &a.default {
                        e.push((Value::from("default"), d.clone()));
                    }
                    Value::Map(e)
                })
                .collect();
            (
                Value::from(m.name.as_str()),
                Value::Map(vec![
                    (Value::from("args"), Value::Array(args)),
                    (Value::from("doc"), Value::from(m.doc.as_str())),
                ]),
            )
        })
        .collect();
    Value::Map(vec![
        (Value::from("name"), Value::from(service.name())),
        (Value::from("methods"), Value::Map(methods)),
    ])
}
