//! A remote service described by introspection (its name, methods, their
//! documentation and argument names), and named arguments placed by it.
//!
//! [`describe`] asks `_zerorpc_inspect` (our servers, zerorpc-python and
//! zerorpc-node answer it), falling back to `_zerorpc_list` /
//! `_zerorpc_help` / `_zerorpc_args` when it fails (zerorpc-python 0.6.3
//! on Python ≥ 3.11, whose `inspect.getargspec` is gone). [`positional`]
//! places named arguments; [`Client::call_named`] does both, with the
//! description cached per client and refreshed once when it does not know
//! a method or a name. The HTTP gateway and the CLI use the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::{Client, Error, Value};

/// The service as introspection describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceInfo {
    /// Its name (`_zerorpc_name`), `"?"` if it does not say.
    pub name: String,
    /// Its public methods, in the order the service gives them.
    pub methods: Vec<MethodSpec>,
}

/// One method.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodSpec {
    /// Its name (the path it is served on).
    pub name: String,
    /// Its documentation, if any.
    pub doc: Option<String>,
    /// Its positional arguments, `None` when the service does not tell
    /// them (zerorpc-python 0.6.3 on Python ≥ 3.11, whose
    /// `inspect.getargspec` is gone).
    pub args: Option<Vec<ArgSpec>>,
}

/// One argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgSpec {
    /// Its name.
    pub name: String,
    /// Its default value, when the service tells one.
    pub default: Option<Value>,
}

impl ServiceInfo {
    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&MethodSpec> {
        self.methods.iter().find(|m| m.name == name)
    }
}

impl MethodSpec {
    /// The first line of its documentation.
    pub fn summary(&self) -> Option<&str> {
        self.doc
            .as_deref()
            .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
    }
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => s.as_str(),
        Value::Binary(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

fn field<'a>(m: &'a [(Value, Value)], k: &str) -> Option<&'a Value> {
    m.iter().find(|(kk, _)| text(kk) == Some(k)).map(|(_, v)| v)
}

/// Argument names as zerorpc-python reports them for a method of a class
/// include its `self`: not an argument a caller passes.
fn drop_self(mut args: Vec<ArgSpec>) -> Vec<ArgSpec> {
    if args.first().is_some_and(|a| a.name == "self") {
        args.remove(0);
    }
    args
}

/// Reads a `_zerorpc_inspect` result (both peers' shape: `{"name": ...,
/// "methods": {m: {"args": [{"name": a, "default": v}...], "doc": ...}}}`).
pub fn parse_inspect(v: &Value) -> Option<ServiceInfo> {
    let m = v.as_map()?;
    let name = field(m, "name").and_then(text).unwrap_or("?").to_owned();
    let methods = field(m, "methods")?
        .as_map()?
        .iter()
        .filter_map(|(k, info)| {
            let name = text(k)?.to_owned();
            let info = info.as_map().map(Vec::as_slice).unwrap_or(&[]);
            let args = field(info, "args").and_then(Value::as_array).map(|a| {
                drop_self(
                    a.iter()
                        .filter_map(Value::as_map)
                        .filter_map(|arg| {
                            Some(ArgSpec {
                                name: field(arg, "name").and_then(text)?.to_owned(),
                                default: field(arg, "default").cloned(),
                            })
                        })
                        .collect(),
                )
            });
            Some(MethodSpec {
                name,
                doc: field(info, "doc").and_then(text).map(str::to_owned),
                args,
            })
        })
        .collect();
    Some(ServiceInfo { name, methods })
}

/// Reads a `_zerorpc_args` result: Python's `[args, varargs, keywords,
/// defaults]`.
fn parse_argspec(v: &Value) -> Option<Vec<ArgSpec>> {
    let spec = v.as_array()?;
    let names = spec.first()?.as_array()?;
    let defaults = spec
        .get(3)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let first_default = names.len().saturating_sub(defaults.len());
    Some(drop_self(
        names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                Some(ArgSpec {
                    name: text(n)?.to_owned(),
                    default: i
                        .checked_sub(first_default)
                        .and_then(|j| defaults.get(j).cloned()),
                })
            })
            .collect(),
    ))
}

async fn call(
    client: &Client,
    timeout: Duration,
    method: &str,
    args: Vec<Value>,
) -> Result<Value, Error> {
    match tokio::time::timeout(timeout, client.call(method, args)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(timeout)),
    }
}

/// Describes the service: `_zerorpc_inspect`, or when the service answers
/// it with an error, `_zerorpc_name` / `_zerorpc_list` / `_zerorpc_help` /
/// `_zerorpc_args`. A service that answers none of them is described as
/// nameless and methodless (calls still pass); a service that does not
/// answer at all is an error.
pub async fn describe(client: &Client, timeout: Duration) -> Result<ServiceInfo, Error> {
    match call(client, timeout, "_zerorpc_inspect", vec![]).await {
        Ok(v) => {
            if let Some(info) = parse_inspect(&v) {
                return Ok(info);
            }
            tracing::warn!("_zerorpc_inspect answered something unexpected: {v}");
        }
        Err(Error::Remote(e)) => {
            tracing::debug!(error = %e, "_zerorpc_inspect failed, falling back to list/args");
        }
        Err(e) => return Err(e),
    }
    let name = match call(client, timeout, "_zerorpc_name", vec![]).await {
        Ok(v) => text(&v).unwrap_or("?").to_owned(),
        Err(Error::Remote(_)) => "?".to_owned(),
        Err(e) => return Err(e),
    };
    let list = match call(client, timeout, "_zerorpc_list", vec![]).await {
        Ok(v) => v,
        Err(Error::Remote(e)) => {
            tracing::warn!(error = %e, "the service lists no methods: calls pass, named arguments cannot");
            return Ok(ServiceInfo {
                name,
                methods: Vec::new(),
            });
        }
        Err(e) => return Err(e),
    };
    let names: Vec<String> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(text)
        .map(str::to_owned)
        .collect();
    let methods = futures::future::join_all(names.into_iter().map(|m| async move {
        let arg = || vec![Value::from(m.as_str())];
        let (doc, args) = futures::join!(
            call(client, timeout, "_zerorpc_help", arg()),
            call(client, timeout, "_zerorpc_args", arg()),
        );
        MethodSpec {
            doc: doc.ok().as_ref().and_then(text).map(str::to_owned),
            args: args.ok().as_ref().and_then(parse_argspec),
            name: m,
        }
    }))
    .await;
    Ok(ServiceInfo { name, methods })
}

/// Why named arguments could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A name the method does not have.
    Unknown(String),
    /// A gap: this argument, before a given one, has no value nor default.
    Missing(String),
}

/// Places named arguments by the method's argument names: every given
/// name at its position, gaps before the last given one filled with their
/// defaults; arguments after it are left out (the service applies its
/// defaults, or says what is missing).
pub fn positional(
    spec: &[ArgSpec],
    mut named: BTreeMap<String, Value>,
) -> Result<Vec<Value>, Mismatch> {
    if let Some(unknown) = named.keys().find(|k| !spec.iter().any(|a| &a.name == *k)) {
        return Err(Mismatch::Unknown(unknown.clone()));
    }
    let last = spec.iter().rposition(|a| named.contains_key(&a.name));
    let Some(last) = last else {
        return Ok(Vec::new());
    };
    spec[..=last]
        .iter()
        .map(|a| match named.remove(&a.name) {
            Some(v) => Ok(v),
            None => a
                .default
                .clone()
                .ok_or_else(|| Mismatch::Missing(a.name.clone())),
        })
        .collect()
}

impl Mismatch {
    /// The error text, in Python's words (`TypeError`).
    pub fn message(&self, method: &str) -> String {
        match self {
            Mismatch::Unknown(a) => format!("{method}() got an unexpected keyword argument '{a}'"),
            Mismatch::Missing(a) => format!(
                "{method}() missing argument '{a}' (it has no default and a later argument is given)"
            ),
        }
    }
}

/// Why named arguments could not be placed for a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    /// The service does not list its methods.
    Unlisted,
    /// The service has no such method.
    NoSuchMethod,
    /// The service does not tell the method's argument names.
    NoArgumentNames,
    /// The names do not fit the method's arguments.
    Mismatch(Mismatch),
}

impl PlaceError {
    /// The error text for a call to `method`.
    pub fn message(&self, method: &str) -> String {
        match self {
            PlaceError::Unlisted => format!(
                "the service does not list its methods, so `{method}` cannot take named arguments: pass them by position"
            ),
            PlaceError::NoSuchMethod => format!("the service has no method `{method}`"),
            PlaceError::NoArgumentNames => format!(
                "the service does not tell the argument names of `{method}` (its introspection failed, as zerorpc-python's does on Python 3.11 and later): pass the arguments by position"
            ),
            PlaceError::Mismatch(m) => m.message(method),
        }
    }
}

/// The positions of named arguments for `method`, by `info`.
pub fn place(
    info: &ServiceInfo,
    method: &str,
    named: &BTreeMap<String, Value>,
) -> Result<Vec<Value>, PlaceError> {
    match info.method(method) {
        None if info.methods.is_empty() => Err(PlaceError::Unlisted),
        None => Err(PlaceError::NoSuchMethod),
        Some(MethodSpec { args: None, .. }) => Err(PlaceError::NoArgumentNames),
        Some(MethodSpec {
            args: Some(spec), ..
        }) => positional(spec, named.clone()).map_err(PlaceError::Mismatch),
    }
}

/// How long [`Client::call_named`] waits for each introspection answer.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// The service as introspection describes it, cached by this client
    /// (and the handles sharing its connections) once asked.
    pub async fn describe(&self) -> Result<Arc<ServiceInfo>, Error> {
        if let Some(info) = self.described() {
            return Ok(info);
        }
        self.describe_again().await
    }

    /// Asks introspection again, replacing the cached description.
    pub async fn describe_again(&self) -> Result<Arc<ServiceInfo>, Error> {
        let info = Arc::new(describe(self, DESCRIBE_TIMEOUT).await?);
        self.set_described(info.clone());
        Ok(info)
    }

    /// Calls `method` with named arguments (a stream is collected, as
    /// [`Client::call`] does), placed by their names as introspection
    /// gives them: the description is cached, and asked again once when
    /// it does not know the method or a name. Arguments after the last one
    /// named are left out (the service applies its defaults); a gap before
    /// it is filled with its default. The wire does not change: the
    /// service gets positional arguments. Names that cannot be placed
    /// are [`Error::NamedArguments`], without a call.
    pub async fn call_named<K, I>(&self, method: &str, named: I) -> Result<Value, Error>
    where
        K: Into<String>,
        I: IntoIterator<Item = (K, Value)>,
    {
        let named: BTreeMap<String, Value> =
            named.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let args = self.place_named(method, &named).await?;
        self.call(method, args).await
    }

    /// The positions of named arguments for `method` (see
    /// [`Client::call_named`]).
    pub async fn place_named(
        &self,
        method: &str,
        named: &BTreeMap<String, Value>,
    ) -> Result<Vec<Value>, Error> {
        let cached = self.described();
        let info = match &cached {
            Some(info) => info.clone(),
            None => self.describe_again().await?,
        };
        let failed = |e: PlaceError| Error::NamedArguments(e.message(method));
        match place(&info, method, named) {
            Ok(args) => Ok(args),
            // (a stale description: the service may have changed)
            Err(_) if cached.is_some() => {
                let info = self.describe_again().await?;
                place(&info, method, named).map_err(failed)
            }
            Err(e) => Err(failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(names: &[(&str, Option<i64>)]) -> Vec<ArgSpec> {
        names
            .iter()
            .map(|(n, d)| ArgSpec {
                name: (*n).into(),
                default: d.map(Value::from),
            })
            .collect()
    }

    fn obj(entries: &[(&str, i64)]) -> BTreeMap<String, Value> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect()
    }

    #[test]
    fn named_arguments_take_their_positions() {
        let spec = args(&[("a", None), ("b", Some(2)), ("c", None)]);
        assert_eq!(
            positional(&spec, obj(&[("c", 3), ("a", 1)])),
            Ok(vec![1.into(), 2.into(), 3.into()])
        );
        assert_eq!(positional(&spec, obj(&[("a", 1)])), Ok(vec![1.into()]));
        assert_eq!(positional(&spec, obj(&[])), Ok(vec![]));
        assert_eq!(
            positional(&spec, obj(&[("c", 3)])),
            Err(Mismatch::Missing("a".into()))
        );
        assert_eq!(
            positional(&spec, obj(&[("a", 1), ("d", 4)])),
            Err(Mismatch::Unknown("d".into()))
        );
    }

    #[test]
    fn python_shapes_are_read_and_self_dropped() {
        let inspect = Value::Map(vec![
            ("name".into(), "PyDemo".into()),
            (
                "methods".into(),
                Value::Map(vec![(
                    "add".into(),
                    Value::Map(vec![
                        (
                            "args".into(),
                            Value::Array(vec![
                                Value::Map(vec![("name".into(), "self".into())]),
                                Value::Map(vec![("name".into(), "a".into())]),
                                Value::Map(vec![
                                    ("name".into(), "b".into()),
                                    ("default".into(), 1.into()),
                                ]),
                            ]),
                        ),
                        ("doc".into(), Value::Nil),
                    ]),
                )]),
            ),
        ]);
        let info = parse_inspect(&inspect).unwrap();
        assert_eq!(info.name, "PyDemo");
        let add = info.method("add").unwrap();
        assert_eq!(add.doc, None);
        assert_eq!(
            add.args.as_deref(),
            Some(&args(&[("a", None), ("b", Some(1))])[..])
        );
        let spec = Value::Array(vec![
            Value::Array(vec!["self".into(), "x".into(), "y".into()]),
            Value::Nil,
            Value::Nil,
            Value::Array(vec![5.into()]),
        ]);
        assert_eq!(
            parse_argspec(&spec),
            Some(args(&[("x", None), ("y", Some(5))]))
        );
    }
}
