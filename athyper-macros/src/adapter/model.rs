//! What an `#[adapter(...)]` means: the options checked against each other
//! and the `impl` block's methods sorted into wrapped, health, skipped and
//! untouched, each wrapped one checked against what protection can call.
//!
//! Everything that can be wrong with an invocation is found here; the
//! expansion that follows has no error paths.

use std::mem;
use std::time::Duration;

use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, Item, ItemImpl, LitStr, Member, Path, Receiver,
    ReturnType, Signature, Type,
};

use super::args::{AdapterArgs, BreakerArgs, PRESETS, RetryArg};
use crate::common::{
    Errors, NameKind, Setting, checked_name, count, crate_path, describe, did_you_mean, idents,
    is_attribute, one_of, positive_duration, rate, report, type_text, validate_name,
};

use crate::common::runtime::{DEFAULT_WINDOW, MAX_COUNT};

/// The field holding the state when `state = "..."` is not given.
pub(crate) const DEFAULT_STATE_FIELD: &str = "resilience";

/// An adapter ready to expand.
pub(crate) struct Adapter {
    /// Where the runtime is: `::athyper` unless `crate = "..."` says otherwise.
    pub(crate) krate: Path,
    pub(crate) name: String,
    pub(crate) required: bool,
    pub(crate) breaker: Option<Breaker>,
    pub(crate) retry: Retry,
    /// The `retry` option as written, for the descriptor.
    pub(crate) retry_text: String,
    pub(crate) timeout: Option<Duration>,
    /// The field holding the `AdapterState`, spanned where a missing field
    /// should be reported.
    pub(crate) state: Member,
    pub(crate) health: Option<Health>,
    /// The block, with the `#[adapter(...)]` attributes of its methods
    /// removed; wrapped methods are rewritten by the expansion.
    pub(crate) item: ItemImpl,
    /// Indices into `item.items` of the methods to wrap.
    pub(crate) wrapped: Vec<usize>,
}

/// The breaker options given; `None` keeps the runtime's default.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Breaker {
    pub(crate) failure_threshold: Option<u32>,
    pub(crate) success_threshold: Option<u32>,
    pub(crate) open_for: Option<Duration>,
    pub(crate) window: Option<u32>,
    pub(crate) min_calls: Option<u32>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) half_open_permits: Option<u32>,
    pub(crate) slow_call: Option<(Duration, f64)>,
}

/// The `retry` option.
#[derive(Clone)]
pub(crate) enum Retry {
    None,
    Db,
    Api,
    Path(Path),
}

/// The health method.
pub(crate) struct Health {
    pub(crate) ident: Ident,
    pub(crate) output: Type,
}

impl Adapter {
    /// Checks the options and the item, returning every error found.
    pub(crate) fn new(mut args: AdapterArgs, item: Item) -> Result<Adapter, Errors> {
        let mut errors = mem::take(&mut args.errors);
        let krate = crate_path(&mut errors, &args.krate);
        let breaker = args
            .circuit_breaker
            .value()
            .map(|b| Breaker::new(b, &mut errors));
        let retry = retry(&mut errors, &args.retry);
        let timeout = args.timeout.key().and_then(|_| {
            positive_duration(
                &mut errors,
                &args.timeout,
                "timeout",
                "leave it out for no time limit",
            )
        });
        let required = required(&mut errors, &args);

        let mut item = match item {
            Item::Impl(item) => item,
            other => {
                not_an_impl_block(&mut errors, &other);
                return Err(errors);
            }
        };
        if let Some((_, trait_path, _)) = &item.trait_ {
            errors.spanned(
                trait_path,
                format!(
                    "`#[adapter]` applies to an inherent `impl` block, not to an implementation of `{}`; put the methods to protect in `impl {} {{ ... }}`",
                    trait_path.to_token_stream().to_string().replace(' ', ""),
                    type_text(&item.self_ty),
                ),
            );
        }
        // The attribute being expanded is gone from `attrs`: another one
        // there is written twice.
        if let Some(repeat) = item.attrs.iter().find(|attr| is_adapter_attr(attr)) {
            errors.spanned(
                repeat,
                "`#[adapter]` is written twice on this `impl` block; keep one, with every option in it",
            );
        }
        let name = match args.name.key() {
            Some(_) => checked_name(&mut errors, NameKind::Adapter, &args.name),
            None => type_name(&mut errors, &item.self_ty),
        };
        let state = state_field(&mut errors, &args.state, &item.self_ty);
        let methods = Methods::sort(&mut item, &args.health, &mut errors);

        match (krate, name, retry, state) {
            (Some(krate), Some(name), Some((retry, retry_text)), Some(state))
                if errors.is_empty() =>
            {
                Ok(Adapter {
                    krate,
                    name,
                    required,
                    breaker: breaker.flatten(),
                    retry,
                    retry_text,
                    timeout,
                    state,
                    health: methods.health,
                    item,
                    wrapped: methods.wrapped,
                })
            }
            _ => Err(errors),
        }
    }
}

impl Breaker {
    fn new(args: &BreakerArgs, errors: &mut Errors) -> Option<Breaker> {
        let before = errors.len();
        let counted =
            |errors: &mut Errors, setting, key, hint| count(errors, setting, key, MAX_COUNT, hint);
        let failure_threshold = counted(
            errors,
            &args.failure_threshold,
            "failure_threshold",
            "it is the number of consecutive failures that opens the breaker",
        );
        let success_threshold = counted(
            errors,
            &args.success_threshold,
            "success_threshold",
            "it is the number of successful trial calls that closes the breaker",
        );
        let half_open_permits = counted(
            errors,
            &args.half_open_permits,
            "half_open_permits",
            "a half-open breaker must let at least one trial call through",
        );
        let window = counted(
            errors,
            &args.window,
            "window",
            "it is the number of recent calls rates are computed over",
        );
        let min_calls = counted(
            errors,
            &args.min_calls,
            "min_calls",
            "it is the number of calls the window needs before a rate counts",
        );
        let open_for = positive_duration(
            errors,
            &args.open_for,
            "open_for",
            "it is how long the breaker rejects calls before trying again",
        );
        let failure_rate = rate(errors, &args.failure_rate, "failure_rate");
        let slow_rate = rate(errors, &args.slow_call_rate, "slow_call_rate");
        let slow_call = positive_duration(
            errors,
            &args.slow_call,
            "slow_call",
            "it is the duration above which a call counts as slow",
        );

        // Options that only mean something together.
        let rates_given = args.failure_rate.key().is_some() || args.slow_call_rate.key().is_some();
        if !rates_given {
            for setting in [&args.window, &args.min_calls] {
                if let Some(key) = setting.key() {
                    let key = key.unraw();
                    report(
                        errors,
                        setting,
                        syn::Error::new(
                            key.span(),
                            format!(
                                "`{key}` has no effect without `failure_rate` or `slow_call_rate`: the window only holds calls to compute rates; add a rate, as in `failure_rate = 0.5`, or remove `{key}`"
                            ),
                        ),
                    );
                }
            }
        }
        let pairs = [
            (
                args.slow_call_rate.key(),
                args.slow_call_rate.position(),
                args.slow_call.key().is_none(),
                "slow_call = \"2s\"",
            ),
            (
                args.slow_call.key(),
                args.slow_call.position(),
                args.slow_call_rate.key().is_none(),
                "slow_call_rate = 0.5",
            ),
        ];
        for (given, position, other_missing, example) in pairs {
            if let (Some(key), true) = (given, other_missing) {
                let key = key.unraw();
                let other = example.split(' ').next().unwrap_or_default();
                errors.push_at(
                    position.unwrap_or(usize::MAX),
                    syn::Error::new(
                        key.span(),
                        format!(
                            "`{key}` needs `{other}` too: slow calls trip the breaker when calls slower than `slow_call` reach the share `slow_call_rate`; add `{example}`"
                        ),
                    ),
                );
            }
        }
        if let (Some(min), Some(lit)) = (min_calls, args.min_calls.value()) {
            let size = window.unwrap_or(DEFAULT_WINDOW);
            if min > size {
                let message = match window {
                    Some(_) => format!(
                        "`min_calls = {min}` exceeds `window = {size}`: the window never holds that many calls; lower `min_calls` or raise `window`"
                    ),
                    None => format!(
                        "`min_calls = {min}` exceeds the default `window` of {size} calls; lower `min_calls` or set `window`"
                    ),
                };
                report(
                    errors,
                    &args.min_calls,
                    syn::Error::new(lit.span(), message),
                );
            }
        }
        if errors.len() > before {
            return None;
        }
        Some(Breaker {
            failure_threshold,
            success_threshold,
            open_for,
            window,
            min_calls,
            failure_rate,
            half_open_permits,
            slow_call: slow_call.zip(slow_rate),
        })
    }
}

fn retry(errors: &mut Errors, setting: &Setting<RetryArg>) -> Option<(Retry, String)> {
    let Some(value) = setting.value() else {
        // Not given (or given in a wrong form, already reported).
        return setting
            .key()
            .is_none()
            .then(|| (Retry::None, "none".to_owned()));
    };
    match value {
        RetryArg::Path(path) => Some((
            Retry::Path(path.clone()),
            path.to_token_stream().to_string().replace(' ', ""),
        )),
        RetryArg::Preset(lit) => {
            let text = lit.value();
            let retry = match text.as_str() {
                "db" => Retry::Db,
                "api" => Retry::Api,
                "none" => Retry::None,
                _ => {
                    let message = format!(
                        "{}; or give a path to a `RetryPolicy`, as in `retry = policies::BILLING`",
                        one_of("retry preset", &text, &PRESETS)
                    );
                    report(errors, setting, syn::Error::new(lit.span(), message));
                    return None;
                }
            };
            Some((retry, text))
        }
    }
}

/// `required` (the default) or `optional`, not both.
fn required(errors: &mut Errors, args: &AdapterArgs) -> bool {
    match (args.required.position(), args.optional.position()) {
        (Some(required), Some(optional)) => {
            let (later, setting, other) = if optional > required {
                ("optional", &args.optional, "required")
            } else {
                ("required", &args.required, "optional")
            };
            if let Some(key) = setting.key() {
                report(
                    errors,
                    setting,
                    syn::Error::new(
                        key.span(),
                        format!(
                            "`{later}` contradicts the earlier `{other}`; an adapter is one or the other, remove one of them"
                        ),
                    ),
                );
            }
            true
        }
        (None, Some(_)) => false,
        _ => true,
    }
}

/// The adapter's name when no `name = "..."` is given: its type's.
fn type_name(errors: &mut Errors, ty: &Type) -> Option<String> {
    let ident = match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().map(|s| &s.ident),
        _ => None,
    };
    let Some(ident) = ident else {
        errors.spanned(
            ty,
            "this type has no name to call the adapter by; name it with `#[adapter(name = \"...\")]`",
        );
        return None;
    };
    let name = ident.unraw().to_string();
    match validate_name(NameKind::Adapter, &name) {
        Ok(()) => Some(name),
        Err(message) => {
            errors.at(
                ident.span(),
                format!("{message}; the adapter is named after its type unless you give it a name with `#[adapter(name = \"...\")]`"),
            );
            None
        }
    }
}

/// The field holding the state, spanned at the option, or at the type when
/// the default is used: that is where a missing field is reported.
fn state_field(errors: &mut Errors, setting: &Setting<LitStr>, ty: &Type) -> Option<Member> {
    let Some(lit) = setting.value() else {
        if setting.key().is_some() {
            return None;
        }
        let span = ty.span();
        return Some(Member::Named(Ident::new(DEFAULT_STATE_FIELD, span)));
    };
    match lit.parse::<Member>() {
        Ok(member) => Some(member),
        Err(_) => {
            report(
                errors,
                setting,
                syn::Error::new(
                    lit.span(),
                    format!(
                        "invalid field `{}` for `state`: expected the name of the field holding the `AdapterState`, such as `state = \"resilience\"`",
                        lit.value()
                    ),
                ),
            );
            None
        }
    }
}

/// What the block's methods are.
struct Methods {
    wrapped: Vec<usize>,
    health: Option<Health>,
}

/// The start of every message about a method that cannot be wrapped.
const WRAPPED: &str = "an adapter method";
/// How to leave a method out, appended to those messages.
const SKIP: &str = "or mark it `#[adapter(skip)]` to leave it unprotected";

impl Methods {
    /// Sorts the methods, removing their `#[adapter(...)]` attributes.
    /// Functions without `self` (constructors) are left alone; the health
    /// method is called by health checks, not protected; every other
    /// method is wrapped unless marked `#[adapter(skip)]`.
    fn sort(item: &mut ItemImpl, health: &Setting<LitStr>, errors: &mut Errors) -> Methods {
        let health_name = health.value().map(LitStr::value);
        let mut wrapped = Vec::new();
        let mut found_health = None;
        let mut names = Vec::new();
        for (index, member) in item.items.iter_mut().enumerate() {
            let ImplItem::Fn(method) = member else {
                continue;
            };
            let skip = take_skip(&mut method.attrs, errors);
            let name = method.sig.ident.unraw().to_string();
            if health_name.as_deref() == Some(name.as_str()) {
                found_health = Some(check_health(method, errors));
                continue;
            }
            names.push(name);
            if skip || !has_receiver(&method.sig) {
                continue;
            }
            if check_wrapped(&method.sig, errors) {
                wrapped.push(index);
            }
        }
        let health = match (health.value(), found_health) {
            (Some(_), None) => {
                missing_health(errors, health, &names);
                None
            }
            (_, found) => found.flatten(),
        };
        Methods { wrapped, health }
    }
}

/// Whether the method was marked `#[adapter(skip)]`; removes the marks
/// and reports anything else written in them.
fn take_skip(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> bool {
    let mut skip = false;
    attrs.retain(|attr| {
        if !is_adapter_attr(attr) {
            return true;
        }
        let tokens = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            other => {
                errors.spanned(
                    other,
                    "write `#[adapter(skip)]` to leave a method unprotected",
                );
                return false;
            }
        };
        match idents(tokens) {
            Ok(words) => {
                for word in words {
                    let text = word.unraw().to_string();
                    if text == "skip" {
                        skip = true;
                    } else {
                        errors.at(word.span(), one_of("method option", &text, &["skip"]));
                    }
                }
            }
            Err(error) => errors.push(syn::Error::new(
                error.span(),
                "write `#[adapter(skip)]` to leave a method unprotected",
            )),
        }
        false
    });
    skip
}

/// `#[adapter(...)]` or `#[athyper::adapter(...)]`.
pub(crate) fn is_adapter_attr(attr: &Attribute) -> bool {
    is_attribute(attr, "adapter")
}

fn has_receiver(sig: &Signature) -> bool {
    matches!(sig.inputs.first(), Some(FnArg::Receiver(_)))
}

/// Whether the receiver is `&self`, however written: `&self`, `&'a self`,
/// `self: &Self`, `self: &'a Self`.
fn takes_shared_self(receiver: &Receiver) -> bool {
    // syn gives `&self` the type `&Self` too.
    match &*receiver.ty {
        Type::Reference(reference) => {
            reference.mutability.is_none()
                && matches!(&*reference.elem, Type::Path(path) if path.qself.is_none() && path.path.is_ident("Self"))
        }
        _ => false,
    }
}

/// `async fn name(&self, ...) -> R`, nothing else; reports each way in
/// which a method is not.
fn check_wrapped(sig: &Signature, errors: &mut Errors) -> bool {
    let before = errors.len();
    let name = sig.ident.unraw();
    match (sig.constness, sig.asyncness) {
        (Some(constness), _) => errors.at(
            constness.span,
            format!("{WRAPPED} cannot be a `const fn`; write `async fn {name}`, {SKIP}"),
        ),
        (None, None) => errors.at(
            sig.fn_token.span,
            format!("{WRAPPED} must be an `async fn`: its calls go through the breaker, retries and timeout; add `async` before `fn`, {SKIP}"),
        ),
        (None, Some(_)) => {}
    }
    if let Some(unsafety) = sig.unsafety {
        errors.at(
            unsafety.span,
            format!("{WRAPPED} cannot be `unsafe`: protection calls it and cannot uphold a safety contract; remove `unsafe`, {SKIP}"),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            format!("{WRAPPED} cannot have an `extern` ABI; remove it, {SKIP}"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, format!("{WRAPPED} cannot be variadic; {SKIP}"));
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first()
        && !takes_shared_self(receiver)
    {
        errors.spanned(
            receiver,
            format!("{WRAPPED} takes `&self`: its calls may be retried and may run at once, so it cannot take `self` by value, `&mut self` or another `self` type; use interior mutability, {SKIP}"),
        );
    }
    if let ReturnType::Default = sig.output {
        errors.spanned(
            sig,
            format!("{WRAPPED} must return `Result<T, E>`: the breaker and retries tell success from failure by it; add a return type, as in `-> Result<(), BillingError>`, {SKIP}"),
        );
    }
    errors.len() == before
}

/// The health method: `async fn name(&self) -> Result<(), E>`.
fn check_health(method: &ImplItemFn, errors: &mut Errors) -> Option<Health> {
    let sig = &method.sig;
    let before = errors.len();
    let name = sig.ident.unraw();
    let expected = format!("as in `async fn {name}(&self) -> Result<(), E>`");
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format!("the health method `{name}` must be an `async fn`, {expected}; add `async` before `fn`"),
        );
    }
    let only_self = sig.inputs.len() == 1
        && matches!(sig.inputs.first(), Some(FnArg::Receiver(r)) if takes_shared_self(r));
    if !only_self {
        let message =
            format!("the health method `{name}` must take `&self` and nothing else, {expected}");
        if sig.inputs.is_empty() {
            errors.at(sig.paren_token.span.join(), message);
        } else {
            errors.spanned(&sig.inputs, message);
        }
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            format!("the health method `{name}` cannot be generic, {expected}"),
        );
    }
    let output = match &sig.output {
        ReturnType::Type(_, ty) => Some((**ty).clone()),
        ReturnType::Default => {
            errors.spanned(
                sig,
                format!("the health method `{name}` must return `Result<(), E>` where `E: Display`, {expected}"),
            );
            None
        }
    };
    if errors.len() > before {
        return None;
    }
    output.map(|output| Health {
        ident: sig.ident.clone(),
        output,
    })
}

/// The `health` option names no method of the block: reported at its
/// value, in source order among the options.
fn missing_health(errors: &mut Errors, setting: &Setting<LitStr>, names: &[String]) {
    let Some(lit) = setting.value() else {
        return;
    };
    let name = lit.value();
    let candidates: Vec<&str> = names.iter().map(String::as_str).collect();
    let suggestion = did_you_mean(&name, &candidates)
        .map(|close| format!("; did you mean `{close}`?"))
        .unwrap_or_default();
    let message = format!(
        "no method `{name}` in this `impl` block; `health` names a method defined in it, as in `async fn {name}(&self) -> Result<(), E>`{suggestion}"
    );
    report(errors, setting, syn::Error::new(lit.span(), message));
}

fn not_an_impl_block(errors: &mut Errors, item: &Item) {
    let (what, head) = describe(item);
    errors.spanned(
        head,
        format!("`#[adapter]` applies to an `impl` block, as in `#[adapter] impl Billing {{ ... }}`, not to {what}"),
    );
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::parse_quote;

    use super::*;

    fn check(args: TokenStream, item: Item) -> Result<Adapter, Errors> {
        Adapter::new(syn::parse2(args).expect("args parse"), item)
    }

    const BLOCK: &str = "impl Billing {
        fn new() -> Self { Billing }
        async fn charge(&self, amount: u64) -> Result<u64, String> { Ok(amount) }
        async fn ping(&self) -> Result<(), String> { Ok(()) }
        #[adapter(skip)]
        fn base(&self) -> &str { \"\" }
    }";

    fn adapter(args: TokenStream) -> Adapter {
        match check(args, syn::parse_str(BLOCK).unwrap()) {
            Ok(adapter) => adapter,
            Err(errors) => panic!("unexpected errors: {:?}", errors.messages()),
        }
    }

    fn errors(args: TokenStream, item: Item) -> Vec<String> {
        match check(args, item) {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors.messages(),
        }
    }

    fn option_errors(args: TokenStream) -> Vec<String> {
        errors(args, syn::parse_str(BLOCK).unwrap())
    }

    fn item_errors(item: Item) -> Vec<String> {
        errors(TokenStream::new(), item)
    }

    #[test]
    fn defaults() {
        let a = adapter(TokenStream::new());
        assert_eq!(a.name, "Billing");
        assert!(a.required);
        assert!(a.breaker.is_none());
        assert!(matches!(a.retry, Retry::None));
        assert_eq!(a.retry_text, "none");
        assert_eq!(a.timeout, None);
        assert_eq!(a.state.to_token_stream().to_string(), "resilience");
        // `new` has no receiver, `base` is skipped: only `charge` and `ping`
        // remain, and `ping` is a method like any other without `health`.
        assert_eq!(a.wrapped, [1, 2]);
        assert!(a.health.is_none());
        // The skip mark is gone.
        let ImplItem::Fn(base) = &a.item.items[3] else {
            panic!()
        };
        assert!(base.attrs.is_empty());
    }

    #[test]
    fn every_option_is_read() {
        let a = adapter(quote!(
            name = "billing",
            circuit_breaker(
                failure_threshold = 3,
                success_threshold = 2,
                open_for = "10s",
                window = 20,
                min_calls = 5,
                failure_rate = 0.5,
                half_open_permits = 2,
                slow_call = "1s",
                slow_call_rate = 1,
            ),
            retry = "api",
            timeout = "2s",
            health = "ping",
            optional,
            state = "0",
        ));
        assert_eq!(a.name, "billing");
        assert!(!a.required);
        assert_eq!(
            a.breaker,
            Some(Breaker {
                failure_threshold: Some(3),
                success_threshold: Some(2),
                open_for: Some(Duration::from_secs(10)),
                window: Some(20),
                min_calls: Some(5),
                failure_rate: Some(0.5),
                half_open_permits: Some(2),
                slow_call: Some((Duration::from_secs(1), 1.0)),
            })
        );
        assert!(matches!(a.retry, Retry::Api));
        assert_eq!(a.timeout, Some(Duration::from_secs(2)));
        assert_eq!(a.health.as_ref().unwrap().ident, "ping");
        assert_eq!(a.wrapped, [1]);
        assert!(matches!(a.state, Member::Unnamed(_)));
        let a = adapter(quote!(circuit_breaker, retry = "db", required));
        assert_eq!(a.breaker, Some(Breaker::default()));
        assert!(matches!(a.retry, Retry::Db));
        assert!(a.required);
        let a = adapter(quote!(retry = crate::BILLING));
        assert!(matches!(a.retry, Retry::Path(_)));
        assert_eq!(a.retry_text, "crate::BILLING");
    }

    #[test]
    fn breaker_values_are_checked() {
        assert_eq!(
            option_errors(quote!(circuit_breaker(
                failure_threshold = 0,
                success_threshold = 0,
                half_open_permits = 20000,
                open_for = "0s",
                failure_rate = 1.5,
            ))),
            [
                "`failure_threshold` must be at least 1; it is the number of consecutive failures that opens the breaker",
                "`success_threshold` must be at least 1; it is the number of successful trial calls that closes the breaker",
                "`half_open_permits` is too large; the largest is 10000",
                "`open_for` must be longer than zero; it is how long the breaker rejects calls before trying again",
                "`failure_rate = 1.5` is outside (0, 1]: write the share of calls as a number above 0 and at most 1, such as `failure_rate = 0.5` for half",
            ]
        );
        assert_eq!(
            option_errors(quote!(circuit_breaker(failure_rate = 0))),
            [
                "`failure_rate = 0` is outside (0, 1]: write the share of calls as a number above 0 and at most 1, such as `failure_rate = 0.5` for half"
            ]
        );
    }

    #[test]
    fn breaker_options_that_need_each_other() {
        assert_eq!(
            option_errors(quote!(circuit_breaker(window = 10, min_calls = 5))),
            [
                "`window` has no effect without `failure_rate` or `slow_call_rate`: the window only holds calls to compute rates; add a rate, as in `failure_rate = 0.5`, or remove `window`",
                "`min_calls` has no effect without `failure_rate` or `slow_call_rate`: the window only holds calls to compute rates; add a rate, as in `failure_rate = 0.5`, or remove `min_calls`",
            ]
        );
        assert_eq!(
            option_errors(quote!(circuit_breaker(slow_call = "1s"))),
            [
                "`slow_call` needs `slow_call_rate` too: slow calls trip the breaker when calls slower than `slow_call` reach the share `slow_call_rate`; add `slow_call_rate = 0.5`"
            ]
        );
        assert_eq!(
            option_errors(quote!(circuit_breaker(
                failure_rate = 0.5,
                window = 10,
                min_calls = 20
            ))),
            [
                "`min_calls = 20` exceeds `window = 10`: the window never holds that many calls; lower `min_calls` or raise `window`"
            ]
        );
        assert_eq!(
            option_errors(quote!(circuit_breaker(failure_rate = 0.5, min_calls = 200))),
            [
                "`min_calls = 200` exceeds the default `window` of 100 calls; lower `min_calls` or set `window`"
            ]
        );
    }

    #[test]
    fn other_options_are_checked() {
        assert_eq!(
            option_errors(quote!(
                retry = "exponential",
                timeout = "0ms",
                name = "my billing",
                required,
                optional,
                crate = "not a path",
                state = "not a field"
            )),
            [
                "unknown retry preset `exponential`; expected one of `db`, `api`, `none`; or give a path to a `RetryPolicy`, as in `retry = policies::BILLING`",
                "`timeout` must be longer than zero; leave it out for no time limit",
                "invalid adapter name `my billing`: use only ASCII letters, digits, `_`, `-`, `.` and `:`",
                "`optional` contradicts the earlier `required`; an adapter is one or the other, remove one of them",
                "invalid path `not a path` for `crate`: expected a path to the athyper crate, such as `my_sdk::athyper`",
                "invalid field `not a field` for `state`: expected the name of the field holding the `AdapterState`, such as `state = \"resilience\"`",
            ]
        );
    }

    #[test]
    fn only_inherent_impl_blocks() {
        assert_eq!(
            item_errors(parse_quote!(
                struct Billing;
            )),
            [
                "`#[adapter]` applies to an `impl` block, as in `#[adapter] impl Billing { ... }`, not to a struct"
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn charge() {}
            )),
            [
                "`#[adapter]` applies to an `impl` block, as in `#[adapter] impl Billing { ... }`, not to a function"
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(impl Payments for Billing {})),
            [
                "`#[adapter]` applies to an inherent `impl` block, not to an implementation of `Payments`; put the methods to protect in `impl Billing { ... }`"
            ]
        );
    }

    #[test]
    fn adapter_is_written_once() {
        assert_eq!(
            item_errors(parse_quote!(
                #[athyper::adapter(retry = "db")]
                impl Billing {}
            )),
            [
                "`#[adapter]` is written twice on this `impl` block; keep one, with every option in it"
            ]
        );
    }

    #[test]
    fn wrapped_methods_are_checked() {
        assert_eq!(
            item_errors(parse_quote!(
                impl Billing {
                    fn charge(&self) -> Result<(), String> { Ok(()) }
                    async fn refund(&mut self) -> Result<(), String> { Ok(()) }
                    async fn audit(&self) {}
                    const fn limit(&self) -> u32 { 1 }
                    async unsafe fn raw(self: Box<Self>) -> Result<(), String> { Ok(()) }
                }
            )),
            [
                "an adapter method must be an `async fn`: its calls go through the breaker, retries and timeout; add `async` before `fn`, or mark it `#[adapter(skip)]` to leave it unprotected",
                "an adapter method takes `&self`: its calls may be retried and may run at once, so it cannot take `self` by value, `&mut self` or another `self` type; use interior mutability, or mark it `#[adapter(skip)]` to leave it unprotected",
                "an adapter method must return `Result<T, E>`: the breaker and retries tell success from failure by it; add a return type, as in `-> Result<(), BillingError>`, or mark it `#[adapter(skip)]` to leave it unprotected",
                "an adapter method cannot be a `const fn`; write `async fn limit`, or mark it `#[adapter(skip)]` to leave it unprotected",
                "an adapter method cannot be `unsafe`: protection calls it and cannot uphold a safety contract; remove `unsafe`, or mark it `#[adapter(skip)]` to leave it unprotected",
                "an adapter method takes `&self`: its calls may be retried and may run at once, so it cannot take `self` by value, `&mut self` or another `self` type; use interior mutability, or mark it `#[adapter(skip)]` to leave it unprotected",
            ]
        );
        // `self: &Self` is `&self`.
        let a = check(
            TokenStream::new(),
            parse_quote!(
                impl Billing {
                    async fn charge(self: &Self) -> Result<(), String> { Ok(()) }
                    async fn refund<'a>(self: &'a Self) -> Result<(), String> { Ok(()) }
                }
            ),
        );
        assert_eq!(a.ok().unwrap().wrapped, [0, 1]);
        assert_eq!(
            item_errors(parse_quote!(
                impl Billing {
                    async fn charge(self: &mut Self) -> Result<(), String> { Ok(()) }
                }
            ))
            .len(),
            1
        );
        // Skipped and receiver-less functions are left alone.
        let a = check(
            TokenStream::new(),
            parse_quote!(
                impl Billing {
                    #[adapter(skip)]
                    fn charge(&self) -> u32 { 1 }
                    fn new() -> Self { Billing }
                }
            ),
        );
        assert!(a.ok().unwrap().wrapped.is_empty());
    }

    #[test]
    fn method_marks_are_checked() {
        assert_eq!(
            item_errors(parse_quote!(
                impl Billing {
                    #[adapter(skp)]
                    async fn charge(&self) -> Result<(), String> { Ok(()) }
                    #[adapter]
                    async fn refund(&self) -> Result<(), String> { Ok(()) }
                }
            )),
            [
                "unknown method option `skp`; expected one of `skip`; did you mean `skip`?",
                "write `#[adapter(skip)]` to leave a method unprotected",
            ]
        );
    }

    #[test]
    fn the_health_method_is_checked() {
        assert_eq!(
            option_errors(quote!(health = "pnig")),
            [
                "no method `pnig` in this `impl` block; `health` names a method defined in it, as in `async fn pnig(&self) -> Result<(), E>`; did you mean `ping`?"
            ]
        );
        assert_eq!(
            errors(
                quote!(health = "ping"),
                parse_quote!(
                    impl Billing {
                        fn ping(&self, deep: bool) {}
                    }
                )
            ),
            [
                "the health method `ping` must be an `async fn`, as in `async fn ping(&self) -> Result<(), E>`; add `async` before `fn`",
                "the health method `ping` must take `&self` and nothing else, as in `async fn ping(&self) -> Result<(), E>`",
                "the health method `ping` must return `Result<(), E>` where `E: Display`, as in `async fn ping(&self) -> Result<(), E>`",
            ]
        );
    }
}
