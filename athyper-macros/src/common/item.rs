//! Describing what an attribute was put on, for messages.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Attribute, GenericArgument, Item, Lifetime, PathArguments, ReturnType, Type, TypePath};

/// What `item` is, and its tokens up to its name: enough to point at it
/// without underlining a whole struct.
pub(crate) fn describe(item: &Item) -> (&'static str, TokenStream) {
    fn head(keyword: &dyn ToTokens, name: &dyn ToTokens) -> TokenStream {
        quote!(#keyword #name)
    }
    match item {
        Item::Fn(i) => ("a function", head(&i.sig.fn_token, &i.sig.ident)),
        Item::Struct(i) => ("a struct", head(&i.struct_token, &i.ident)),
        Item::Enum(i) => ("an enum", head(&i.enum_token, &i.ident)),
        Item::Union(i) => ("a union", head(&i.union_token, &i.ident)),
        Item::Const(i) => ("a constant", head(&i.const_token, &i.ident)),
        Item::Static(i) => ("a static", head(&i.static_token, &i.ident)),
        Item::Trait(i) => ("a trait", head(&i.trait_token, &i.ident)),
        Item::Type(i) => ("a type alias", head(&i.type_token, &i.ident)),
        Item::Mod(i) => ("a module", head(&i.mod_token, &i.ident)),
        Item::Impl(i) => ("an impl block", head(&i.impl_token, &i.self_ty)),
        Item::Use(i) => ("a `use` declaration", i.to_token_stream()),
        Item::ExternCrate(i) => ("an `extern crate`", i.to_token_stream()),
        Item::ForeignMod(i) => ("an `extern` block", i.abi.to_token_stream()),
        Item::Macro(i) => ("a macro invocation", i.mac.path.to_token_stream()),
        _ => ("this item", item.to_token_stream()),
    }
}

/// Whether `attr` is the attribute `name` of this crate, by any path:
/// `#[job]`, `#[athyper::job]`, `#[sdk::athyper::job]`.
pub(crate) fn is_attribute(attr: &Attribute, name: &str) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == name)
}

/// A type as a compact string: `Client<T>`, `billing::Client`, `&str`.
pub(crate) fn type_text(ty: &Type) -> String {
    compact(&ty.to_token_stream().to_string())
}

/// Token text with the spaces `to_string` puts between every token
/// removed, except where they separate two words (`dyn Trait`, `impl
/// Trait`, `&'a str`), follow a lifetime (`&'a [u8]`) or a comma.
pub(crate) fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let before = i.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i + 1).copied();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            // `&'a [u8]`: a lifetime keeps its space before a type.
            let after_lifetime = word(before)
                && chars[..i]
                    .iter()
                    .rev()
                    .find(|&&c| !(c.is_alphanumeric() || c == '_'))
                    == Some(&'\'')
                && !matches!(after, Some('>' | ',' | ')' | ']'));
            if (word(before) && word(after)) || before == Some(',') || after_lifetime {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A type, or a lifetime written inside one.
pub(crate) enum Part<'a> {
    Type(&'a Type),
    Lifetime(&'a Lifetime),
}

/// The first part of `ty` (itself included, outermost first) for which
/// `found` holds: the types and lifetimes in its generic arguments, tuples,
/// arrays, slices, pointers and references.
pub(crate) fn find_part<'a, T>(
    ty: &'a Type,
    found: &mut impl FnMut(Part<'a>) -> Option<T>,
) -> Option<T> {
    if let Some(hit) = found(Part::Type(ty)) {
        return Some(hit);
    }
    let mut inner = |ty: &'a Type| find_part(ty, found);
    match ty {
        Type::Array(t) => inner(&t.elem),
        Type::Group(t) => inner(&t.elem),
        Type::Paren(t) => inner(&t.elem),
        Type::Ptr(t) => inner(&t.elem),
        Type::Slice(t) => inner(&t.elem),
        Type::Reference(t) => {
            if let Some(lifetime) = &t.lifetime
                && let Some(hit) = found(Part::Lifetime(lifetime))
            {
                return Some(hit);
            }
            find_part(&t.elem, found)
        }
        Type::Tuple(t) => t.elems.iter().find_map(|elem| find_part(elem, found)),
        Type::Path(TypePath { qself, path }) => {
            if let Some(qself) = qself
                && let Some(hit) = find_part(&qself.ty, found)
            {
                return Some(hit);
            }
            path.segments
                .iter()
                .find_map(|segment| match &segment.arguments {
                    PathArguments::None => None,
                    PathArguments::AngleBracketed(args) => {
                        args.args.iter().find_map(|arg| match arg {
                            GenericArgument::Type(ty) => find_part(ty, found),
                            GenericArgument::Lifetime(lifetime) => found(Part::Lifetime(lifetime)),
                            GenericArgument::AssocType(assoc) => find_part(&assoc.ty, found),
                            _ => None,
                        })
                    }
                    PathArguments::Parenthesized(args) => args
                        .inputs
                        .iter()
                        .find_map(|ty| find_part(ty, found))
                        .or_else(|| match &args.output {
                            ReturnType::Type(_, ty) => find_part(ty, found),
                            ReturnType::Default => None,
                        }),
                })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    #[test]
    fn type_text_is_compact() {
        let ty = |t: Type| type_text(&t);
        assert_eq!(ty(parse_quote!(Billing)), "Billing");
        assert_eq!(ty(parse_quote!(crate::Client<T, U>)), "crate::Client<T, U>");
        assert_eq!(ty(parse_quote!(Box<dyn Send>)), "Box<dyn Send>");
        assert_eq!(ty(parse_quote!(Vec<&str>)), "Vec<&str>");
    }

    #[test]
    fn finds_parts_at_any_depth() {
        let reference = |ty: Type| {
            find_part(&ty, &mut |part| match part {
                Part::Type(Type::Reference(r)) => Some(type_text(&Type::Reference(r.clone()))),
                _ => None,
            })
        };
        assert_eq!(reference(parse_quote!(String)), None);
        assert_eq!(reference(parse_quote!(Vec<&str>)).as_deref(), Some("&str"));
        assert_eq!(
            reference(parse_quote!((u8, Option<[&'a [u8]; 2]>))).as_deref(),
            Some("&'a [u8]")
        );
        assert_eq!(
            reference(parse_quote!(HashMap<String, Box<dyn Fn(&u8)>>)),
            None,
            "trait objects are not looked into"
        );
        let lifetime = |ty: Type| {
            find_part(&ty, &mut |part| match part {
                Part::Lifetime(l) => Some(l.ident.to_string()),
                _ => None,
            })
        };
        assert_eq!(lifetime(parse_quote!(Cow<'_, str>)).as_deref(), Some("_"));
    }

    #[test]
    fn describes_the_item_by_its_head() {
        let (what, head) = describe(&parse_quote!(
            struct Billing {
                field: u32,
            }
        ));
        assert_eq!(
            (what, head.to_string().as_str()),
            ("a struct", "struct Billing")
        );
        let (what, _) = describe(&parse_quote!(impl Billing {}));
        assert_eq!(what, "an impl block");
    }
}
