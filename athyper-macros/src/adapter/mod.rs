//! `#[adapter]`: the async methods of an `impl` block called through the
//! instance's protection (span → breaker → retry → timeout → call), plus a
//! registered descriptor and a health check. Three stages: [`args`]
//! (syntax), [`model`] (meaning), [`expand`] (code).

mod args;
mod expand;
mod model;

use proc_macro2::TokenStream;
use quote::ToTokens;

use self::args::AdapterArgs;
use self::model::Adapter;
use crate::common::Errors;

pub(crate) fn adapter(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    let args = syn::parse2::<AdapterArgs>(args).unwrap_or_else(|error| {
        errors.push(error);
        AdapterArgs::default()
    });
    let parsed = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(error) => {
            errors.push(error);
            return fallback(item, &errors);
        }
    };
    match Adapter::new(args, parsed.clone()) {
        Ok(adapter) if errors.is_empty() => expand::expand(adapter),
        Ok(_) => fallback(without_marks(parsed), &errors),
        Err(found) => {
            errors.append(found);
            fallback(without_marks(parsed), &errors)
        }
    }
}

/// The item as written (minus the `#[adapter(skip)]` marks on its methods,
/// which mean nothing alone), then the errors: the type's methods stay
/// visible to the rest of the crate and to IDEs while the attribute is
/// being fixed.
fn fallback(item: TokenStream, errors: &Errors) -> TokenStream {
    let mut tokens = item;
    tokens.extend(errors.to_compile_errors());
    tokens
}

fn without_marks(mut item: syn::Item) -> TokenStream {
    if let syn::Item::Impl(block) = &mut item {
        for member in &mut block.items {
            if let syn::ImplItem::Fn(method) = member {
                method.attrs.retain(|attr| !model::is_adapter_attr(attr));
            }
        }
    }
    item.into_token_stream()
}
