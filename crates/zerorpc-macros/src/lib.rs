//! # zerorpc-macros
//!
//! `#[zerorpc::service]` on an `impl` block turns its `pub` methods into a
//! ZeroRPC service and generates a typed client. Use it through the
//! `zerorpc` crate, which re-exports it.
//!
//! For `impl Calculator { ... }` it generates:
//!
//! * `impl zerorpc::IntoService for Calculator` (so `Server::new(Calculator)`
//!   works), serving every `pub fn`/`pub async fn` under its name, with
//!   positional arguments deserialized by serde (a wrong count or type is a
//!   `TypeError` naming the argument), doc comments as method docs, and
//!   argument names for introspection;
//! * `CalculatorClient`, a typed client with one async method per service
//!   method, and `CalculatorOneWay`, a typed one-way sender.
//!
//! Methods take `&self` and owned, concrete argument types (`String`, not
//! `&str`; no generics). Trailing `Option<T>` arguments may be omitted by
//! the caller, as Python callers expect of arguments with defaults: they are
//! `None`, and introspection shows them with a default of nil.
//!
//! A method returning `Result<T, E>` replies `ERR` with `E`'s type name and
//! message when it fails; `E` is any `std::error::Error`, a
//! `zerorpc::CallError`, or a boxed error (`Box<dyn Error + Send + Sync>`,
//! `Box<dyn Error>`, `anyhow::Error`, `String`), whose name is taken from
//! its `Debug` (`ParseIntError { .. }` → `ParseIntError`, else `Error`) and
//! whose sources become the traceback.
//!
//! Options: `#[zerorpc::service(name = "calc")]` sets the service name
//! (default: the type name, like Python's default); `#[zerorpc(stream)]` on
//! a method marks it as returning a `'static` `Stream` of items
//! (`impl Stream<Item = T> + Send + 'static` or `BoxStream<'static, T>`;
//! items of type `Result<T, E>` end the stream with `ERR` at the first
//! `Err`). Anything else (an unknown option, a stream without
//! `#[zerorpc(stream)]`, a borrowed argument...) is a compile error at the
//! offending tokens that says what to write instead.

//!
//! Modules: `parse` (reading the `impl` block), `types` (what a type's
//! tokens say), `expand` (the generated code).

mod expand;
mod parse;
mod types;

use proc_macro::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::{parse_macro_input, ItemImpl};

use expand::expand;
use parse::*;

/// See the crate documentation.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut item = parse_macro_input!(item as ItemImpl);
    let mut service_name: Option<String> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let s: syn::LitStr = meta.value()?.parse()?;
            service_name = Some(s.value());
            Ok(())
        } else {
            Err(unknown_option(
                &meta.path,
                "#[zerorpc::service(...)]",
                SERVICE_OPTIONS,
                "`name = \"...\"` (the service name)",
            ))
        }
    });
    let expanded = match parser.parse(attr) {
        Ok(()) => expand(&mut item, service_name),
        Err(e) => Err(e),
    };
    match expanded {
        Ok(ts) => ts.into(),
        Err(e) => {
            // The impl block stays (without our helper attributes), so the
            // only errors are ours, not "no method named ..." wherever its
            // methods are used.
            strip_helper_attributes(&mut item);
            let e = e.to_compile_error();
            quote!(#item #e).into()
        }
    }
}
