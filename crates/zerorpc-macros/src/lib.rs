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

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, Lit, Meta, Pat,
    PathArguments, ReturnType, Type, TypeParamBound, Visibility,
};

struct Method {
    ident: syn::Ident,
    name: String,
    doc: String,
    args: Vec<(String, Type)>,
    /// How many arguments a caller must send: the trailing `Option`s after
    /// these may be omitted (they become `None`).
    required: usize,
    is_async: bool,
    kind: Kind,
    /// Where errors about the method's result point.
    ret_span: Span,
}

enum Kind {
    /// Returns a value (or `()`).
    Value(Option<Type>),
    /// Returns `Result<T, E>`.
    Result(Type),
    /// Returns a stream of `T`.
    Stream(Type),
}

/// The options `#[zerorpc(...)]` takes on a method.
const METHOD_OPTIONS: &[&str] = &["stream"];
/// The options `#[zerorpc::service(...)]` takes.
const SERVICE_OPTIONS: &[&str] = &["name"];

/// What a method's `#[zerorpc(...)]` attributes say.
#[derive(Default)]
struct MethodOptions {
    /// `#[zerorpc(stream)]`, where it was written.
    stream: Option<Span>,
    /// The first `#[zerorpc(...)]` attribute, if any.
    attr: Option<syn::Attribute>,
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

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "unknown option `strem` in `#[zerorpc(...)]`; did you mean `stream`? ..."
fn unknown_option(path: &syn::Path, attr: &str, known: &[&str], usage: &str) -> syn::Error {
    let got = quote!(#path).to_string().replace(' ', "");
    let hint = known
        .iter()
        .filter(|k| edit_distance(k, &got) <= 2)
        .min_by_key(|k| edit_distance(k, &got))
        .map(|k| format!("did you mean `{k}`? "))
        .unwrap_or_default();
    syn::Error::new_spanned(
        path,
        format!("unknown option `{got}` in `{attr}`; {hint}the known options are: {usage}"),
    )
}

fn method_options(attrs: &[syn::Attribute]) -> syn::Result<MethodOptions> {
    let mut opts = MethodOptions::default();
    for a in attrs.iter().filter(|a| a.path().is_ident("zerorpc")) {
        opts.attr.get_or_insert_with(|| a.clone());
        if !matches!(a.meta, Meta::List(_)) {
            return Err(syn::Error::new_spanned(
                a,
                "expected `#[zerorpc(option, ...)]`; the known options are: `stream`",
            ));
        }
        a.parse_nested_meta(|meta| {
            if meta.path.is_ident("stream") {
                if !(meta.input.is_empty() || meta.input.peek(syn::Token![,])) {
                    return Err(syn::Error::new(
                        meta.input.span(),
                        "`stream` takes no value: write `#[zerorpc(stream)]`",
                    ));
                }
                opts.stream = Some(meta.path.span());
                Ok(())
            } else if meta.path.is_ident("name") {
                Err(meta.error(
                    "a method is served under its Rust name: `#[zerorpc(...)]` has no `name` \
                     option (`#[zerorpc::service(name = \"...\")]` names the service); the \
                     known options are: `stream`",
                ))
            } else {
                Err(unknown_option(
                    &meta.path,
                    "#[zerorpc(...)]",
                    METHOD_OPTIONS,
                    "`stream` (the method returns a stream of items)",
                ))
            }
        })?;
    }
    Ok(opts)
}

/// Strips `Group`s and parentheses (macro-generated and `(T)` types).
fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => peel(&g.elem),
        Type::Paren(p) => peel(&p.elem),
        other => other,
    }
}

/// `Option<T>` (by its last path segment, as `std::option::Option` too).
fn is_option(ty: &Type) -> bool {
    let Type::Path(p) = peel(ty) else {
        return false;
    };
    p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| {
            s.ident == "Option"
                && matches!(&s.arguments, PathArguments::AngleBracketed(a) if a.args.len() == 1)
        })
}

/// The generic arguments of a `Result<...>` type.
fn result_args(ty: &Type) -> Option<&syn::AngleBracketedGenericArguments> {
    let Type::Path(p) = peel(ty) else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Result" {
        return None;
    }
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => Some(a),
        _ => None,
    }
}

/// `Result<T, E>` → `T`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    match result_args(ty)?.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

/// `Result<T, E>` → `E`, when written out.
fn result_err_type(ty: &Type) -> Option<&Type> {
    match result_args(ty)?.args.iter().nth(1)? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// `Stream<Item = T>` (or `TryStream`) as a trait bound → `T`; `None` when
/// the bound is not a stream; `Some(None)` for a stream without `Item`.
fn stream_bound_item(bound: &TypeParamBound) -> Option<Option<Type>> {
    let TypeParamBound::Trait(t) = bound else {
        return None;
    };
    let seg = t.path.segments.last()?;
    if seg.ident != "Stream" {
        return None;
    }
    let PathArguments::AngleBracketed(a) = &seg.arguments else {
        return Some(None);
    };
    Some(a.args.iter().find_map(|g| match g {
        GenericArgument::AssocType(at) if at.ident == "Item" => Some(at.ty.clone()),
        _ => None,
    }))
}

/// Whether `ty` is written as a stream: `impl Stream<...>`, `BoxStream`,
/// `LocalBoxStream`, `dyn Stream` or `Pin<Box<dyn Stream<...>>>`; with its
/// item type when it says.
fn stream_type(ty: &Type) -> Option<Option<Type>> {
    match peel(ty) {
        Type::ImplTrait(it) => it.bounds.iter().find_map(stream_bound_item),
        Type::TraitObject(to) => to.bounds.iter().find_map(stream_bound_item),
        Type::Path(p) => {
            let seg = p.path.segments.last()?;
            let PathArguments::AngleBracketed(a) = &seg.arguments else {
                return None;
            };
            let mut types = a.args.iter().filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            });
            if seg.ident == "BoxStream" || seg.ident == "LocalBoxStream" {
                Some(types.next().cloned())
            } else if seg.ident == "Pin" || seg.ident == "Box" {
                types.next().and_then(stream_type)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// What a service method's argument or result type may not contain.
enum Unsupported<'a> {
    Reference(&'a syn::TypeReference),
    ImplTrait(&'a syn::TypeImplTrait),
}

/// The first borrowed or `impl Trait` part of `ty`, looking inside generic
/// arguments, tuples, arrays and slices.
fn find_unsupported(ty: &Type) -> Option<Unsupported<'_>> {
    match ty {
        Type::Reference(r) => Some(Unsupported::Reference(r)),
        Type::ImplTrait(i) => Some(Unsupported::ImplTrait(i)),
        Type::Array(a) => find_unsupported(&a.elem),
        Type::Slice(s) => find_unsupported(&s.elem),
        Type::Group(g) => find_unsupported(&g.elem),
        Type::Paren(p) => find_unsupported(&p.elem),
        Type::Tuple(t) => t.elems.iter().find_map(find_unsupported),
        Type::Path(p) => p.path.segments.iter().find_map(|s| match &s.arguments {
            PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
                GenericArgument::Type(t) => find_unsupported(t),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    }
}

/// The owned type to use instead of a reference: `String` for `&str`,
/// `Vec<T>` for `&[T]`, `T` for `&T`.
fn owned_of(r: &syn::TypeReference) -> String {
    match peel(&r.elem) {
        Type::Path(p) if p.path.is_ident("str") => "String".to_owned(),
        Type::Slice(s) => format!("Vec<{}>", type_text(&s.elem)),
        other => type_text(other),
    }
}

fn type_text(t: &dyn quote::ToTokens) -> String {
    quote!(#t)
        .to_string()
        .replace(" :: ", "::")
        .replace("& ", "&")
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("[ ", "[")
        .replace(" ]", "]")
}

const GENERIC_HINT: &str = "each argument is decoded from the request into its declared type, \
     so arguments need concrete types (a `zerorpc::Value` argument takes any value)";

fn check_argument(method: &str, name: &str, ty: &Type) -> syn::Result<()> {
    match find_unsupported(ty) {
        Some(Unsupported::Reference(r)) => Err(syn::Error::new_spanned(
            r,
            format!(
                "argument `{name}` of `{method}` borrows (`{}`): zerorpc decodes each argument \
                 from the request into a value it owns; use `{}` instead",
                type_text(r),
                owned_of(r)
            ),
        )),
        Some(Unsupported::ImplTrait(i)) => Err(syn::Error::new_spanned(
            i,
            format!(
                "argument `{name}` makes `{method}` generic (`{}`): zerorpc service methods \
                 cannot be generic; {GENERIC_HINT}",
                type_text(i)
            ),
        )),
        None => Ok(()),
    }
}

/// Results are decoded by the typed client: they must be owned, concrete.
fn check_result(method: &str, ty: &Type) -> syn::Result<()> {
    match find_unsupported(ty) {
        Some(Unsupported::Reference(r)) => Err(syn::Error::new_spanned(
            r,
            format!(
                "`{method}` returns a borrowed `{}`: the typed client decodes results into \
                 values it owns; return `{}` instead",
                type_text(r),
                owned_of(r)
            ),
        )),
        Some(Unsupported::ImplTrait(i)) => Err(syn::Error::new_spanned(
            i,
            format!(
                "`{method}` returns `{}`: the typed client decodes results into a concrete \
                 type; return one (a stream is `impl Stream<Item = T>` with `#[zerorpc(stream)]`)",
                type_text(i)
            ),
        )),
        None => Ok(()),
    }
}

fn parse_method(f: &ImplItemFn) -> syn::Result<Option<Method>> {
    let opts = method_options(&f.attrs)?;
    let sig = &f.sig;
    if !matches!(f.vis, Visibility::Public(_)) {
        return match opts.attr {
            Some(attr) => Err(syn::Error::new_spanned(
                attr,
                format!(
                    "`{}` is not served (only `pub` methods are), so `#[zerorpc(...)]` on it \
                     would be ignored: make it `pub` or remove the attribute",
                    sig.ident
                ),
            )),
            None => Ok(None),
        };
    }
    let method = sig.ident.to_string();
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new_spanned(
                r,
                format!(
                    "`{method}` takes `{}`: zerorpc service methods take `&self` (one service \
                     value is shared by concurrent calls; use interior mutability such as a \
                     `Mutex` for state)",
                    type_text(r)
                ),
            ))
        }
        _ => {
            return Err(syn::Error::new_spanned(
                &sig.ident,
                format!(
                    "`{method}` has no `self`: every `pub fn` in a `#[zerorpc::service]` block \
                     is served and takes `&self`; move constructors and other associated \
                     functions to a separate `impl` block (or make them private)"
                ),
            ))
        }
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            format!(
                "`{method}` is generic: zerorpc service methods cannot be generic; {GENERIC_HINT}"
            ),
        ));
    }
    if let Some(w) = &sig.generics.where_clause {
        return Err(syn::Error::new_spanned(
            w,
            format!(
                "`{method}` has a `where` clause: zerorpc service methods cannot be generic; \
                 {GENERIC_HINT}"
            ),
        ));
    }
    if let Some(u) = &sig.unsafety {
        return Err(syn::Error::new_spanned(
            u,
            format!("`{method}` is `unsafe`: a remote caller cannot uphold its safety contract"),
        ));
    }
    let mut args = Vec::new();
    for a in inputs {
        let FnArg::Typed(pt) = a else { continue };
        let name = match &*pt.pat {
            Pat::Ident(i) => i.ident.to_string().trim_start_matches('_').to_owned(),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "zerorpc service arguments must be plain names (they are the arguments' \
                     names in introspection)",
                ))
            }
        };
        check_argument(&method, &name, &pt.ty)?;
        args.push((name, (*pt.ty).clone()));
    }
    let required = args
        .iter()
        .rposition(|(_, t)| !is_option(t))
        .map_or(0, |i| i + 1);
    let ret = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, t) => Some((**t).clone()),
    };
    let ret_span = match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, t) => result_err_type(t).unwrap_or(t).span(),
    };
    let stream = ret.as_ref().and_then(|t| Some((t, stream_type(t)?)));
    let kind = match (opts.stream, stream) {
        (Some(_), Some((_, Some(item)))) => {
            let value = result_ok_type(&item).unwrap_or_else(|| item.clone());
            check_result(&method, &value)?;
            Kind::Stream(item)
        }
        (Some(span), _) => {
            return Err(syn::Error::new(
                match &sig.output {
                    ReturnType::Default => span,
                    ReturnType::Type(_, t) => t.span(),
                },
                format!(
                    "`{method}` is `#[zerorpc(stream)]`: it must return \
                     `impl Stream<Item = T> + Send + 'static` or `BoxStream<'static, T>`"
                ),
            ))
        }
        (None, Some((t, _))) => {
            return Err(syn::Error::new_spanned(
                t,
                format!(
                    "`{method}` returns a stream: mark it `#[zerorpc(stream)]` so that its items \
                     are sent as they come (a stream cannot be sent as one value)"
                ),
            ));
        }
        (None, None) => match ret.as_ref().and_then(result_ok_type) {
            Some(ok) => {
                check_result(&method, &ok)?;
                Kind::Result(ok)
            }
            None => {
                if let Some(t) = &ret {
                    check_result(&method, t)?;
                }
                Kind::Value(ret)
            }
        },
    };
    Ok(Some(Method {
        ident: sig.ident.clone(),
        name: method,
        doc: doc_of(&f.attrs),
        args,
        required,
        is_async: sig.asyncness.is_some(),
        kind,
        ret_span,
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

fn is_helper(a: &syn::Attribute) -> bool {
    a.path().is_ident("zerorpc")
}

/// Removes `#[zerorpc(...)]`, which is not a real attribute.
fn strip_helper_attributes(item: &mut ItemImpl) {
    for it in &mut item.items {
        match it {
            ImplItem::Fn(f) => f.attrs.retain(|a| !is_helper(a)),
            ImplItem::Const(c) => c.attrs.retain(|a| !is_helper(a)),
            ImplItem::Type(t) => t.attrs.retain(|a| !is_helper(a)),
            _ => {}
        }
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
    // Every method's errors at once, not one per build.
    let mut methods = Vec::new();
    let mut errors: Option<syn::Error> = None;
    let mut fail = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for it in &item.items {
        match it {
            ImplItem::Fn(f) => match parse_method(f) {
                Ok(Some(m)) => methods.push(m),
                Ok(None) => {}
                Err(e) => fail(e),
            },
            ImplItem::Const(syn::ImplItemConst { attrs, .. })
            | ImplItem::Type(syn::ImplItemType { attrs, .. }) => {
                if let Some(a) = attrs.iter().find(|a| is_helper(a)) {
                    fail(syn::Error::new_spanned(
                        a,
                        "`#[zerorpc(...)]` goes on service methods",
                    ));
                }
            }
            _ => {}
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }
    strip_helper_attributes(item);

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

/// The expression that turns the method's error `__e` into a `CallError`,
/// whatever its type (see `zerorpc::macro_support`); a type it cannot send
/// is reported at `span`.
fn convert_error(span: Span) -> TokenStream2 {
    let convert = quote_spanned! {span=>
        (&&&&::zerorpc::macro_support::ErrorKind(&__e)).zerorpc_error_kind().convert(__e)
    };
    quote! {
        {
            #[allow(unused_imports)]
            use ::zerorpc::macro_support::{
                ViaCallError as _, ViaLocalDyn as _, ViaSendDyn as _, ViaUnsupported as _,
            };
            #convert
        }
    }
}

/// The span of the type a method's results are serialized from.
fn value_span(m: &Method) -> Span {
    match &m.kind {
        Kind::Value(Some(t)) | Kind::Result(t) => t.span(),
        Kind::Stream(item) => result_ok_type(item).unwrap_or_else(|| item.clone()).span(),
        Kind::Value(None) => m.ident.span(),
    }
}

/// "takes 2 positional argument(s) (a, b)", "takes from 1 to 2 positional
/// arguments (a, b=None)".
fn takes(m: &Method) -> String {
    let names: Vec<String> = m
        .args
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            if i < m.required {
                n.clone()
            } else {
                format!("{n}=None")
            }
        })
        .collect();
    let nargs = m.args.len();
    if m.required == nargs {
        format!("{nargs} positional argument(s) ({})", names.join(", "))
    } else {
        format!(
            "from {} to {nargs} positional arguments ({})",
            m.required,
            names.join(", ")
        )
    }
}

fn register(m: &Method) -> TokenStream2 {
    let ident = &m.ident;
    let name = &m.name;
    let doc = &m.doc;
    let nargs = m.args.len();
    let required = m.required;
    let arg_names: Vec<&str> = m.args.iter().map(|(n, _)| n.as_str()).collect();
    let arg_idents: Vec<syn::Ident> = (0..nargs).map(|i| format_ident!("__a{}", i)).collect();
    let arg_types: Vec<&Type> = m.args.iter().map(|(_, t)| t).collect();
    // A type that does not deserialize is reported at the argument's type.
    let arg_fns: Vec<TokenStream2> = arg_types
        .iter()
        .map(|t| quote_spanned!(t.span()=> ::zerorpc::macro_support::decode_arg::<#t>))
        .collect();
    let wrong_count = if required == nargs {
        quote! { __args.len() != #nargs }
    } else if required == 0 {
        quote! { __args.len() > #nargs }
    } else {
        quote! { __args.len() < #required || __args.len() > #nargs }
    };
    let takes = format!("{name}() takes {}", takes(m));
    let parse = quote! {
        if #wrong_count {
            return Err(::zerorpc::CallError::bad_args(::std::format!(
                "{} but {} were given", #takes, __args.len()
            )));
        }
        #[allow(unused_mut, unused_variables)]
        let mut __it = __args.into_iter();
        #(
            // An omitted trailing `Option` argument is `None`.
            let #arg_idents: #arg_types = match #arg_fns(
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
    let value_span = value_span(m);
    let to_value = |v: &str| {
        let v = syn::Ident::new(v, value_span);
        quote_spanned!(value_span=> ::zerorpc::macro_support::encode_result(&#v))
    };
    let (to_value_r, to_value_v) = (to_value("__r"), to_value("__v"));
    let convert = convert_error(m.ret_span);
    let body = match &m.kind {
        Kind::Value(_) => quote! {
            let __r = #call;
            #to_value_r.map(::zerorpc::Response::Value)
        },
        Kind::Result(_) => quote! {
            match #call {
                Ok(__v) => #to_value_v.map(::zerorpc::Response::Value),
                Err(__e) => Err(#convert),
            }
        },
        Kind::Stream(item) if result_ok_type(item).is_some() => quote! {
            let __s = ::zerorpc::futures::StreamExt::map(#call, |__r| match __r {
                Ok(__v) => Ok(__v),
                Err(__e) => Err(#convert),
            });
            Ok(::zerorpc::Response::Stream(::zerorpc::service::serialize_result_stream(__s)))
        },
        Kind::Stream(_) => quote! {
            let __s = #call;
            Ok(::zerorpc::Response::Stream(::zerorpc::service::serialize_stream(__s)))
        },
    };
    let defaults = (required < nargs).then(|| {
        quote! {
            for __arg in info.args.iter_mut().skip(#required) {
                __arg.default = ::std::option::Option::Some(::zerorpc::Value::Nil);
            }
        }
    });
    quote! {
        {
            let this = ::std::sync::Arc::clone(&this);
            let mut info = ::zerorpc::MethodInfo::new(#name, #doc, &[#(#arg_names),*]);
            info.streaming = #streaming;
            #defaults
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
            // A type that does not serialize is reported at its argument.
            let spanned = syn::Ident::new(n, t.span());
            let value = quote_spanned!(t.span()=> ::zerorpc::macro_support::encode_arg(&#spanned));
            (quote! { #id: #t }, quote! { #value? })
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
            // A type that does not deserialize is reported at the result.
            let decode =
                quote_spanned!(value_span(m)=> ::zerorpc::macro_support::decode_result::<#out>);
            quote! {
                #[doc = #doc]
                pub async fn #ident(&self, #(#params),*) -> ::std::result::Result<#out, ::zerorpc::Error> {
                    let __args = ::std::vec![#(#values),*];
                    let __v = self.inner.call(#name, __args).await?;
                    #decode(__v)
                }
            }
        }
    }
}
