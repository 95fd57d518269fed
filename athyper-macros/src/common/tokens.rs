//! Token helpers shared by the expansions.

use proc_macro2::{Group, Span, TokenStream, TokenTree};

/// `tokens` with every span set to `span`, so that an error about them
/// points there.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            }
            tree.set_span(span);
            tree
        })
        .collect()
}

/// `Duration::from_millis(..)` through the runtime's re-export, for a
/// duration the model has checked to be whole milliseconds fitting a `u64`.
pub(crate) fn millis(private: &TokenStream, duration: std::time::Duration) -> TokenStream {
    let millis = proc_macro2::Literal::u64_unsuffixed(
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
    );
    quote::quote!(#private::Duration::from_millis(#millis))
}
