//! Support for the code `#[zerorpc::service]` generates; not a public API.
//!
//! A method's error type is only known to the compiler, so the generated
//! code picks how to send it by autoref specialization:
//! `(&&&&ErrorKind(&e)).zerorpc_error_kind().convert(e)` resolves, in this
//! order of preference, to
//!
//! 1. [`IntoCallError`] (every `std::error::Error`, and `CallError`);
//! 2. `Into<Box<dyn Error + Send + Sync>>` (`Box<dyn Error + Send + Sync>`,
//!    `anyhow::Error`, `String`, `&str`);
//! 3. `Into<Box<dyn Error>>` (`Box<dyn Error>`);
//! 4. anything else: a compile error that says what to use
//!    ([`UnsupportedError`]).

use std::error::Error as StdError;

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CallError;
use crate::service::IntoCallError;

// (helpers the generated code calls by path)
pub use crate::service::{boxed, serialize_result_stream, serialize_stream, typed_stream};

/// An argument type the service decodes (named in the generated code so
/// that a type without `Deserialize` gets a message saying so).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a zerorpc argument: it does not implement `serde::Deserialize`",
    label = "the service decodes this argument from the request",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it (the service decodes it, the typed client encodes it)"
)]
pub trait DecodeArg: DeserializeOwned {}
impl<T: DeserializeOwned> DecodeArg for T {}

/// An argument type the typed client encodes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a zerorpc argument: it does not implement `serde::Serialize`",
    label = "the typed client encodes this argument",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it (the service decodes it, the typed client encodes it)"
)]
pub trait EncodeArg: Serialize {}
impl<T: Serialize> EncodeArg for T {}

/// A result type the service encodes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a zerorpc result: it does not implement `serde::Serialize`",
    label = "the service encodes this result",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it (the service encodes it, the typed client decodes it)"
)]
pub trait EncodeResult: Serialize {}
impl<T: Serialize> EncodeResult for T {}

/// A result type the typed client decodes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a zerorpc result: it does not implement `serde::Deserialize`",
    label = "the typed client decodes this result",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it (the service encodes it, the typed client decodes it)"
)]
pub trait DecodeResult: DeserializeOwned {}
impl<T: DeserializeOwned> DecodeResult for T {}

/// Decodes argument `name` of `method` ([`crate::service::arg`]).
pub fn decode_arg<T: DecodeArg>(method: &str, name: &str, value: Value) -> Result<T, CallError> {
    crate::service::arg(method, name, value)
}

/// Encodes an argument for the typed client.
pub fn encode_arg<T: EncodeArg>(v: &T) -> Result<Value, crate::Error> {
    crate::service::to_value(v).map_err(|e| crate::Error::Serialization(e.message))
}

/// Encodes a result ([`crate::service::to_value`]).
pub fn encode_result<T: EncodeResult>(v: &T) -> Result<Value, CallError> {
    crate::service::to_value(v)
}

/// A method's result on its way to being encoded, for the generated code
/// of methods whose result type is named `Value`: `(&ResultOf(..))
/// .zerorpc_encode()` finds [`EncodeValue`] first when it is
/// [`Value`] (the value itself, no copy of its bytes through serde), else
/// [`EncodeSerialize`] ([`encode_result`]).
pub struct ResultOf<T>(pub std::cell::Cell<Option<T>>);

impl<T> std::fmt::Debug for ResultOf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResultOf(..)")
    }
}

/// [`ResultOf`] a [`Value`]: the value itself.
pub trait EncodeValue {
    /// The value.
    fn zerorpc_encode(&self) -> Result<Value, CallError>;
}

impl EncodeValue for ResultOf<Value> {
    fn zerorpc_encode(&self) -> Result<Value, CallError> {
        Ok(self.0.take().unwrap_or(Value::Nil))
    }
}

/// [`ResultOf`] anything else: serialized ([`encode_result`]).
pub trait EncodeSerialize {
    /// The value serialized.
    fn zerorpc_encode(&self) -> Result<Value, CallError>;
}

impl<T: EncodeResult> EncodeSerialize for &ResultOf<T> {
    fn zerorpc_encode(&self) -> Result<Value, CallError> {
        match self.0.take() {
            Some(v) => encode_result(&v),
            None => Ok(Value::Nil),
        }
    }
}

/// Decodes a result for the typed client ([`crate::service::from_value`]).
pub fn decode_result<T: DecodeResult>(v: Value) -> Result<T, crate::Error> {
    crate::service::from_value(v)
}

/// Holds a method's error for [`ViaCallError`] and its siblings to pick a
/// conversion.
#[derive(Debug)]
pub struct ErrorKind<'a, E>(pub &'a E);

/// Converts with [`IntoCallError`].
#[derive(Debug)]
pub struct CallErrorTag;
/// Converts through `Box<dyn Error + Send + Sync>`.
#[derive(Debug)]
pub struct SendDynTag;
/// Converts through `Box<dyn Error>`.
#[derive(Debug)]
pub struct LocalDynTag;
/// Cannot convert: a compile error.
#[derive(Debug)]
pub struct UnsupportedTag;

/// First choice: the error implements [`IntoCallError`].
pub trait ViaCallError {
    /// Picks the conversion.
    fn zerorpc_error_kind(&self) -> CallErrorTag {
        CallErrorTag
    }
}
impl<E: IntoCallError> ViaCallError for &&&ErrorKind<'_, E> {}

/// Second choice: the error is (or converts into) a boxed `Send` error.
pub trait ViaSendDyn {
    /// Picks the conversion.
    fn zerorpc_error_kind(&self) -> SendDynTag {
        SendDynTag
    }
}
impl<E: Into<Box<dyn StdError + Send + Sync>>> ViaSendDyn for &&ErrorKind<'_, E> {}

/// Third choice: the error is (or converts into) a boxed error.
pub trait ViaLocalDyn {
    /// Picks the conversion.
    fn zerorpc_error_kind(&self) -> LocalDynTag {
        LocalDynTag
    }
}
impl<E: Into<Box<dyn StdError>>> ViaLocalDyn for &ErrorKind<'_, E> {}

/// Last resort: an error type the server cannot send.
pub trait ViaUnsupported {
    /// Picks the (failing) conversion.
    fn zerorpc_error_kind(&self) -> UnsupportedTag {
        UnsupportedTag
    }
}
impl<E> ViaUnsupported for ErrorKind<'_, E> {}

impl CallErrorTag {
    /// Converts.
    pub fn convert<E: IntoCallError>(self, e: E) -> CallError {
        e.into_call_error()
    }
}

impl SendDynTag {
    /// Converts.
    pub fn convert<E: Into<Box<dyn StdError + Send + Sync>>>(self, e: E) -> CallError {
        let boxed: Box<dyn StdError + Send + Sync> = e.into();
        from_boxed_error(boxed)
    }
}

impl LocalDynTag {
    /// Converts.
    pub fn convert<E: Into<Box<dyn StdError>>>(self, e: E) -> CallError {
        from_boxed_error(e.into())
    }
}

/// No type implements it: naming it in a bound is how the generated code
/// says which error types a method may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent as a zerorpc error",
    label = "this error type is neither a `std::error::Error` nor a boxed error",
    note = "return `Result<T, E>` where `E` implements `std::error::Error`, or is a `zerorpc::CallError`, a `Box<dyn std::error::Error + Send + Sync>` or an `anyhow::Error`"
)]
pub trait UnsupportedError {
    /// Never called.
    fn into_call_error(self) -> CallError;
}

impl UnsupportedTag {
    /// Fails to compile (see [`UnsupportedError`]).
    pub fn convert<E: UnsupportedError>(self, e: E) -> CallError {
        e.into_call_error()
    }
}

/// A boxed error as an `ERR`: a failed zerorpc call passes on as it was (like
/// `?` on it in a handler returning `CallError`); otherwise the message is
/// its `Display`, the traceback its chain of sources, and the name its type
/// name when its `Debug` shows one (`ParseIntError { .. }`, `DivByZero`), or
/// `Error` (as for an unboxed `std::io::Error`, or a boxed string).
pub fn from_boxed_error(e: Box<dyn StdError>) -> CallError {
    let e = match e.downcast::<crate::Error>() {
        Ok(z) => return CallError::from(*z),
        Err(e) => e,
    };
    let name = if e.is::<std::io::Error>() {
        "Error".to_owned()
    } else {
        type_name_in_debug(&format!("{e:?}"))
            .unwrap_or("Error")
            .to_owned()
    };
    let mut err = CallError::new(name, e.to_string());
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        causes.push(format!("caused by: {s}"));
        source = s.source();
    }
    if !causes.is_empty() {
        err = err.with_traceback(causes.join("\n"));
    }
    err
}

/// The type name a derived `Debug` starts with: `Name`, `Name(..)` or
/// `Name { .. }`, if it looks like one (capitalised, then nothing, `(` or
/// ` {`).
fn type_name_in_debug(debug: &str) -> Option<&str> {
    let end = debug
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    let (name, rest) = debug.split_at(end);
    let capitalised = name.starts_with(|c: char| c.is_ascii_uppercase());
    (capitalised && (rest.is_empty() || rest.starts_with('(') || rest.starts_with(" {")))
        .then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct DivByZero;
    impl std::fmt::Display for DivByZero {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("division by zero")
        }
    }
    impl StdError for DivByZero {}

    #[test]
    fn boxed_errors_keep_their_type_name_and_message() {
        let e = from_boxed_error(Box::new(DivByZero));
        assert_eq!(
            (e.name.as_str(), e.message.as_str()),
            ("DivByZero", "division by zero")
        );
        let parse = "x".parse::<i64>().unwrap_err();
        let e = from_boxed_error(Box::new(parse.clone()));
        assert_eq!(
            (e.name.as_str(), e.message),
            ("ParseIntError", parse.to_string())
        );
        let e = from_boxed_error("Connection refused by peer".into());
        assert_eq!(
            (e.name.as_str(), e.message.as_str()),
            ("Error", "Connection refused by peer")
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = from_boxed_error(Box::new(io));
        assert_eq!(
            (e.name.as_str(), e.message.as_str()),
            ("Error", "no such file")
        );
    }

    #[test]
    fn a_boxed_remote_error_passes_on_as_it_was() {
        let remote = crate::Error::Remote(crate::CallError {
            name: "ValueError".into(),
            message: "no".into(),
            traceback: "tb".into(),
        });
        let e = from_boxed_error(Box::new(remote));
        assert_eq!(
            (e.name.as_str(), e.message.as_str(), e.traceback.as_str()),
            ("ValueError", "no", "tb")
        );
    }

    #[test]
    fn a_boxed_errors_sources_are_its_traceback() {
        #[derive(Debug)]
        struct Outer(DivByZero);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("could not compute")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = from_boxed_error(Box::new(Outer(DivByZero)));
        assert_eq!(e.name, "Outer");
        assert_eq!(e.traceback, "caused by: division by zero");
    }
}
