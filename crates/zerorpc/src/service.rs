//! Services: what a server exposes.
//!
//! A [`Service`] names itself, describes its methods (for introspection)
//! and dispatches calls. [`DynamicService`] builds one at run time from
//! closures over [`Value`]s; the `#[zerorpc::service]` macro builds one
//! from an `impl` block.

use foldhash::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CallError;
use crate::event::Header;

/// What a handler produced.
pub enum Response {
    /// One value: `OK [value]`.
    Value(Value),
    /// A stream: `STREAM item`... then `STREAM_DONE`. An error item ends the
    /// stream with `ERR`.
    Stream(BoxStream<'static, Result<Value, CallError>>),
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Value(v) => f.debug_tuple("Value").field(v).finish(),
            Response::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// The future a handler returns.
pub type HandlerFuture = BoxFuture<'static, Result<Response, CallError>>;

/// What a handler knows about its call.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The request's header (trace context and other keys live here).
    pub header: Header,
    /// The caller's authenticated user id (CURVE), if any.
    pub user_id: Option<std::sync::Arc<str>>,
}

/// One argument, for introspection.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgInfo {
    /// Its name.
    pub name: String,
    /// Its default value, if it has one.
    pub default: Option<Value>,
}

impl ArgInfo {
    /// A required argument.
    pub fn required(name: impl Into<String>) -> Self {
        ArgInfo {
            name: name.into(),
            default: None,
        }
    }
}

/// A method, for introspection.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodInfo {
    /// Its name.
    pub name: String,
    /// Its documentation.
    pub doc: String,
    /// Its positional arguments.
    pub args: Vec<ArgInfo>,
    /// Whether it streams its result.
    pub streaming: bool,
}

impl MethodInfo {
    /// A method with required arguments named `args`.
    pub fn new(name: impl Into<String>, doc: impl Into<String>, args: &[&str]) -> Self {
        MethodInfo {
            name: name.into(),
            doc: doc.into(),
            args: args.iter().map(|a| ArgInfo::required(*a)).collect(),
            streaming: false,
        }
    }
}

/// A set of methods served under a name.
pub trait Service: Send + Sync + 'static {
    /// The service name (`_zerorpc_name`).
    fn name(&self) -> &str;

    /// Every public method, in a stable order.
    fn methods(&self) -> Vec<MethodInfo>;

    /// Starts a call; `None` when there is no such method.
    fn call(&self, method: &str, args: Vec<Value>, ctx: CallContext) -> Option<HandlerFuture>;

    /// Whether it has a method of that name (not counting the
    /// `_zerorpc_*` introspection every server answers).
    fn has_method(&self, method: &str) -> bool {
        self.methods().iter().any(|m| m.name == method)
    }
}

/// Anything a [`Server`](crate::Server) can serve: every [`Service`], and
/// every type with a `#[zerorpc::service]` impl block.
pub trait IntoService {
    /// The service it becomes.
    type Service: Service;
    /// Converts.
    fn into_service(self) -> Self::Service;
}

impl<S: Service> IntoService for S {
    type Service = S;
    fn into_service(self) -> S {
        self
    }
}

/// Errors a service method may return: a [`CallError`], or any standard
/// error (sent with its type name and message).
pub trait IntoCallError {
    /// Converts.
    fn into_call_error(self) -> CallError;
}

impl IntoCallError for CallError {
    fn into_call_error(self) -> CallError {
        self
    }
}

impl<E: std::error::Error> IntoCallError for E {
    fn into_call_error(self) -> CallError {
        CallError::from_error(&self)
    }
}

impl<S: Service + ?Sized> Service for Arc<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn methods(&self) -> Vec<MethodInfo> {
        (**self).methods()
    }
    fn call(&self, method: &str, args: Vec<Value>, ctx: CallContext) -> Option<HandlerFuture> {
        (**self).call(method, args, ctx)
    }
    fn has_method(&self, method: &str) -> bool {
        (**self).has_method(method)
    }
}

type Handler = Arc<dyn Fn(Vec<Value>, CallContext) -> HandlerFuture + Send + Sync>;

/// A service assembled at run time from closures.
///
/// ```
/// use zerorpc::{DynamicService, Value, CallError};
/// let svc = DynamicService::new("calc")
///     .method("add", "Add two numbers.", &["a", "b"], |args| async move {
///         let (a, b): (i64, i64) = zerorpc::parse_args("add", &["a", "b"], args)?;
///         Ok(Value::from(a + b))
///     });
/// ```
#[derive(Clone)]
pub struct DynamicService {
    name: String,
    order: Vec<String>,
    methods: HashMap<String, (MethodInfo, Handler)>,
}

impl fmt::Debug for DynamicService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicService")
            .field("name", &self.name)
            .field("methods", &self.order)
            .finish()
    }
}

impl DynamicService {
    /// An empty service called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        DynamicService {
            name: name.into(),
            order: Vec::new(),
            methods: HashMap::default(),
        }
    }

    /// Registers a method with its description and raw handler (replacing
    /// any method of the same name).
    pub fn register(&mut self, info: MethodInfo, handler: Handler) {
        if !self.methods.contains_key(&info.name) {
            self.order.push(info.name.clone());
        }
        self.methods.insert(info.name.clone(), (info, handler));
    }

    /// Adds a method returning one value.
    pub fn method<F, Fut>(mut self, name: &str, doc: &str, args: &[&str], f: F) -> Self
    where
        F: Fn(Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, CallError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.register(
            MethodInfo::new(name, doc, args),
            Arc::new(move |a, _ctx| {
                let f = f.clone();
                async move { f(a).await.map(Response::Value) }.boxed()
            }),
        );
        self
    }

    /// Adds a method returning a stream.
    pub fn stream_method<F, S>(mut self, name: &str, doc: &str, args: &[&str], f: F) -> Self
    where
        F: Fn(Vec<Value>) -> Result<S, CallError> + Send + Sync + 'static,
        S: Stream<Item = Result<Value, CallError>> + Send + 'static,
    {
        let mut info = MethodInfo::new(name, doc, args);
        info.streaming = true;
        self.register(
            info,
            Arc::new(move |a, _ctx| {
                let r = f(a).map(|s| Response::Stream(s.boxed()));
                async move { r }.boxed()
            }),
        );
        self
    }
}

impl Service for DynamicService {
    fn name(&self) -> &str {
        &self.name
    }

    fn methods(&self) -> Vec<MethodInfo> {
        self.order
            .iter()
            .filter_map(|n| self.methods.get(n).map(|(i, _)| i.clone()))
            .collect()
    }

    fn call(&self, method: &str, args: Vec<Value>, ctx: CallContext) -> Option<HandlerFuture> {
        let (_, h) = self.methods.get(method)?;
        Some(h(args, ctx))
    }

    fn has_method(&self, method: &str) -> bool {
        self.methods.contains_key(method)
    }
}

/// Deserializes positional arguments into a tuple (or any type that
/// deserializes from a sequence), with Python-like errors naming the
/// method and the offending argument.
pub fn parse_args<T: DeserializeOwned>(
    method: &str,
    names: &[&str],
    args: Vec<Value>,
) -> Result<T, CallError> {
    if args.len() != names.len() {
        return Err(CallError::bad_args(format!(
            "{method}() takes {} positional argument{} ({}) but {} {} given",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            args.len(),
            if args.len() == 1 { "was" } else { "were" },
        )));
    }
    let given: Vec<&str> = args.iter().map(type_name_of).collect();
    // No arguments: `()` deserializes from nil, not from an empty array.
    let v = if args.is_empty() {
        Value::Nil
    } else {
        Value::Array(args)
    };
    rmpv::ext::from_value(v).map_err(|e| {
        CallError::bad_args(format!(
            "{method}({}): arguments of types ({}) do not fit: {e}",
            names.join(", "),
            given.join(", ")
        ))
    })
}

/// Deserializes one argument, naming it in the error. Integral floats are
/// accepted for integer arguments (Node sends integers beyond 32 bits as
/// float64).
pub fn arg<T: DeserializeOwned>(method: &str, name: &str, value: Value) -> Result<T, CallError> {
    let kind = type_name_of(&value);
    let retry = match &value {
        Value::F64(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
            Some(Value::from(*f as i64))
        }
        _ => None,
    };
    rmpv::ext::from_value(value).or_else(|e| {
        retry
            .and_then(|v| rmpv::ext::from_value(v).ok())
            .ok_or_else(|| {
                CallError::bad_args(format!(
                    "{method}(): argument '{name}' has the wrong type ({kind} given): {e}"
                ))
            })
    })
}

/// Boxes a handler future (used by the generated code).
pub fn boxed<F>(f: F) -> HandlerFuture
where
    F: Future<Output = Result<Response, CallError>> + Send + 'static,
{
    f.boxed()
}

/// Serializes each item of a stream (used by the generated code).
pub fn serialize_stream<S>(s: S) -> BoxStream<'static, Result<Value, CallError>>
where
    S: Stream + Send + 'static,
    S::Item: Serialize,
{
    s.map(|item| to_value(&item)).boxed()
}

/// Serializes each item of a stream whose items may fail: an `Err` item
/// ends the call with `ERR` (used by the generated service code).
pub fn serialize_result_stream<S, T, E>(s: S) -> BoxStream<'static, Result<Value, CallError>>
where
    S: Stream<Item = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: IntoCallError,
{
    s.map(|item| {
        item.map_err(IntoCallError::into_call_error)
            .and_then(|v| to_value(&v))
    })
    .boxed()
}

/// Deserializes a result (used by the generated client).
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, crate::Error> {
    rmpv::ext::from_value(v).map_err(|e| crate::Error::Serialization(e.to_string()))
}

/// Deserializes each item of a result stream (used by the generated client).
pub fn typed_stream<T, S>(s: S) -> impl Stream<Item = Result<T, crate::Error>> + Send + 'static
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<Value, crate::Error>> + Send + 'static,
{
    s.map(|r| r.and_then(from_value::<T>))
}

/// Serializes a value for the wire (results, stream items, typed-client
/// arguments): structs become maps keyed by field name, which is what a
/// Python peer receives as a `dict` (and a Node peer as an object).
/// Use it (rather than `rmpv::ext::to_value`, which makes a struct an
/// array) to build the `Value`s of a [`DynamicService`] or a one-way
/// event. [`from_value`] reads a struct from a map or an array.
pub fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, CallError> {
    crate::valueser::to_value(v).map_err(|e| CallError::new("SerializationError", e.to_string()))
}

/// A msgpack value's type, as a Python user would call it.
pub fn type_name_of(v: &Value) -> &'static str {
    match v {
        Value::Nil => "None",
        Value::Boolean(_) => "bool",
        Value::Integer(_) => "int",
        Value::F32(_) | Value::F64(_) => "float",
        Value::String(_) => "str",
        Value::Binary(_) => "bytes",
        Value::Array(_) => "list",
        Value::Map(_) => "dict",
        Value::Ext(..) => "ext",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_inner_call_becomes_the_handlers_error() {
        let remote = crate::Error::Remote(crate::CallError {
            name: "ValueError".into(),
            message: "no".into(),
            traceback: "tb".into(),
        });
        let e = CallError::from(remote);
        assert_eq!(
            (e.name.as_str(), e.message.as_str(), e.traceback.as_str()),
            ("ValueError", "no", "tb")
        );
        let lost = CallError::from(crate::Error::Disconnected);
        assert_eq!(lost.name, "UpstreamError");
        assert!(lost.message.contains("connection"), "{}", lost.message);
        assert_eq!(
            lost.to_args(),
            Value::Array(vec![
                "UpstreamError".into(),
                lost.message.as_str().into(),
                Value::Nil
            ])
        );
    }

    #[test]
    fn a_blank_traceback_is_sent_as_nil_never_as_an_empty_string() {
        for tb in ["", "  \n"] {
            let args = CallError::bad_args("add() takes 2")
                .with_traceback(tb)
                .to_args();
            assert_eq!(
                args,
                Value::Array(vec!["TypeError".into(), "add() takes 2".into(), Value::Nil]),
                "traceback {tb:?}"
            );
        }
        let tb = "  in f\nValueError: no";
        let args = CallError::new("ValueError", "no")
            .with_traceback(tb)
            .to_args();
        assert_eq!(args.as_array().unwrap()[2], Value::from(tb));
    }
}
