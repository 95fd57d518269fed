//! `#[job]`: an `async fn` becomes a typed handle plus a registered
//! descriptor. Three stages: [`args`] (syntax), [`model`] (meaning),
//! [`expand`] (code).

mod args;
mod expand;
mod model;

use proc_macro2::TokenStream;

use self::args::JobArgs;
use self::model::Job;
use crate::common::Errors;

pub(crate) fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    let args = syn::parse2::<JobArgs>(args).unwrap_or_else(|error| {
        errors.push(error);
        JobArgs::default()
    });
    let job = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(parsed) => Job::new(args, parsed),
        Err(error) => {
            errors.push(error);
            return fallback(item, &errors);
        }
    };
    match job {
        Ok(job) if errors.is_empty() => expand::expand(job),
        Ok(_) => fallback(item, &errors),
        Err(found) => {
            errors.append(found);
            fallback(item, &errors)
        }
    }
}

/// The item as written, then the errors: the function stays visible to the
/// rest of the crate and to IDEs while the attribute is being fixed.
fn fallback(item: TokenStream, errors: &Errors) -> TokenStream {
    let mut tokens = item;
    tokens.extend(errors.to_compile_errors());
    tokens
}
