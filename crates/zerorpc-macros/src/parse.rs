//! Reading the `impl` block: each `pub` method's name, doc, arguments,
//! result kind and `#[zerorpc(...)]` options, with errors that say what
//! to write instead.

use proc_macro2::Span;
use quote::quote;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, Lit, Meta, Pat, ReturnType, Type, Visibility};

use crate::types::*;

pub(crate) struct Method {
    pub(crate) ident: syn::Ident,
    pub(crate) name: String,
    pub(crate) doc: String,
    pub(crate) args: Vec<(String, Type)>,
    /// How many arguments a caller must send: the trailing `Option`s after
    /// these may be omitted (they become `None`).
    pub(crate) required: usize,
    pub(crate) is_async: bool,
    pub(crate) kind: Kind,
    /// Where errors about the method's result point.
    pub(crate) ret_span: Span,
}

pub(crate) enum Kind {
    /// Returns a value (or `()`).
    Value(Option<Type>),
    /// Returns `Result<T, E>`.
    Result(Type),
    /// Returns a stream of `T`.
    Stream(Type),
}

/// The options `#[zerorpc(...)]` takes on a method.
pub(crate) const METHOD_OPTIONS: &[&str] = &["stream"];
/// The options `#[zerorpc::service(...)]` takes.
pub(crate) const SERVICE_OPTIONS: &[&str] = &["name"];

/// What a method's `#[zerorpc(...)]` attributes say.
#[derive(Default)]
pub(crate) struct MethodOptions {
    /// `#[zerorpc(stream)]`, where it was written.
    pub(crate) stream: Option<Span>,
    /// The first `#[zerorpc(...)]` attribute, if any.
    pub(crate) attr: Option<syn::Attribute>,
}

pub(crate) fn doc_of(attrs: &[syn::Attribute]) -> String {
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
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
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
pub(crate) fn unknown_option(
    path: &syn::Path,
    attr: &str,
    known: &[&str],
    usage: &str,
) -> syn::Error {
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

pub(crate) fn method_options(attrs: &[syn::Attribute]) -> syn::Result<MethodOptions> {
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

pub(crate) fn parse_method(f: &ImplItemFn) -> syn::Result<Option<Method>> {
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

pub(crate) fn is_helper(a: &syn::Attribute) -> bool {
    a.path().is_ident("zerorpc")
}

/// Removes `#[zerorpc(...)]`, which is not a real attribute.
pub(crate) fn strip_helper_attributes(item: &mut ItemImpl) {
    for it in &mut item.items {
        match it {
            ImplItem::Fn(f) => f.attrs.retain(|a| !is_helper(a)),
            ImplItem::Const(c) => c.attrs.retain(|a| !is_helper(a)),
            ImplItem::Type(t) => t.attrs.retain(|a| !is_helper(a)),
            _ => {}
        }
    }
}
