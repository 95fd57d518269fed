//! The code a valid `#[job]` becomes. Nothing here can fail: the model
//! checked everything.
//!
//! Generated code reaches the runtime only through `<crate>::__private` and
//! core only through `::core`, so that names in the user's scope (a local
//! `Result`, a module called `core`) cannot change what it means.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Visibility};

use super::model::{BackoffKind, Handler, Jitter, Job, Options, Priority};
use crate::common::{millis, respan};

pub(crate) fn expand(job: Job) -> TokenStream {
    let Job {
        krate,
        name,
        queue,
        options,
        handler,
    } = job;
    let Handler {
        item,
        docs,
        cfgs,
        attrs,
        context,
        payload,
        output,
    } = handler;
    let private = quote!(#krate::__private);
    let vis = &item.vis;
    let ident = &item.sig.ident;
    // At the user's name, so that what rustc says about the handler's body
    // (a future that is not `Send`, say) points at the user's function.
    let hidden = format_ident!("__athyper_job_{}", ident.unraw(), span = ident.span());

    let mut hidden_fn = item.clone();
    hidden_fn.sig.ident = hidden.clone();
    hidden_fn.vis = Visibility::Inherited;

    // Each check is spanned at the user's type, so that a failure points at
    // the argument or return type to fix, with the runtime's message.
    let checks = [
        quote_spanned!(context.span()=> #private::assert_context::<#context>();),
        quote_spanned!(payload.span()=> #private::assert_payload::<#payload>();),
        quote_spanned!(output.span()=> #private::assert_result::<#output>();),
    ];
    // The context reaches the handler through the same trait
    // `assert_context` checks, at the same span: a wrong first-argument
    // type is then one failed bound, which rustc reports once.
    let ctx_arg = quote_spanned!(context.span()=>
        <#context as #private::IsJobContext>::from_context(__athyper_ctx)
    );
    // Spanned at the user's function, so that a handler whose future is not
    // `Send` is reported there rather than at the attribute.
    let private_at_fn = respan(private.clone(), ident.span());
    let run = quote_spanned! {ident.span()=>
        #private_at_fn::run_job::<#payload, _, _, #output>(
            __athyper_ctx,
            __athyper_payload,
            |__athyper_ctx, __athyper_payload| #hidden(#ctx_arg, __athyper_payload),
        )
    };
    // `line!()` reports the line of the outermost macro call its span
    // comes from: at the function's name it is the function's line, not the
    // attribute's.
    let location = quote_spanned! {ident.span()=>
        module_path: ::core::module_path!(),
        file: ::core::file!(),
        line: ::core::line!(),
    };
    let name = LitStr::new(&name, Span::call_site());
    let queue = LitStr::new(&queue, Span::call_site());
    let defaults = defaults(&private, &options);

    quote! {
        #(#cfgs)*
        #(#docs)*
        #[allow(non_camel_case_types, dead_code)]
        #[derive(
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::fmt::Debug,
        )]
        #vis struct #ident;

        #(#cfgs)*
        impl #ident {
            /// Runs the handler directly, without a queue: for unit tests.
            #[allow(dead_code)]
            #vis async fn call(
                &self,
                __athyper_ctx: #context,
                __athyper_payload: #payload,
            ) -> #output {
                #hidden(__athyper_ctx, __athyper_payload).await
            }
        }

        #(#cfgs)*
        #[doc(hidden)]
        #(#attrs)*
        #hidden_fn

        #(#cfgs)*
        const _: () = {
            impl #private::Job for #ident {
                type Payload = #payload;

                fn descriptor(&self) -> &'static #private::JobDescriptor {
                    &__ATHYPER_DESCRIPTOR
                }
            }

            fn __athyper_run(
                __athyper_ctx: #private::JobContext,
                __athyper_payload: #private::Arc<::core::primitive::str>,
            ) -> #private::BoxFuture<'static, ::core::result::Result<(), #private::JobFailure>> {
                // The checks sit in the same body as the call that needs
                // them, and the call names the same types at the same
                // spans: rustc then reports a failed bound once, with the
                // check's message, instead of once more for `run_job`.
                #(#checks)*
                #run
            }

            const __ATHYPER_DESCRIPTOR: #private::JobDescriptor = #private::JobDescriptor {
                name: #name,
                queue: #queue,
                #location
                defaults: #defaults,
                run: __athyper_run,
            };

            #private::inventory::submit! { __ATHYPER_DESCRIPTOR }
        };
    }
}

/// `JobDefaults::DEFAULT` with a `with_*` call per option given, and
/// nothing else: the defaults themselves live in the runtime only.
fn defaults(private: &TokenStream, options: &Options) -> TokenStream {
    let Options {
        priority,
        attempts,
        backoff_kind,
        backoff,
        max_backoff,
        jitter,
        timeout,
        concurrency,
    } = *options;
    let duration = |d: std::time::Duration| millis(private, d);
    let variant = |name: &str| Ident::new(name, Span::call_site());
    let mut calls = Vec::new();
    if let Some(priority) = priority {
        let v = variant(match priority {
            Priority::Critical => "Critical",
            Priority::High => "High",
            Priority::Normal => "Normal",
            Priority::Low => "Low",
        });
        calls.push(quote!(with_priority(#private::Priority::#v)));
    }
    if let Some(attempts) = attempts {
        let n = Literal::u32_unsuffixed(attempts);
        calls.push(quote!(with_attempts(#n)));
    }
    if let Some(kind) = backoff_kind {
        let v = variant(match kind {
            BackoffKind::Fixed => "Fixed",
            BackoffKind::Linear => "Linear",
            BackoffKind::Exponential => "Exponential",
        });
        calls.push(quote!(with_backoff_kind(#private::BackoffKind::#v)));
    }
    if let Some(backoff) = backoff {
        let d = duration(backoff);
        calls.push(quote!(with_backoff(#d)));
    }
    if let Some(max_backoff) = max_backoff {
        let d = duration(max_backoff);
        calls.push(quote!(with_max_backoff(#d)));
    }
    if let Some(jitter) = jitter {
        let v = variant(match jitter {
            Jitter::None => "None",
            Jitter::Full => "Full",
            Jitter::Equal => "Equal",
        });
        calls.push(quote!(with_jitter(#private::Jitter::#v)));
    }
    if let Some(timeout) = timeout {
        let d = duration(timeout);
        calls.push(quote!(with_timeout(#d)));
    }
    if let Some(concurrency) = concurrency {
        let n = Literal::u32_unsuffixed(concurrency);
        calls.push(quote!(with_concurrency(#n)));
    }
    quote!(#private::JobDefaults::DEFAULT #(.#calls)*)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_name_only_the_options_given() {
        let private = quote!(::athyper::__private);
        assert_eq!(
            defaults(&private, &Options::default()).to_string(),
            ":: athyper :: __private :: JobDefaults :: DEFAULT"
        );
        let options = Options {
            attempts: Some(1),
            timeout: Some(Duration::from_millis(1500)),
            jitter: Some(Jitter::Full),
            ..Options::default()
        };
        assert_eq!(
            defaults(&private, &options).to_string(),
            ":: athyper :: __private :: JobDefaults :: DEFAULT \
             . with_attempts (1) \
             . with_jitter (:: athyper :: __private :: Jitter :: Full) \
             . with_timeout (:: athyper :: __private :: Duration :: from_millis (1500))"
        );
    }
}
