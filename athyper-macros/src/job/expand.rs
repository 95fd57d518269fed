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

use super::model::{BackoffKind, Handler, Jitter, Job, Options, Priority, Scheduled, When};
use crate::common::{millis, respan};

pub(crate) fn expand(job: Job) -> TokenStream {
    let Job {
        krate,
        name,
        queue,
        options,
        schedule,
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
    // The handle is defined in a module of its own, named after this
    // definition, and brought into scope by a `use`. Two handlers of one
    // name in one module then clash only in their `use`s, which rustc
    // reports once, instead of in every impl of the handle as well.
    let module = format_ident!(
        "__athyper_job_{}_{}",
        ident.unraw(),
        location_suffix(ident.span())
    );
    let handle = quote!(self::#module::#ident);
    // A clash is reported at the second handler's `#[job]`, where the
    // `use` is; its last segment keeps the function's span, which keeps
    // rustc from suggesting an `as` rename inside the attribute.
    let binding = quote!(use self::#module::#ident);

    // The body stays the user's function, unchanged but for its visibility,
    // as an associated function of the handle: rustc then speaks of it by
    // the name the user gave it (a future that is not `Send`, say).
    let mut body_fn = item.clone();
    body_fn.vis = Visibility::Inherited;

    // Each requirement on the user's types is checked once, at the type:
    // the payload by `Job::Payload`'s bound in the impl below, the context
    // by the conversion the call goes through, the return type by the
    // assertion, whose bound `run_job` repeats at the same span (rustc
    // then reports it once).
    let check_output = quote_spanned!(output.span()=> #private::assert_result::<#output>(););
    let output_type = result_ok_type(&private, &output);
    // Local variables of the generated code, all at the call site: a
    // handler written inside a `macro_rules!` has its parts at spans of
    // different hygiene, and a variable declared at one span is not in
    // scope at another.
    let ctx_var = Ident::new("__athyper_ctx", Span::call_site());
    let payload_var = Ident::new("__athyper_payload", Span::call_site());
    let ctx_arg = quote_spanned!(context.span()=>
        <#context as #private::IsJobContext>::from_context(#ctx_var)
    );
    // Spanned at the user's function, so that a handler whose future is not
    // `Send` is reported there rather than at the attribute.
    let private_at_fn = respan(private.clone(), ident.span());
    let run = quote_spanned! {ident.span()=>
        #private_at_fn::run_job::<#handle, _, _, #output>(
            #ctx_var,
            #payload_var,
            |#ctx_var, #payload_var| {
                <#handle>::#ident(#ctx_arg, #payload_var)
            },
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
    let mut defaults = defaults(&private, &options);
    let schedule_payload = schedule.map(|schedule| {
        let (declared, payload_fn) = declared(&private, &handle, &payload, schedule);
        defaults.extend(quote!(.with_schedule(#declared)));
        payload_fn
    });

    let struct_vis = seen_from_child(vis);
    let items = quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_snake_case)]
        mod #module {
            // The doc comments' links resolve here.
            #[allow(unused_imports)]
            use super::*;

            #(#docs)*
            #[allow(non_camel_case_types)]
            #[derive(
                ::core::clone::Clone,
                ::core::marker::Copy,
                ::core::fmt::Debug,
            )]
            #struct_vis struct #ident;
        }

        #(#cfgs)*
        #[allow(unused_imports)]
        #vis #binding;

        #(#cfgs)*
        impl #handle {
            /// Runs the handler directly, without a queue: for unit tests.
            #[allow(dead_code)]
            #vis async fn call(
                &self,
                #ctx_var: #context,
                #payload_var: #payload,
            ) -> #output {
                Self::#ident(#ctx_var, #payload_var).await
            }

            #[doc(hidden)]
            #(#attrs)*
            #body_fn
        }

        #(#cfgs)*
        const _: () = {
            impl #private::Job for #handle {
                type Payload = #payload;
                type Output = #output_type;

                fn descriptor(&self) -> &'static #private::JobDescriptor {
                    &__ATHYPER_DESCRIPTOR
                }
            }

            fn __athyper_run(
                #ctx_var: #private::JobContext,
                #payload_var: #private::Arc<::core::primitive::str>,
            ) -> #private::BoxFuture<'static, #private::RunResult> {
                #check_output
                #run
            }

            #schedule_payload

            const __ATHYPER_DESCRIPTOR: #private::JobDescriptor = #private::JobDescriptor {
                name: #name,
                queue: #queue,
                #location
                defaults: #defaults,
                run: __athyper_run,
            };

            #private::inventory::submit! { __ATHYPER_DESCRIPTOR }
        };
    };
    // Everything above hangs off one item, which `items` replaces with it.
    // Outside a module (`#[job]` on a method, say) an `impl` cannot hold a
    // struct, and rustc says so once, at the function, instead of once per
    // generated item.
    let carrier = respan(quote!(struct #ident;), ident.span());
    quote! {
        #(#cfgs)*
        #[#private::items(#items)]
        #carrier
    }
}

/// The success type of the handler's `Result`, read off its signature:
/// the first type argument (`Result<T, E>`, `io::Result<T>`), `()` for a
/// tuple. Otherwise (a type alias without arguments) it is asked of
/// `JobResult`; `run_job` checks that both agree. Reading it off the
/// signature keeps a wrong return type to the one error `assert_result`
/// reports.
fn result_ok_type(private: &TokenStream, output: &syn::Type) -> TokenStream {
    if let syn::Type::Path(path) = output
        && let Some(last) = path.path.segments.last()
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(first) = args.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
    {
        return quote!(#first);
    }
    if let syn::Type::Tuple(_) = output {
        return quote!(());
    }
    quote_spanned!(output.span()=> <#output as #private::JobResult>::Output)
}

/// `vis`, written in a child module: the handle is defined one module
/// down, and must be visible where the user's function would have been.
fn seen_from_child(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Public(_) => quote!(pub),
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Restricted(restricted) => {
            let path = &restricted.path;
            let first = path.segments.first().map(|s| s.ident.to_string());
            match first.as_deref() {
                // `pub(crate)`, `pub(in crate::a)`, `pub(in ::a)`: absolute.
                _ if path.leading_colon.is_some() => quote!(#vis),
                Some("crate") => quote!(#vis),
                // `pub(self)` is private: visible in the user's module,
                // the child's parent.
                Some("self") => {
                    let rest = path.segments.iter().skip(1);
                    quote!(pub(in super #(::#rest)*))
                }
                // `pub(super)`, `pub(in super::super)`: one more `super`.
                _ => quote!(pub(in super::#path)),
            }
        }
    }
}

/// Where a span starts, as `<line>_<column>`: distinct for two definitions
/// in one module, which are on different lines or columns. Outside a
/// procedural macro (the unit tests) spans have no location.
fn location_suffix(span: Span) -> String {
    if proc_macro::is_available() {
        let span = span.unwrap();
        format!("{}_{}", span.line(), span.column())
    } else {
        "0_0".to_owned()
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
        rate,
        max_deferrals,
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
    if let Some((max, per)) = rate {
        let n = Literal::u32_unsuffixed(max);
        let d = duration(per);
        calls.push(quote!(with_rate(#n, #d)));
    }
    if let Some(max) = max_deferrals {
        let n = Literal::u32_unsuffixed(max);
        calls.push(quote!(with_max_deferrals(#n)));
    }
    quote!(#private::JobDefaults::DEFAULT #(.#calls)*)
}

/// The `Declared` of a schedule, and the function that makes each tick's
/// payload: `payload = <expr>`, or the payload type's `Default`.
fn declared(
    private: &TokenStream,
    handle: &TokenStream,
    payload: &syn::Type,
    schedule: Scheduled,
) -> (TokenStream, TokenStream) {
    let Scheduled {
        when,
        catch_up,
        payload: expr,
    } = schedule;
    let payload_fn = quote!(__athyper_schedule_payload);
    let mut declared = match when {
        When::Cron { expr, tz } => {
            let expr = LitStr::new(&expr, Span::call_site());
            let mut declared = quote!(#private::Declared::cron(#expr, #payload_fn));
            if let Some(tz) = tz {
                let tz = LitStr::new(&tz, Span::call_site());
                declared.extend(quote!(.in_tz(#tz)));
            }
            declared
        }
        When::Every(period) => {
            let period = millis(private, period);
            quote!(#private::Declared::every(#period, #payload_fn))
        }
    };
    if let Some(n) = catch_up {
        let n = Literal::u32_unsuffixed(n);
        declared.extend(quote!(.catch_up(#n)));
    }
    // The binding's type is the handler's payload type as written, so that
    // an expression of another type is reported at the expression with
    // "expected due to this" at the handler's argument; the `Default`
    // requirement is checked at that type too.
    let value = match expr {
        Some(expr) => quote!(#expr),
        None => quote_spanned!(payload.span()=> #private::default_payload::<#payload>()),
    };
    let function = quote! {
        fn #payload_fn() -> ::core::result::Result<#private::String, #private::String> {
            let __athyper_payload: #payload = #value;
            #private::schedule_payload::<#handle>(__athyper_payload)
        }
    };
    (declared, function)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_handle_is_visible_where_the_function_was() {
        let seen = |vis: Visibility| seen_from_child(&vis).to_string();
        assert_eq!(seen(syn::parse_quote!()), "pub (super)");
        assert_eq!(seen(syn::parse_quote!(pub)), "pub");
        assert_eq!(seen(syn::parse_quote!(pub(crate))), "pub (crate)");
        assert_eq!(
            seen(syn::parse_quote!(pub(in crate::a))),
            "pub (in crate :: a)"
        );
        assert_eq!(seen(syn::parse_quote!(pub(self))), "pub (in super)");
        assert_eq!(
            seen(syn::parse_quote!(pub(super))),
            "pub (in super :: super)"
        );
        assert_eq!(
            seen(syn::parse_quote!(pub(in super::super))),
            "pub (in super :: super :: super)"
        );
    }

    #[test]
    fn rates_deferrals_and_schedules_become_calls() {
        let private = quote!(::athyper::__private);
        let options = Options {
            rate: Some((10, Duration::from_secs(30))),
            max_deferrals: Some(0),
            ..Options::default()
        };
        assert_eq!(
            defaults(&private, &options).to_string(),
            ":: athyper :: __private :: JobDefaults :: DEFAULT \
             . with_rate (10 , :: athyper :: __private :: Duration :: from_millis (30000)) \
             . with_max_deferrals (0)"
        );
        let handle = quote!(self::m::report);
        let payload: syn::Type = syn::parse_quote!(Report);
        let cron = Scheduled {
            when: When::Cron {
                expr: "0 * * * *".into(),
                tz: Some("Europe/Berlin".into()),
            },
            catch_up: Some(2),
            payload: None,
        };
        let (declared_cron, function) = declared(&private, &handle, &payload, cron);
        assert_eq!(
            declared_cron.to_string(),
            ":: athyper :: __private :: Declared :: cron (\"0 * * * *\" , __athyper_schedule_payload) \
             . in_tz (\"Europe/Berlin\") . catch_up (2)"
        );
        assert!(
            function
                .to_string()
                .contains("default_payload :: < Report > ()"),
            "{function}"
        );
        let every = Scheduled {
            when: When::Every(Duration::from_secs(60)),
            catch_up: None,
            payload: Some(syn::parse_quote!(Report::daily())),
        };
        let (declared_every, function) = declared(&private, &handle, &payload, every);
        assert_eq!(
            declared_every.to_string(),
            ":: athyper :: __private :: Declared :: every (:: athyper :: __private :: Duration :: from_millis (60000) , __athyper_schedule_payload)"
        );
        assert!(
            function
                .to_string()
                .contains("let __athyper_payload : Report = Report :: daily () ;"),
            "{function}"
        );
    }

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
