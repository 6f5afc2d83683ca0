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
//!   argument names for introspection. A method returning `Result<T, E>`
//!   replies `ERR` with `E`'s type name and message; `#[zerorpc(stream)]`
//!   marks a method returning a `'static` `Stream` of items (items of type
//!   `Result<T, E>` end the stream with `ERR` at the first `Err`);
//! * `CalculatorClient`, a typed client with one async method per service
//!   method.
//!
//! Options: `#[zerorpc::service(name = "calc")]` sets the service name
//! (default: the type name, like Python's default).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::{
    parse_macro_input, FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, Lit, Meta, Pat,
    PathArguments, ReturnType, Type, TypeParamBound, Visibility,
};

struct Method {
    ident: syn::Ident,
    name: String,
    doc: String,
    args: Vec<(String, Type)>,
    is_async: bool,
    kind: Kind,
}

enum Kind {
    /// Returns a value (or `()`).
    Value(Option<Type>),
    /// Returns `Result<T, E>`.
    Result(Type),
    /// Returns a stream of `T`.
    Stream(Type),
}

fn doc_of(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).to_owned())
        .collect();
    lines.join("\n").trim().to_owned()
}

fn has_stream_attr(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("zerorpc")
            && a.parse_args::<syn::Ident>()
                .map(|i| i == "stream")
                .unwrap_or(false)
    })
}

/// `Result<T, E>` → `T`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(a) = &seg.arguments else {
        return None;
    };
    match a.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

/// `impl Stream<Item = T> + ...` (or `BoxStream<'_, T>`) → `T`.
fn stream_item_type(ty: &Type) -> Option<Type> {
    match ty {
        Type::ImplTrait(it) => it.bounds.iter().find_map(|b| match b {
            TypeParamBound::Trait(t) => {
                let seg = t.path.segments.last()?;
                let PathArguments::AngleBracketed(a) = &seg.arguments else {
                    return None;
                };
                a.args.iter().find_map(|g| match g {
                    GenericArgument::AssocType(at) if at.ident == "Item" => Some(at.ty.clone()),
                    _ => None,
                })
            }
            _ => None,
        }),
        Type::Path(p) => {
            let seg = p.path.segments.last()?;
            if seg.ident != "BoxStream" {
                return None;
            }
            let PathArguments::AngleBracketed(a) = &seg.arguments else {
                return None;
            };
            a.args.iter().find_map(|g| match g {
                GenericArgument::Type(t) => Some(t.clone()),
                _ => None,
            })
        }
        _ => None,
    }
}

fn parse_method(f: &ImplItemFn) -> syn::Result<Option<Method>> {
    if !matches!(f.vis, Visibility::Public(_)) {
        return Ok(None);
    }
    let sig = &f.sig;
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        _ => {
            return Err(syn::Error::new_spanned(
                sig,
                "zerorpc service methods take `&self` (services are shared between calls)",
            ))
        }
    }
    let mut args = Vec::new();
    for a in inputs {
        let FnArg::Typed(pt) = a else { continue };
        let name = match &*pt.pat {
            Pat::Ident(i) => i.ident.to_string().trim_start_matches('_').to_owned(),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "zerorpc service arguments must be plain names",
                ))
            }
        };
        args.push((name, (*pt.ty).clone()));
    }
    let ret = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, t) => Some((**t).clone()),
    };
    let kind = if has_stream_attr(&f.attrs) {
        let item = ret
            .as_ref()
            .and_then(stream_item_type)
            .ok_or_else(|| {
                syn::Error::new_spanned(
                    &sig.output,
                    "#[zerorpc(stream)] methods return `impl Stream<Item = T>` or `BoxStream<'static, T>`",
                )
            })?;
        Kind::Stream(item)
    } else if let Some(ok) = ret.as_ref().and_then(result_ok_type) {
        Kind::Result(ok)
    } else {
        Kind::Value(ret)
    };
    Ok(Some(Method {
        ident: sig.ident.clone(),
        name: sig.ident.to_string(),
        doc: doc_of(&f.attrs),
        args,
        is_async: sig.asyncness.is_some(),
        kind,
    }))
}

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
            Err(meta.error("unknown option; expected `name = \"...\"`"))
        }
    });
    if let Err(e) = parser.parse(attr) {
        return e.to_compile_error().into();
    }
    match expand(&mut item, service_name) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(item: &mut ItemImpl, service_name: Option<String>) -> syn::Result<TokenStream2> {
    if item.trait_.is_some() || !item.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.self_ty,
            "#[zerorpc::service] goes on a plain inherent impl block (no traits, no generics)",
        ));
    }
    let self_ty = item.self_ty.clone();
    let type_ident = match &*self_ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.clone())
            .ok_or_else(|| syn::Error::new_spanned(&self_ty, "expected a type name"))?,
        other => return Err(syn::Error::new_spanned(other, "expected a type name")),
    };
    let name = service_name.unwrap_or_else(|| type_ident.to_string());
    let mut methods = Vec::new();
    for it in &mut item.items {
        if let ImplItem::Fn(f) = it {
            if let Some(m) = parse_method(f)? {
                methods.push(m);
            }
            // Our helper attribute is not a real attribute: remove it.
            f.attrs.retain(|a| !a.path().is_ident("zerorpc"));
        }
    }

    let registrations = methods.iter().map(register);
    let client_ident = format_ident!("{}Client", type_ident);
    let client_methods = methods.iter().map(client_method);
    let client_doc =
        format!("Typed client for the `{name}` service (generated by `#[zerorpc::service]`).");
    let oneway_ident = format_ident!("{}OneWay", type_ident);
    let oneway_methods = methods.iter().filter_map(oneway_method);
    let oneway_doc = format!(
        "Typed one-way sender for the `{name}` service over a `Pusher` or a `Publisher` \
         (generated by `#[zerorpc::service]`): each method sends its event and returns \
         without a result. Streaming methods have none."
    );

    Ok(quote! {
        #item

        impl ::zerorpc::IntoService for #self_ty {
            type Service = ::zerorpc::DynamicService;
            fn into_service(self) -> ::zerorpc::DynamicService {
                let this = ::std::sync::Arc::new(self);
                let mut svc = ::zerorpc::DynamicService::new(#name);
                #(#registrations)*
                svc
            }
        }

        #[doc = #client_doc]
        #[derive(Clone, Debug)]
        pub struct #client_ident {
            inner: ::zerorpc::Client,
        }

        impl #client_ident {
            /// Wraps a connected client.
            pub fn new(inner: ::zerorpc::Client) -> Self {
                Self { inner }
            }

            /// Connects to `endpoint`.
            pub async fn connect(endpoint: &str) -> ::std::result::Result<Self, ::zerorpc::Error> {
                Ok(Self { inner: ::zerorpc::Client::connect(endpoint).await? })
            }

            /// The underlying dynamic client.
            pub fn client(&self) -> &::zerorpc::Client {
                &self.inner
            }

            #(#client_methods)*
        }

        #[doc = #oneway_doc]
        #[derive(Debug)]
        pub struct #oneway_ident<S: ::zerorpc::OneWay> {
            inner: S,
        }

        impl<S: ::zerorpc::OneWay> #oneway_ident<S> {
            /// Wraps a `Pusher` or a `Publisher`.
            pub fn new(inner: S) -> Self {
                Self { inner }
            }

            /// The underlying sender.
            pub fn sender(&self) -> &S {
                &self.inner
            }

            #(#oneway_methods)*
        }
    })
}

fn register(m: &Method) -> TokenStream2 {
    let ident = &m.ident;
    let name = &m.name;
    let doc = &m.doc;
    let nargs = m.args.len();
    let arg_names: Vec<&str> = m.args.iter().map(|(n, _)| n.as_str()).collect();
    let arg_idents: Vec<syn::Ident> = (0..nargs).map(|i| format_ident!("__a{}", i)).collect();
    let arg_types: Vec<&Type> = m.args.iter().map(|(_, t)| t).collect();
    let parse = quote! {
        if __args.len() != #nargs {
            let __names: &[&str] = &[#(#arg_names),*];
            return Err(::zerorpc::CallError::bad_args(::std::format!(
                "{}() takes {} positional argument(s) ({}) but {} were given",
                #name, #nargs, __names.join(", "), __args.len()
            )));
        }
        #[allow(unused_mut, unused_variables)]
        let mut __it = __args.into_iter();
        #(
            let #arg_idents: #arg_types = match ::zerorpc::service::arg(
                #name, #arg_names, __it.next().unwrap_or(::zerorpc::Value::Nil)) {
                ::std::result::Result::Ok(v) => v,
                ::std::result::Result::Err(e) => return ::std::result::Result::Err(e),
            };
        )*
    };
    let call = if m.is_async {
        quote! { __this.#ident(#(#arg_idents),*).await }
    } else {
        quote! { __this.#ident(#(#arg_idents),*) }
    };
    let streaming = matches!(m.kind, Kind::Stream(_));
    let body = match &m.kind {
        Kind::Value(_) => quote! {
            let __r = #call;
            ::zerorpc::service::to_value(&__r).map(::zerorpc::Response::Value)
        },
        Kind::Result(_) => quote! {
            match #call {
                Ok(__v) => ::zerorpc::service::to_value(&__v).map(::zerorpc::Response::Value),
                Err(__e) => Err(::zerorpc::IntoCallError::into_call_error(__e)),
            }
        },
        Kind::Stream(item) if result_ok_type(item).is_some() => quote! {
            let __s = #call;
            Ok(::zerorpc::Response::Stream(::zerorpc::service::serialize_result_stream(__s)))
        },
        Kind::Stream(_) => quote! {
            let __s = #call;
            Ok(::zerorpc::Response::Stream(::zerorpc::service::serialize_stream(__s)))
        },
    };
    quote! {
        {
            let this = ::std::sync::Arc::clone(&this);
            let mut info = ::zerorpc::MethodInfo::new(#name, #doc, &[#(#arg_names),*]);
            info.streaming = #streaming;
            svc.register(info, ::std::sync::Arc::new(move |__args: ::std::vec::Vec<::zerorpc::Value>, _ctx: ::zerorpc::CallContext| {
                let __this = ::std::sync::Arc::clone(&this);
                ::zerorpc::service::boxed(async move {
                    #parse
                    #body
                })
            }));
        }
    }
}

/// A typed method's parameters (`name: Type`) and the expressions that
/// turn them into the call's argument values.
fn params_and_values(m: &Method) -> (Vec<TokenStream2>, Vec<TokenStream2>) {
    m.args
        .iter()
        .map(|(n, t)| {
            let id = syn::Ident::new(n, Span::call_site());
            (
                quote! { #id: #t },
                quote! { ::zerorpc::service::to_value(&#id).map_err(|e| ::zerorpc::Error::Serialization(e.message))? },
            )
        })
        .unzip()
}

fn oneway_method(m: &Method) -> Option<TokenStream2> {
    if matches!(m.kind, Kind::Stream(_)) {
        return None;
    }
    let ident = &m.ident;
    let name = &m.name;
    let doc = format!("Sends `{name}` one way (no result).");
    let (params, values) = params_and_values(m);
    Some(quote! {
        #[doc = #doc]
        pub async fn #ident(&self, #(#params),*) -> ::std::result::Result<(), ::zerorpc::Error> {
            let __args = ::std::vec![#(#values),*];
            ::zerorpc::OneWay::send_event(&self.inner, #name, __args).await
        }
    })
}

fn client_method(m: &Method) -> TokenStream2 {
    let ident = &m.ident;
    let name = &m.name;
    let doc = if m.doc.is_empty() {
        format!("Calls `{name}`.")
    } else {
        m.doc.clone()
    };
    let (params, values) = params_and_values(m);
    match &m.kind {
        Kind::Stream(item) => {
            // (a stream of `Result<T, E>` yields `T`s, its errors as `Err`)
            let item = result_ok_type(item).unwrap_or_else(|| item.clone());
            quote! {
                #[doc = #doc]
                pub async fn #ident(&self, #(#params),*) -> ::std::result::Result<
                    impl ::zerorpc::futures::Stream<Item = ::std::result::Result<#item, ::zerorpc::Error>> + Send + 'static,
                    ::zerorpc::Error,
                > {
                    let __args = ::std::vec![#(#values),*];
                    let __s = self.inner.call_stream(#name, __args).await?;
                    Ok(::zerorpc::service::typed_stream::<#item, _>(__s))
                }
            }
        }
        kind => {
            let out: TokenStream2 = match kind {
                Kind::Value(Some(t)) | Kind::Result(t) => quote! { #t },
                _ => quote! { () },
            };
            quote! {
                #[doc = #doc]
                pub async fn #ident(&self, #(#params),*) -> ::std::result::Result<#out, ::zerorpc::Error> {
                    let __args = ::std::vec![#(#values),*];
                    let __v = self.inner.call(#name, __args).await?;
                    ::zerorpc::service::from_value::<#out>(__v)
                }
            }
        }
    }
}
