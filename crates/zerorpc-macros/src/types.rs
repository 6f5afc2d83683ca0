//! What the macro tells from a type's tokens: `Option`, `Result`,
//! streams, and the argument and result types it refuses.

use quote::quote;
use syn::{GenericArgument, PathArguments, Type, TypeParamBound};

/// Strips `Group`s and parentheses (macro-generated and `(T)` types).
pub(crate) fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => peel(&g.elem),
        Type::Paren(p) => peel(&p.elem),
        other => other,
    }
}

/// `Option<T>` (by its last path segment, as `std::option::Option` too).
pub(crate) fn is_option(ty: &Type) -> bool {
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
pub(crate) fn result_args(ty: &Type) -> Option<&syn::AngleBracketedGenericArguments> {
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
pub(crate) fn result_ok_type(ty: &Type) -> Option<Type> {
    match result_args(ty)?.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

/// `Result<T, E>` → `E`, when written out.
pub(crate) fn result_err_type(ty: &Type) -> Option<&Type> {
    match result_args(ty)?.args.iter().nth(1)? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// `Stream<Item = T>` (or `TryStream`) as a trait bound → `T`; `None` when
/// the bound is not a stream; `Some(None)` for a stream without `Item`.
pub(crate) fn stream_bound_item(bound: &TypeParamBound) -> Option<Option<Type>> {
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
pub(crate) fn stream_type(ty: &Type) -> Option<Option<Type>> {
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
pub(crate) enum Unsupported<'a> {
    Reference(&'a syn::TypeReference),
    ImplTrait(&'a syn::TypeImplTrait),
}

/// The first borrowed or `impl Trait` part of `ty`, looking inside generic
/// arguments, tuples, arrays and slices.
pub(crate) fn find_unsupported(ty: &Type) -> Option<Unsupported<'_>> {
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
pub(crate) fn owned_of(r: &syn::TypeReference) -> String {
    match peel(&r.elem) {
        Type::Path(p) if p.path.is_ident("str") => "String".to_owned(),
        Type::Slice(s) => format!("Vec<{}>", type_text(&s.elem)),
        other => type_text(other),
    }
}

pub(crate) fn type_text(t: &dyn quote::ToTokens) -> String {
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

pub(crate) const GENERIC_HINT: &str =
    "each argument is decoded from the request into its declared type, \
     so arguments need concrete types (a `zerorpc::Value` argument takes any value)";

pub(crate) fn check_argument(method: &str, name: &str, ty: &Type) -> syn::Result<()> {
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
pub(crate) fn check_result(method: &str, ty: &Type) -> syn::Result<()> {
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
