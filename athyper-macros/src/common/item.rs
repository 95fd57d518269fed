//! Describing what an attribute was put on, for messages.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Item, Type};

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

/// A type as a compact string: `Client<T>`, `billing::Client`, `&str`.
pub(crate) fn type_text(ty: &Type) -> String {
    compact(&ty.to_token_stream().to_string())
}

/// Token text with the spaces `to_string` puts between every token
/// removed, except where they separate two words (`dyn Trait`, `impl
/// Trait`, `&'a str`) or follow a comma.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let before = i.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i + 1).copied();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            if (word(before) && word(after)) || before == Some(',') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out
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
