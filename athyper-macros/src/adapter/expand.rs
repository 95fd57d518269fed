//! The code a valid `#[adapter]` becomes. Nothing here can fail: the model
//! checked everything.
//!
//! Each wrapped method keeps its signature; its body moves to a hidden
//! method, and the method itself calls that through the instance's
//! protection. Generated code reaches the runtime only through
//! `<crate>::__private` and core only through `::core`.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericParam, Ident, ImplItem, ImplItemFn, LitStr, Pat, PatIdent, ReturnType,
    Type, Visibility,
};

use super::model::{Adapter, Breaker, Health, Retry};
use crate::common::{Part, find_part, millis, respan, type_text};

pub(crate) fn expand(adapter: Adapter) -> TokenStream {
    let Adapter {
        krate,
        name,
        required,
        breaker,
        retry,
        retry_text,
        timeout,
        state,
        health,
        mut item,
        wrapped,
    } = adapter;
    let private = quote!(#krate::__private);

    let mut method_names = Vec::new();
    let mut hidden = Vec::new();
    for &index in &wrapped {
        let ImplItem::Fn(method) = &mut item.items[index] else {
            continue;
        };
        method_names.push(LitStr::new(
            &method.sig.ident.unraw().to_string(),
            Span::call_site(),
        ));
        let (wrapper, body) = wrap(&private, &retry, method);
        *method = wrapper;
        hidden.push(ImplItem::Fn(body));
    }
    item.items.extend(hidden);

    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let name = LitStr::new(&name, Span::call_site());
    let type_name = LitStr::new(&type_text(self_ty), Span::call_site());
    let health_fn = health_fn(&private, health.as_ref());
    let health_name = match &health {
        Some(h) => {
            let n = LitStr::new(&h.ident.unraw().to_string(), Span::call_site());
            quote!(::core::option::Option::Some(#n))
        }
        None => quote!(::core::option::Option::None),
    };
    let breaker = match &breaker {
        Some(breaker) => {
            let config = breaker_config(&private, breaker);
            quote!(::core::option::Option::Some(#config))
        }
        None => quote!(::core::option::Option::None),
    };
    let timeout = match timeout {
        Some(t) => {
            let d = millis(&private, t);
            quote!(::core::option::Option::Some(#d))
        }
        None => quote!(::core::option::Option::None),
    };
    let retry_text = LitStr::new(&retry_text, Span::call_site());
    // At the field's span: the type when the default name is used, so a
    // missing field is reported on the type that lacks it.
    let state_span = state.span();
    let self_at_state = quote_spanned!(state_span=> self);
    let state_access = quote_spanned! {state_span=>
        #private::adapter_state_field(&#self_at_state.#state)
    };
    // `line!()` at the type gives the `impl` line, not the attribute's.
    let location = quote_spanned! {self_ty.span()=>
        module_path: ::core::module_path!(),
        file: ::core::file!(),
        line: ::core::line!(),
    };

    quote! {
        #item

        const _: () = {
            #[automatically_derived]
            impl #impl_generics #private::Adapter for #self_ty #where_clause {
                fn descriptor() -> &'static #private::AdapterDescriptor {
                    &__ATHYPER_ADAPTER
                }

                fn adapter_state(&self) -> &#private::AdapterState {
                    #state_access
                }

                #health_fn
            }

            const __ATHYPER_ADAPTER: #private::AdapterDescriptor = #private::AdapterDescriptor {
                name: #name,
                type_name: #type_name,
                required: #required,
                health: #health_name,
                methods: &[#(#method_names),*],
                circuit_breaker: #breaker,
                retry: #retry_text,
                timeout: #timeout,
                #location
            };

            #private::inventory::submit! { __ATHYPER_ADAPTER }
        };
    }
}

/// Splits `method` into the public wrapper, which keeps the signature and
/// calls through protection, and the hidden method holding the body.
fn wrap(private: &TokenStream, retry: &Retry, method: &ImplItemFn) -> (ImplItemFn, ImplItemFn) {
    let ident = &method.sig.ident;
    // At the user's name, so that what rustc says about the body (a future
    // that is not `Send`, say) points at the user's method.
    let inner_ident = format_ident!("__athyper_adapter_{}", ident.unraw(), span = ident.span());

    let (outer_attrs, inner_attrs) = split_attrs(&method.attrs);

    let mut inner = method.clone();
    inner.sig.ident = inner_ident.clone();
    inner.vis = Visibility::Inherited;
    inner.attrs = inner_attrs;
    inner.attrs.push(syn::parse_quote!(#[doc(hidden)]));

    // The wrapper names each argument, so that it can hand copies to each
    // attempt whatever pattern the user wrote.
    let mut wrapper = method.clone();
    wrapper.attrs = outer_attrs;
    let mut args = Vec::new();
    let mut has_impl_trait = false;
    for (i, input) in wrapper.sig.inputs.iter_mut().enumerate() {
        if let FnArg::Typed(typed) = input {
            let arg = Ident::new(&format!("__athyper_arg{i}"), Span::call_site());
            *typed.pat = Pat::Ident(PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident: arg.clone(),
                subpat: None,
            });
            has_impl_trait |= matches!(*typed.ty, Type::ImplTrait(_));
            args.push((arg, (*typed.ty).clone()));
        }
    }
    // Generic parameters are named explicitly where the language allows
    // it (not alongside `impl Trait` arguments), for those only the return
    // type mentions.
    let turbofish = {
        let params: Vec<TokenStream> = method
            .sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(t) => Some(t.ident.to_token_stream()),
                GenericParam::Const(c) => Some(c.ident.to_token_stream()),
                GenericParam::Lifetime(_) => None,
            })
            .collect();
        if params.is_empty() || has_impl_trait {
            TokenStream::new()
        } else {
            quote!(::<#(#params),*>)
        }
    };
    let method_name = LitStr::new(&ident.unraw().to_string(), Span::call_site());
    // The whole call, up to its `.await`, is spanned at the return type: a
    // method that does not return a `Result`, or whose error type cannot
    // hold a rejection, is then reported there, and once, since every
    // obligation the call and its future carry has that one span.
    let output_span = match &method.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => ident.span(),
    };
    let at_output = respan(private.clone(), output_span);
    let output = match &method.sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => quote_spanned!(output_span=> ()),
    };
    let protocol = quote_spanned!(output_span=> #at_output::adapter_protocol::<#output>());
    let body = match policy(private, retry) {
        None => {
            let names = args.iter().map(|(arg, _)| arg);
            quote_spanned! {output_span=>
                #at_output::call_adapter_once(self, #method_name, #protocol, move || {
                    Self::#inner_ident #turbofish(self, #(#names),*)
                })
                .await
            }
        }
        Some(policy) => {
            // Each copy at its argument's type, so that a type that is not
            // `Clone` is reported there.
            let copies = args
                .iter()
                .map(|(arg, ty)| respan(quote!(#private::retry_arg(&#arg)), ty.span()));
            // The check rustc reports, with its message; the copy above
            // repeats it at the same span, which rustc then stays quiet
            // about.
            // `impl Trait` cannot be named in the check; its copy alone
            // checks it.
            let named = args.iter().filter(|(_, ty)| !mentions_impl_trait(ty));
            let checks = named.map(|(_, ty)| {
                let check = respan(quote!(#private::assert_retry_arg), ty.span());
                quote_spanned!(ty.span()=> #check::<#ty>();)
            });
            quote_spanned! {output_span=>
                #(#checks)*
                #at_output::call_adapter(self, #method_name, #policy, #protocol, || {
                    Self::#inner_ident #turbofish(self, #(#copies),*)
                })
                .await
            }
        }
    };
    wrapper.block = syn::parse_quote!({ #body });
    (wrapper, inner)
}

fn mentions_impl_trait(ty: &Type) -> bool {
    find_part(ty, &mut |part| match part {
        Part::Type(Type::ImplTrait(_)) => Some(()),
        _ => None,
    })
    .is_some()
}

/// The retry policy a wrapped method's calls go through; none for
/// `retry = "none"`, whose methods are called once.
fn policy(private: &TokenStream, retry: &Retry) -> Option<TokenStream> {
    match retry {
        Retry::None => None,
        Retry::Db => Some(quote!(#private::DB_RETRY_POLICY)),
        Retry::Api => Some(quote!(#private::API_RETRY_POLICY)),
        Retry::Path(path) => {
            Some(quote_spanned!(path.span()=> ::core::clone::Clone::clone(&#path)))
        }
    }
}

/// Sorts a method's attributes: documentation and what describes the
/// method's interface (`deprecated`, `must_use`, `inline`) stay on the
/// wrapper; `cfg` and lint levels go on both; everything else
/// (`#[tracing::instrument]`, `#[expect]`, ...) belongs to the body.
fn split_attrs(attrs: &[Attribute]) -> (Vec<Attribute>, Vec<Attribute>) {
    let (mut outer, mut inner) = (Vec::new(), Vec::new());
    for attr in attrs {
        let path = attr.path();
        let is = |name: &str| path.is_ident(name);
        if is("doc") || is("deprecated") || is("must_use") || is("inline") {
            outer.push(attr.clone());
        } else if is("cfg")
            || is("cfg_attr")
            || is("allow")
            || is("warn")
            || is("deny")
            || is("forbid")
        {
            outer.push(attr.clone());
            inner.push(attr.clone());
        } else {
            inner.push(attr.clone());
        }
    }
    (outer, inner)
}

fn health_fn(private: &TokenStream, health: Option<&Health>) -> TokenStream {
    let signature = quote! {
        fn health(&self) -> #private::BoxFuture<'_, ::core::result::Result<(), #private::String>>
    };
    match health {
        None => quote! {
            #signature {
                #private::breaker_health(self)
            }
        },
        Some(Health { ident, output }) => {
            // The future is checked `Send` at the method's name, the result
            // at its return type.
            let boxed = respan(quote!(#private::health_future), ident.span());
            let result = respan(
                quote!(#private::health_result(__athyper_result)),
                output.span(),
            );
            let binding = respan(quote!(__athyper_result), output.span());
            quote! {
                #signature {
                    #boxed(async move {
                        let #binding = Self::#ident(self).await;
                        #result
                    })
                }
            }
        }
    }
}

/// `CircuitBreakerConfig::DEFAULT` with a `with_*` call per option given.
fn breaker_config(private: &TokenStream, breaker: &Breaker) -> TokenStream {
    let Breaker {
        failure_threshold,
        success_threshold,
        open_for,
        window,
        min_calls,
        failure_rate,
        half_open_permits,
        slow_call,
    } = *breaker;
    let mut calls = Vec::new();
    let int = |n: u32| Literal::u32_unsuffixed(n);
    let float = |r: f64| Literal::f64_unsuffixed(r);
    if let Some(n) = failure_threshold {
        let n = int(n);
        calls.push(quote!(with_failure_threshold(#n)));
    }
    if let Some(n) = success_threshold {
        let n = int(n);
        calls.push(quote!(with_success_threshold(#n)));
    }
    if let Some(d) = open_for {
        let d = millis(private, d);
        calls.push(quote!(with_open_for(#d)));
    }
    if let Some(n) = window {
        let n = int(n);
        calls.push(quote!(with_window(#n)));
    }
    if let Some(n) = min_calls {
        let n = int(n);
        calls.push(quote!(with_min_calls(#n)));
    }
    if let Some(r) = failure_rate {
        let r = float(r);
        calls.push(quote!(with_failure_rate(#r)));
    }
    if let Some(n) = half_open_permits {
        let n = int(n);
        calls.push(quote!(with_half_open_permits(#n)));
    }
    if let Some((d, r)) = slow_call {
        let (d, r) = (millis(private, d), float(r));
        calls.push(quote!(with_slow_calls(#d, #r)));
    }
    quote!(#private::CircuitBreakerConfig::DEFAULT #(.#calls)*)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn breaker_config_names_only_the_options_given() {
        let private = quote!(::athyper::__private);
        assert_eq!(
            breaker_config(&private, &Breaker::default()).to_string(),
            ":: athyper :: __private :: CircuitBreakerConfig :: DEFAULT"
        );
        let breaker = Breaker {
            failure_rate: Some(0.5),
            window: Some(20),
            slow_call: Some((Duration::from_millis(1500), 1.0)),
            ..Breaker::default()
        };
        assert_eq!(
            breaker_config(&private, &breaker).to_string(),
            ":: athyper :: __private :: CircuitBreakerConfig :: DEFAULT \
             . with_window (20) \
             . with_failure_rate (0.5) \
             . with_slow_calls (:: athyper :: __private :: Duration :: from_millis (1500) , 1.0)"
        );
    }

    #[test]
    fn attributes_go_where_they_belong() {
        let method: ImplItemFn = syn::parse_quote! {
            /// Docs.
            #[cfg(feature = "x")]
            #[allow(unused)]
            #[deprecated]
            #[tracing::instrument]
            #[expect(clippy::too_many_arguments)]
            async fn f(&self) -> Result<(), String> { Ok(()) }
        };
        let (outer, inner) = split_attrs(&method.attrs);
        let names = |attrs: &[Attribute]| {
            attrs
                .iter()
                .map(|a| a.path().to_token_stream().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&outer), ["doc", "cfg", "allow", "deprecated"]);
        assert_eq!(
            names(&inner),
            ["cfg", "allow", "tracing :: instrument", "expect"]
        );
    }
}
