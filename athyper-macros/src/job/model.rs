//! What a `#[job(...)]` means: the options checked against each other and
//! the handler's signature checked against what the runtime can call.
//!
//! Everything that can be wrong with an invocation is found here; the
//! expansion that follows has no error paths.

use std::mem;
use std::time::Duration;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::{
    Attribute, Expr, FnArg, Ident, Item, ItemFn, LitInt, LitStr, Path, ReturnType, Signature, Type,
};

use super::args::JobArgs;
use crate::common::runtime::MIN_EVERY_MS;
use crate::common::{
    Errors, NameKind, Part, Setting, checked_name, choose, compact, count, crate_path, describe,
    duration, find_part, is_attribute, parse_cron, parse_duration, parse_rate, parse_tz,
    positive_duration, report, type_text, validate_name,
};

/// A job handler ready to expand.
pub(crate) struct Job {
    /// Where the runtime is: `::athyper` unless `crate = "..."` says otherwise.
    pub(crate) krate: Path,
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) options: Options,
    /// `cron` or `every`, with what goes with them.
    pub(crate) schedule: Option<Scheduled>,
    pub(crate) handler: Handler,
}

/// The schedule a handler declares: the runtime stores it at start.
#[derive(Clone, Debug)]
pub(crate) struct Scheduled {
    pub(crate) when: When,
    /// `catch_up = N`; `None` skips missed ticks.
    pub(crate) catch_up: Option<u32>,
    /// `payload = <expr>`; `None` takes the payload type's `Default`.
    pub(crate) payload: Option<Expr>,
}

/// When a declared schedule fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum When {
    /// `cron = "..."`, with `tz = "..."` or UTC.
    Cron { expr: String, tz: Option<String> },
    /// `every = "..."`.
    Every(Duration),
}

/// The handler's settings that the attribute gives; `None` keeps the
/// runtime's default, which the macro deliberately does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) priority: Option<Priority>,
    pub(crate) attempts: Option<u32>,
    pub(crate) backoff_kind: Option<BackoffKind>,
    pub(crate) backoff: Option<Duration>,
    pub(crate) max_backoff: Option<Duration>,
    pub(crate) jitter: Option<Jitter>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) concurrency: Option<u32>,
    /// `rate = "count/window"`.
    pub(crate) rate: Option<(u32, Duration)>,
    pub(crate) max_deferrals: Option<u32>,
}

/// Mirrors `athyper::queue::Priority`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Priority {
    Critical,
    High,
    Normal,
    Low,
}

/// Mirrors `athyper::resilience::BackoffKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackoffKind {
    Fixed,
    Linear,
    Exponential,
}

/// Mirrors `athyper::resilience::Jitter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Jitter {
    None,
    Full,
    Equal,
}

/// The `retry` option: a backoff kind, or no retry at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    None,
    Backoff(BackoffKind),
}

const PRIORITIES: [(&str, Priority); 4] = [
    ("critical", Priority::Critical),
    ("high", Priority::High),
    ("normal", Priority::Normal),
    ("low", Priority::Low),
];

const RETRIES: [(&str, Retry); 4] = [
    ("none", Retry::None),
    ("fixed", Retry::Backoff(BackoffKind::Fixed)),
    ("linear", Retry::Backoff(BackoffKind::Linear)),
    ("exponential", Retry::Backoff(BackoffKind::Exponential)),
];

const JITTERS: [(&str, Jitter); 3] = [
    ("none", Jitter::None),
    ("full", Jitter::Full),
    ("equal", Jitter::Equal),
];

/// The annotated function, taken apart for the expansion.
pub(crate) struct Handler {
    /// The function as written, minus its attributes (sorted out below).
    pub(crate) item: ItemFn,
    /// `///` comments: they document the handle.
    pub(crate) docs: Vec<Attribute>,
    /// `#[cfg]`s: they apply to every generated item, or a handle would
    /// outlive its function.
    pub(crate) cfgs: Vec<Attribute>,
    /// Everything else (`#[allow]`, `#[tracing::instrument]`, ...): it
    /// belongs to the function body, which moves to the hidden function.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) context: Type,
    pub(crate) payload: Type,
    pub(crate) output: Type,
}

impl Job {
    /// Checks the options and the item, returning every error found.
    pub(crate) fn new(mut args: JobArgs, item: Item) -> Result<Job, Errors> {
        let mut errors = mem::take(&mut args.errors);
        let options = Options::new(&args, &mut errors);
        let schedule = Scheduled::new(&args, &mut errors);
        let queue = match args.queue.key() {
            Some(_) => checked_name(&mut errors, NameKind::Queue, &args.queue),
            None => Some("default".to_owned()),
        };
        let krate = crate_path(&mut errors, &args.krate);
        let (handler, name) = match item {
            Item::Fn(item) => {
                let name = match args.name.key() {
                    Some(_) => checked_name(&mut errors, NameKind::Job, &args.name),
                    None => fn_name(&mut errors, &item.sig.ident),
                };
                (Handler::new(item, &mut errors), name)
            }
            other => {
                not_a_function(&mut errors, &other);
                (None, None)
            }
        };
        match (krate, name, queue, handler) {
            (Some(krate), Some(name), Some(queue), Some(handler)) if errors.is_empty() => Ok(Job {
                krate,
                name,
                queue,
                options,
                schedule,
                handler,
            }),
            _ => Err(errors),
        }
    }
}

impl Options {
    fn new(args: &JobArgs, errors: &mut Errors) -> Options {
        let priority = choose(errors, &args.priority, "priority", &PRIORITIES);
        let retry = choose(errors, &args.retry, "retry strategy", &RETRIES);
        let jitter = choose(errors, &args.jitter, "jitter", &JITTERS);
        let attempts = count(
            errors,
            &args.attempts,
            "attempts",
            u32::MAX,
            "it counts the first run too, so `attempts = 1` runs a job once",
        );
        let concurrency = count(
            errors,
            &args.concurrency,
            "concurrency",
            u32::MAX,
            "leave it out to let the worker's own limit decide",
        );
        let rate = args.rate.value().and_then(|lit| {
            parse_rate(&lit.value())
                .map_err(|message| report(errors, &args.rate, syn::Error::new(lit.span(), message)))
                .ok()
        });
        let max_deferrals = any_count(errors, &args.max_deferrals, "max_deferrals");
        let backoff = duration(errors, &args.backoff, "backoff");
        let max_backoff = duration(errors, &args.max_backoff, "max_backoff");
        let timeout = positive_duration(
            errors,
            &args.timeout,
            "timeout",
            "leave it out for no time limit",
        );

        if let (Some(base), Some(max), Some(base_lit), Some(max_lit)) = (
            backoff,
            max_backoff,
            args.backoff.value(),
            args.max_backoff.value(),
        ) && max < base
        {
            let message = format!(
                "`max_backoff = {:?}` is shorter than `backoff = {:?}`; the cap must be at least the base delay, so raise `max_backoff` or lower `backoff`",
                max_lit.value(),
                base_lit.value(),
            );
            report(
                errors,
                &args.max_backoff,
                syn::Error::new(max_lit.span(), message),
            );
        }
        if retry == Some(Retry::None) {
            let conflicts: [(&dyn Given, bool); 4] = [
                (&args.attempts, attempts.is_some_and(|n| n > 1)),
                (&args.backoff, backoff.is_some()),
                (&args.max_backoff, max_backoff.is_some()),
                (&args.jitter, jitter.is_some()),
            ];
            for (other, _) in conflicts.into_iter().filter(|&(_, conflicts)| conflicts) {
                no_retry_conflict(errors, &args.retry, other);
            }
        }

        let (attempts, backoff_kind) = match retry {
            Some(Retry::None) => (Some(1), None),
            Some(Retry::Backoff(kind)) => (attempts, Some(kind)),
            None => (attempts, None),
        };
        Options {
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
        }
    }
}

/// A count from 0 up, such as `max_deferrals = 0` for never.
fn any_count(errors: &mut Errors, setting: &Setting<LitInt>, key: &str) -> Option<u32> {
    let lit = setting.value()?;
    lit.base10_parse::<u32>()
        .map_err(|_| {
            let message = format!("`{key}` is too large; the largest is {}", u32::MAX);
            report(errors, setting, syn::Error::new(lit.span(), message));
        })
        .ok()
}

impl Scheduled {
    /// `cron` (with `tz`) or `every`, `catch_up` and `payload`, each
    /// checked, and checked against each other: an option that only
    /// belongs with another one is reported when the other is missing.
    fn new(args: &JobArgs, errors: &mut Errors) -> Option<Scheduled> {
        let literal = |errors: &mut Errors,
                       setting: &Setting<LitStr>,
                       parse: &dyn Fn(&str) -> Result<String, String>| {
            let lit = setting.value()?;
            parse(&lit.value())
                .map_err(|message| report(errors, setting, syn::Error::new(lit.span(), message)))
                .ok()
        };
        let cron = literal(errors, &args.cron, &parse_cron);
        let tz = literal(errors, &args.tz, &parse_tz);
        let every = args.every.value().and_then(|lit| {
            let message = match parse_duration("every", &lit.value()) {
                Ok(period) if period.as_millis() >= u128::from(MIN_EVERY_MS) => {
                    return Some(period);
                }
                Ok(_) => format!(
                    "`every = {:?}` is shorter than the shortest period, {}s; schedule it at least a second apart, or run the work in a loop inside one job",
                    lit.value(),
                    MIN_EVERY_MS / 1000
                ),
                Err(message) => message,
            };
            report(errors, &args.every, syn::Error::new(lit.span(), message));
            None
        });
        let catch_up = count(
            errors,
            &args.catch_up,
            "catch_up",
            u32::MAX,
            "leave it out to skip missed ticks, the default",
        );

        let (has_cron, has_every) = (args.cron.key().is_some(), args.every.key().is_some());
        if has_cron && has_every {
            let (later, earlier) = if args.every.position() > args.cron.position() {
                ("every", "cron")
            } else {
                ("cron", "every")
            };
            let setting = if later == "every" {
                &args.every
            } else {
                &args.cron
            };
            misplaced(
                errors,
                setting,
                format!(
                    "`{later}` cannot be given with `{earlier}`: a job has one schedule, either a cron expression or a fixed period; keep one of them"
                ),
            );
        }
        if args.tz.key().is_some() && !has_cron {
            let message = if has_every {
                "`tz` applies to `cron` expressions only: `every` ticks at multiples of its period since the Unix epoch, the same in every zone; remove `tz`"
            } else {
                "`tz` is the time zone of a `cron` expression; add `cron = \"...\"` or remove `tz`"
            };
            misplaced(errors, &args.tz, message.to_owned());
        }
        if !has_cron && !has_every {
            if args.catch_up.key().is_some() {
                misplaced(
                    errors,
                    &args.catch_up,
                    "`catch_up` says how many missed ticks of a schedule run, and this job has none; add `cron = \"...\"` or `every = \"...\"`, or remove `catch_up`".to_owned(),
                );
            }
            if args.payload.key().is_some() {
                misplaced(
                    errors,
                    &args.payload,
                    "`payload` is the payload of each scheduled run, and this job has no schedule; add `cron = \"...\"` or `every = \"...\"`, or remove `payload` and give payloads to `queue.add`".to_owned(),
                );
            }
            return None;
        }
        if args.tz.key().is_some() && tz.is_none() {
            return None;
        }
        let when = match (cron, every) {
            (Some(expr), None) if !has_every => When::Cron { expr, tz },
            (None, Some(period)) if !has_cron => When::Every(period),
            _ => return None,
        };
        Some(Scheduled {
            when,
            catch_up,
            payload: args.payload.value().cloned(),
        })
    }
}

/// Reports an option that does not belong here, over `key = value` as
/// written.
fn misplaced<T: ToTokens>(errors: &mut Errors, setting: &Setting<T>, message: String) {
    let written = Given::written(setting);
    report(errors, setting, syn::Error::new_spanned(written, message));
}

/// A given option, whatever its value type, for contradiction messages.
trait Given {
    fn key(&self) -> Option<&Ident>;
    fn position(&self) -> Option<usize>;
    /// `key = value` as written, to quote and to span.
    fn written(&self) -> TokenStream;
}

impl<T: ToTokens> Given for Setting<T> {
    fn key(&self) -> Option<&Ident> {
        Setting::key(self)
    }

    fn position(&self) -> Option<usize> {
        Setting::position(self)
    }

    fn written(&self) -> TokenStream {
        let key = Setting::key(self);
        let value = self.value();
        quote!(#key = #value)
    }
}

/// Reports `retry = "none"` next to an option that only matters for
/// retries, on whichever of the two was written later: that is the one the
/// user just added and most likely wants to reconsider.
fn no_retry_conflict(errors: &mut Errors, retry: &Setting<LitStr>, other: &dyn Given) {
    let Some(other_key) = other.key().map(IdentExt::unraw) else {
        return;
    };
    let is_attempts = other_key == "attempts";
    let written = other.written().to_string();
    let retry_later = retry.position() > other.position();
    let message = match (retry_later, is_attempts) {
        (false, true) => format!(
            "`{written}` contradicts `retry = \"none\"`, which runs a job once; remove one of them"
        ),
        (false, false) => format!(
            "`{other_key}` has no effect with `retry = \"none\"`, which never retries; remove `{other_key}` or choose another retry strategy"
        ),
        (true, true) => format!(
            "`retry = \"none\"` runs a job once, which contradicts the earlier `{written}`; remove one of them"
        ),
        (true, false) => format!(
            "`retry = \"none\"` never retries, so the earlier `{other_key}` has no effect; remove `{other_key}` or choose another retry strategy"
        ),
    };
    let (later, position) = if retry_later {
        (retry.written(), retry.position())
    } else {
        (other.written(), other.position())
    };
    errors.push_at(
        position.unwrap_or(usize::MAX),
        syn::Error::new_spanned(later, message),
    );
}

/// The job's name when no `name = "..."` is given: the function's, which
/// Rust allows to hold characters the key scheme cannot.
fn fn_name(errors: &mut Errors, ident: &Ident) -> Option<String> {
    let name = ident.unraw().to_string();
    match validate_name(NameKind::Job, &name) {
        Ok(()) => Some(name),
        Err(message) => {
            errors.at(
                ident.span(),
                format!("{message}; the job is named after its function unless you give it a name with `#[job(name = \"...\")]`"),
            );
            None
        }
    }
}

fn not_a_function(errors: &mut Errors, item: &Item) {
    let (what, head) = describe(item);
    errors.spanned(
        head,
        format!("`#[job]` applies to an `async fn`, not to {what}"),
    );
}

/// The start of every message about a handler that is generic in any way.
const GENERIC: &str = "a job handler cannot be generic: the runtime decodes each job's payload into one concrete type";

impl Handler {
    /// Takes the function apart, reporting every way in which the runtime
    /// could not call it. The checks are independent, so that each mistake
    /// is reported whatever else is wrong.
    fn new(mut item: ItemFn, errors: &mut Errors) -> Option<Handler> {
        let before = errors.len();
        check_repeat(&item.attrs, errors);
        check_qualifiers(&item.sig, errors);
        check_generics(&item.sig, errors);
        let arguments = arguments(&item.sig, errors);
        let output = output(&item.sig, errors);
        if errors.len() > before {
            return None;
        }
        let ([context, payload], output) = (arguments?, output?);

        let (mut docs, mut cfgs, mut attrs) = (Vec::new(), Vec::new(), Vec::new());
        for attr in mem::take(&mut item.attrs) {
            if attr.path().is_ident("doc") {
                docs.push(attr);
            } else if attr.path().is_ident("cfg") {
                cfgs.push(attr);
            } else {
                attrs.push(attr);
            }
        }
        Some(Handler {
            item,
            docs,
            cfgs,
            attrs,
            context,
            payload,
            output,
        })
    }
}

/// `#[job]` once: the attribute being expanded is gone from `attrs`, so
/// another one there is written twice.
fn check_repeat(attrs: &[Attribute], errors: &mut Errors) {
    if let Some(repeat) = attrs.iter().find(|attr| is_attribute(attr, "job")) {
        errors.spanned(
            repeat,
            "`#[job]` is written twice on this function; keep one, with every option in it",
        );
    }
}

/// `async` and none of `const`, `unsafe`, `extern`.
fn check_qualifiers(sig: &Signature, errors: &mut Errors) {
    match (sig.constness, sig.asyncness) {
        // `const fn` is almost always a missing `async` too: one message
        // covering both.
        (Some(constness), None) => errors.at(
            constness.span,
            "a job handler cannot be a `const fn`; write `async fn` instead",
        ),
        (Some(constness), Some(_)) => errors.at(
            constness.span,
            "a job handler cannot be `const`; remove `const`",
        ),
        (None, None) => errors.at(
            sig.fn_token.span,
            "a job handler must be an `async fn`; add `async` before `fn`",
        ),
        (None, Some(_)) => {}
    }
    if let Some(unsafety) = sig.unsafety {
        errors.at(
            unsafety.span,
            "a job handler cannot be `unsafe`: the runtime calls it and cannot uphold a safety contract; remove `unsafe` and use `unsafe` blocks inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            "a job handler cannot have an `extern` ABI: the runtime calls it as a Rust function; remove the `extern`",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            "a job handler cannot be variadic; remove the `...`",
        );
    }
}

/// No type or lifetime parameters, no `where` clause, no `impl Trait`
/// arguments.
fn check_generics(sig: &Signature, errors: &mut Errors) {
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            format!("{GENERIC}; remove the generic parameters"),
        );
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.spanned(
            where_clause,
            format!("{GENERIC}; remove the `where` clause"),
        );
    }
    for input in &sig.inputs {
        if let FnArg::Typed(typed) = input
            && let Some(found) = impl_trait(&typed.ty)
        {
            errors.spanned(
                found,
                format!("{GENERIC}; name the type instead of `impl Trait`"),
            );
        }
    }
}

/// The first `impl Trait` in `ty`, at any depth.
fn impl_trait(ty: &Type) -> Option<&Type> {
    find_part(ty, &mut |part| match part {
        Part::Type(ty @ Type::ImplTrait(_)) => Some(ty),
        _ => None,
    })
}

/// Whether `ty` names the context: `JobContext`, by any path, or a
/// reference to it.
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "JobContext"),
        Type::Reference(reference) => is_context(&reference.elem),
        Type::Paren(paren) => is_context(&paren.elem),
        Type::Group(group) => is_context(&group.elem),
        _ => false,
    }
}

/// The context's and the payload's types: two typed arguments, no `self`,
/// both owned.
fn arguments(sig: &Signature, errors: &mut Errors) -> Option<[Type; 2]> {
    let mut typed = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.at(
                receiver.self_token.span,
                "a job handler cannot take `self`; make it a free function, outside any `impl` block",
            ),
            FnArg::Typed(arg) => typed.push(arg),
        }
    }
    let types: Vec<Type> = typed.iter().map(|arg| (*arg.ty).clone()).collect();
    let [context, payload] = match <[Type; 2]>::try_from(types) {
        Ok(types) => types,
        Err(types) => {
            // A handler with nothing to carry still takes a payload.
            let unit = match types.as_slice() {
                [only] if is_context(only) => {
                    "; a job with nothing to carry takes `()`, as in `_payload: ()`"
                }
                _ => "",
            };
            let message = format!(
                "a job handler takes two arguments, the context and the payload, as in `async fn {}(ctx: JobContext, payload: Email)`; this one takes {}{unit}",
                sig.ident,
                types.len()
            );
            if sig.inputs.is_empty() {
                errors.at(sig.paren_token.span.join(), message);
            } else {
                errors.spanned(&sig.inputs, message);
            }
            return None;
        }
    };
    if is_context(&payload) && !is_context(&context) {
        let arg = |i: usize| {
            let arg = &typed[i];
            let pat = compact(&arg.pat.to_token_stream().to_string());
            format!("{pat}: {}", type_text(&arg.ty))
        };
        errors.spanned(
            &sig.inputs,
            format!(
                "the context comes first and the payload second; write `async fn {}({}, {})`",
                sig.ident.unraw(),
                arg(1),
                arg(0)
            ),
        );
        return None;
    }
    let mut owned = true;
    if let Type::Reference(_) = &context {
        errors.spanned(
            &context,
            "take the context by value, as in `ctx: JobContext`: it is cheap to clone",
        );
        owned = false;
    }
    if let Some(message) = borrowed(&payload) {
        errors.spanned(&payload, message);
        owned = false;
    }
    owned.then_some([context, payload])
}

/// Why `payload` is not an owned type, if it is not: a reference, or a
/// lifetime other than `'static`, at any depth.
fn borrowed(payload: &Type) -> Option<String> {
    const OWNED: &str =
        "a job payload must be an owned type, since it is decoded from JSON for every attempt";
    let part = find_part(payload, &mut |part| match part {
        Part::Type(ty @ Type::Reference(_)) => Some(type_text(ty)),
        Part::Lifetime(lifetime) if lifetime.ident != "static" => Some(format!("{lifetime}")),
        _ => None,
    })?;
    let instead = match part.as_str() {
        "&str" => "take `String` rather than `&str`".to_owned(),
        "&[u8]" => "take `Vec<u8>` rather than `&[u8]`".to_owned(),
        reference if reference.starts_with('&') => {
            let owned = reference
                .trim_start_matches('&')
                .trim_start_matches("mut ")
                .trim_start();
            let owned = match owned.split_once(' ') {
                // `&'a T`: drop the lifetime too.
                Some((lifetime, rest)) if lifetime.starts_with('\'') => rest,
                _ => owned,
            };
            format!("take `{owned}` rather than `{reference}`")
        }
        lifetime => format!("use `'static` or an owned type rather than `{lifetime}`"),
    };
    if type_text(payload) == part {
        Some(format!("{OWNED}; {instead}"))
    } else {
        Some(format!(
            "{OWNED}, and `{}` borrows: {instead}",
            type_text(payload)
        ))
    }
}

/// The return type, which must be written: the check that it is
/// `Result<(), E>` is the compiler's, in the expansion.
fn output(sig: &Signature, errors: &mut Errors) -> Option<Type> {
    match &sig.output {
        ReturnType::Type(_, output) => match impl_trait(output) {
            Some(found) => {
                errors.spanned(
                    found,
                    "a job handler cannot return `impl Trait`: the runtime names its result type to keep the error's text; name the type, as in `Result<(), String>`",
                );
                None
            }
            None => Some((**output).clone()),
        },
        ReturnType::Default => {
            errors.spanned(
                sig,
                "a job handler must return `Result<(), E>` where `E: Display`; add a return type, as in `-> Result<(), String>`",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::parse_quote;

    use super::*;

    const HANDLER: &str =
        "async fn send_email(ctx: JobContext, email: Email) -> Result<(), String> {}";

    fn check(args: TokenStream, item: Item) -> Result<Job, Errors> {
        Job::new(syn::parse2(args).expect("args parse"), item)
    }

    fn options(args: TokenStream) -> Options {
        match check(args, syn::parse_str(HANDLER).unwrap()) {
            Ok(job) => job.options,
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
        errors(args, syn::parse_str(HANDLER).unwrap())
    }

    fn item_errors(item: Item) -> Vec<String> {
        errors(TokenStream::new(), item)
    }

    #[test]
    fn no_options_means_runtime_defaults() {
        let job = check(TokenStream::new(), syn::parse_str(HANDLER).unwrap())
            .ok()
            .unwrap();
        assert_eq!(job.name, "send_email");
        assert_eq!(job.queue, "default");
        assert_eq!(job.options, Options::default());
        assert_eq!(job.krate.to_token_stream().to_string(), ":: athyper");
        assert_eq!(job.handler.payload.to_token_stream().to_string(), "Email");
        assert_eq!(
            job.handler.context.to_token_stream().to_string(),
            "JobContext"
        );
        assert_eq!(
            job.handler.output.to_token_stream().to_string(),
            "Result < () , String >"
        );
    }

    #[test]
    fn every_option_is_read() {
        let job = check(
            quote!(
                queue = "emails",
                name = "send-email",
                crate = "sdk::athyper"
            ),
            syn::parse_str(HANDLER).unwrap(),
        )
        .ok()
        .unwrap();
        assert_eq!(
            (job.name.as_str(), job.queue.as_str()),
            ("send-email", "emails")
        );
        assert_eq!(job.krate.to_token_stream().to_string(), "sdk :: athyper");
        assert_eq!(
            options(quote!(
                priority = "critical",
                retry = "fixed",
                attempts = 9,
                backoff = "250ms",
                max_backoff = "1h",
                jitter = "none",
                timeout = "30s",
                concurrency = 3,
            )),
            Options {
                priority: Some(Priority::Critical),
                attempts: Some(9),
                backoff_kind: Some(BackoffKind::Fixed),
                backoff: Some(Duration::from_millis(250)),
                max_backoff: Some(Duration::from_secs(3600)),
                jitter: Some(Jitter::None),
                timeout: Some(Duration::from_secs(30)),
                concurrency: Some(3),
                rate: None,
                max_deferrals: None,
            }
        );
    }

    fn schedule(args: TokenStream) -> Scheduled {
        match check(args, syn::parse_str(HANDLER).unwrap()) {
            Ok(job) => job.schedule.expect("a schedule"),
            Err(errors) => panic!("unexpected errors: {:?}", errors.messages()),
        }
    }

    #[test]
    fn rates_and_deferrals_are_read() {
        let read = options(quote!(rate = "100/s", max_deferrals = 0));
        assert_eq!(read.rate, Some((100, Duration::from_secs(1))));
        assert_eq!(read.max_deferrals, Some(0));
        assert_eq!(
            option_errors(quote!(rate = "0/s", max_deferrals = 4294967296)),
            [
                "`rate = \"0/s\"` lets no job start: the count must be at least 1; leave `rate` out for no limit",
                "`max_deferrals` is too large; the largest is 4294967295",
            ]
        );
    }

    #[test]
    fn schedules_are_read() {
        let cron = schedule(quote!(
            cron = "0 */5 * * * *",
            tz = "Europe/Berlin",
            catch_up = 3
        ));
        assert_eq!(
            cron.when,
            When::Cron {
                expr: "0 */5 * * * *".into(),
                tz: Some("Europe/Berlin".into())
            }
        );
        assert_eq!(cron.catch_up, Some(3));
        assert!(cron.payload.is_none());
        let every = schedule(quote!(every = "30s", payload = Email::weekly()));
        assert_eq!(every.when, When::Every(Duration::from_secs(30)));
        assert_eq!(every.catch_up, None);
        assert!(every.payload.is_some());
        let none = check(quote!(rate = "1/s"), syn::parse_str(HANDLER).unwrap());
        assert!(none.ok().unwrap().schedule.is_none());
    }

    #[test]
    fn schedule_options_must_go_together() {
        assert_eq!(
            option_errors(quote!(cron = "* * * * *", every = "1m")),
            [
                "`every` cannot be given with `cron`: a job has one schedule, either a cron expression or a fixed period; keep one of them"
            ]
        );
        assert_eq!(
            option_errors(quote!(every = "1m", tz = "UTC")),
            [
                "`tz` applies to `cron` expressions only: `every` ticks at multiples of its period since the Unix epoch, the same in every zone; remove `tz`"
            ]
        );
        assert_eq!(
            option_errors(quote!(tz = "UTC", catch_up = 1, payload = Email::weekly())),
            [
                "`tz` is the time zone of a `cron` expression; add `cron = \"...\"` or remove `tz`",
                "`catch_up` says how many missed ticks of a schedule run, and this job has none; add `cron = \"...\"` or `every = \"...\"`, or remove `catch_up`",
                "`payload` is the payload of each scheduled run, and this job has no schedule; add `cron = \"...\"` or `every = \"...\"`, or remove `payload` and give payloads to `queue.add`",
            ]
        );
        // A bad cron expression is one error, not also a `tz` without one.
        assert_eq!(
            option_errors(quote!(
                cron = "* * *",
                tz = "Europe/Berln",
                every = "500ms",
                catch_up = 0
            )),
            [
                "cron expression `* * *` has 3 fields; write five (minute hour day month weekday), as in `*/5 * * * *`, or six (seconds first), as in `0 */5 * * * *`",
                "unknown time zone `Europe/Berln`; write an IANA name such as `Europe/Berlin` or `America/New_York`; did you mean `Europe/Berlin`?",
                "`every = \"500ms\"` is shorter than the shortest period, 1s; schedule it at least a second apart, or run the work in a loop inside one job",
                "`every` cannot be given with `cron`: a job has one schedule, either a cron expression or a fixed period; keep one of them",
                "`catch_up` must be at least 1; leave it out to skip missed ticks, the default",
            ]
        );
    }

    #[test]
    fn no_retry_is_one_attempt() {
        let expected = Options {
            attempts: Some(1),
            ..Options::default()
        };
        assert_eq!(options(quote!(retry = "none")), expected);
        assert_eq!(options(quote!(retry = "none", attempts = 1)), expected);
    }

    #[test]
    fn unknown_words_list_the_valid_ones() {
        assert_eq!(
            option_errors(quote!(priority = "urgent", retry = "expo", jitter = "ful")),
            [
                "unknown priority `urgent`; expected one of `critical`, `high`, `normal`, `low`",
                "unknown retry strategy `expo`; expected one of `none`, `fixed`, `linear`, `exponential`",
                "unknown jitter `ful`; expected one of `none`, `full`, `equal`; did you mean `full`?",
            ]
        );
    }

    #[test]
    fn numbers_and_durations_are_checked() {
        assert_eq!(
            option_errors(quote!(
                attempts = 0,
                concurrency = 0,
                timeout = "0s",
                backoff = "5 sex"
            )),
            [
                "`attempts` must be at least 1; it counts the first run too, so `attempts = 1` runs a job once",
                "`concurrency` must be at least 1; leave it out to let the worker's own limit decide",
                "`timeout` must be longer than zero; leave it out for no time limit",
                "malformed duration `5 sex` for `backoff`: unknown unit `sex`; write durations like `250ms`, `30s`, `5m` or `1h`",
            ]
        );
        assert_eq!(
            option_errors(quote!(attempts = 4294967296)),
            ["`attempts` is too large; the largest is 4294967295"]
        );
    }

    #[test]
    fn the_cap_cannot_be_below_the_base() {
        assert_eq!(
            option_errors(quote!(max_backoff = "1s", backoff = "1m")),
            [
                "`max_backoff = \"1s\"` is shorter than `backoff = \"1m\"`; the cap must be at least the base delay, so raise `max_backoff` or lower `backoff`"
            ]
        );
        // Equal is a fixed delay, which is fine.
        let _ = options(quote!(backoff = "1m", max_backoff = "60s"));
    }

    #[test]
    fn no_retry_contradictions_are_reported_on_the_later_option() {
        assert_eq!(
            option_errors(quote!(retry = "none", attempts = 3)),
            [
                "`attempts = 3` contradicts `retry = \"none\"`, which runs a job once; remove one of them"
            ]
        );
        assert_eq!(
            option_errors(quote!(attempts = 3, retry = "none")),
            [
                "`retry = \"none\"` runs a job once, which contradicts the earlier `attempts = 3`; remove one of them"
            ]
        );
        assert_eq!(
            option_errors(quote!(retry = "none", jitter = "full", max_backoff = "1m")),
            [
                "`jitter` has no effect with `retry = \"none\"`, which never retries; remove `jitter` or choose another retry strategy",
                "`max_backoff` has no effect with `retry = \"none\"`, which never retries; remove `max_backoff` or choose another retry strategy",
            ]
        );
        assert_eq!(
            option_errors(quote!(backoff = "2s", retry = "none")),
            [
                "`retry = \"none\"` never retries, so the earlier `backoff` has no effect; remove `backoff` or choose another retry strategy"
            ]
        );
    }

    #[test]
    fn names_follow_the_runtime_rule() {
        assert_eq!(
            option_errors(quote!(queue = "my emails", name = "")),
            [
                "invalid queue name `my emails`: use only ASCII letters, digits, `_`, `-`, `.` and `:`",
                "invalid job name ``: it is empty",
            ]
        );
        assert_eq!(
            item_errors(parse_quote! {
                async fn envoyer_à(ctx: JobContext, email: Email) -> Result<(), String> {}
            }),
            [
                "invalid job name `envoyer_à`: use only ASCII letters, digits, `_`, `-`, `.` and `:`; the job is named after its function unless you give it a name with `#[job(name = \"...\")]`"
            ]
        );
        // A raw identifier names the job without its `r#`.
        let job = check(
            TokenStream::new(),
            parse_quote!(
                async fn r#type(ctx: JobContext, n: u32) -> Result<(), String> {}
            ),
        );
        assert_eq!(job.ok().unwrap().name, "type");
    }

    #[test]
    fn crate_must_be_a_path() {
        assert_eq!(
            option_errors(quote!(crate = "not a path")),
            [
                "invalid path `not a path` for `crate`: expected a path to the athyper crate, such as `my_sdk::athyper`"
            ]
        );
    }

    #[test]
    fn the_function_must_be_a_plain_async_fn() {
        assert_eq!(
            item_errors(parse_quote!(
                fn f(ctx: JobContext, p: u32) -> Result<(), String> {}
            )),
            ["a job handler must be an `async fn`; add `async` before `fn`"]
        );
        assert_eq!(
            item_errors(parse_quote!(
                const fn f(ctx: JobContext, p: u32) -> Result<(), String> {}
            )),
            ["a job handler cannot be a `const fn`; write `async fn` instead"]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async unsafe extern "C" fn f(ctx: JobContext, p: u32) -> Result<(), String> {}
            )),
            [
                "a job handler cannot be `unsafe`: the runtime calls it and cannot uphold a safety contract; remove `unsafe` and use `unsafe` blocks inside",
                "a job handler cannot have an `extern` ABI: the runtime calls it as a Rust function; remove the `extern`",
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f<T>(ctx: JobContext, p: T) -> Result<(), String> {}
            )),
            [
                "a job handler cannot be generic: the runtime decodes each job's payload into one concrete type; remove the generic parameters"
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(ctx: JobContext, p: impl Send) -> Result<(), String> {}
            )),
            [
                "a job handler cannot be generic: the runtime decodes each job's payload into one concrete type; name the type instead of `impl Trait`"
            ]
        );
    }

    #[test]
    fn the_arguments_are_a_context_and_an_owned_payload() {
        assert_eq!(
            item_errors(parse_quote!(
                async fn f() -> Result<(), String> {}
            )),
            [
                "a job handler takes two arguments, the context and the payload, as in `async fn f(ctx: JobContext, payload: Email)`; this one takes 0"
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(&self, ctx: JobContext, p: u32) -> Result<(), String> {}
            )),
            ["a job handler cannot take `self`; make it a free function, outside any `impl` block"]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(ctx: &JobContext, p: &str) -> Result<(), String> {}
            )),
            [
                "take the context by value, as in `ctx: JobContext`: it is cheap to clone",
                "a job payload must be an owned type, since it is decoded from JSON for every attempt; take `String` rather than `&str`",
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(ctx: JobContext, p: Vec<&str>) -> Result<(), String> {}
            )),
            [
                "a job payload must be an owned type, since it is decoded from JSON for every attempt, and `Vec<&str>` borrows: take `String` rather than `&str`"
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(ctx: JobContext, p: (u8, &'static Email)) -> Result<(), String> {}
            )),
            [
                "a job payload must be an owned type, since it is decoded from JSON for every attempt, and `(u8, &'static Email)` borrows: take `Email` rather than `&'static Email`"
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(ctx: JobContext, p: Cow<'_, str>) -> Result<(), String> {}
            )),
            [
                "a job payload must be an owned type, since it is decoded from JSON for every attempt, and `Cow<'_, str>` borrows: use `'static` or an owned type rather than `'_`"
            ]
        );
        // `'static` borrows nothing.
        let _ = check(
            TokenStream::new(),
            parse_quote!(
                async fn f(ctx: JobContext, p: Cow<'static, str>) -> Result<(), String> {}
            ),
        )
        .ok()
        .unwrap();
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(email: Email, ctx: JobContext) -> Result<(), String> {}
            )),
            [
                "the context comes first and the payload second; write `async fn f(ctx: JobContext, email: Email)`"
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(ctx: JobContext) -> Result<(), String> {}
            )),
            [
                "a job handler takes two arguments, the context and the payload, as in `async fn f(ctx: JobContext, payload: Email)`; this one takes 1; a job with nothing to carry takes `()`, as in `_payload: ()`"
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(ctx: JobContext, p: u32) {}
            )),
            [
                "a job handler must return `Result<(), E>` where `E: Display`; add a return type, as in `-> Result<(), String>`"
            ]
        );
    }

    #[test]
    fn impl_trait_is_named_at_any_depth() {
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(ctx: JobContext, p: u8) -> Result<(), impl Display> {}
            )),
            [
                "a job handler cannot return `impl Trait`: the runtime names its result type to keep the error's text; name the type, as in `Result<(), String>`"
            ]
        );
        assert_eq!(
            item_errors(parse_quote!(
                async fn f(ctx: JobContext, p: Vec<impl Send>) -> Result<(), String> {}
            )),
            [
                "a job handler cannot be generic: the runtime decodes each job's payload into one concrete type; name the type instead of `impl Trait`"
            ]
        );
    }

    #[test]
    fn job_is_written_once() {
        assert_eq!(
            item_errors(parse_quote!(
                #[athyper::job(queue = "emails")]
                async fn f(ctx: JobContext, p: u8) -> Result<(), String> {}
            )),
            ["`#[job]` is written twice on this function; keep one, with every option in it"]
        );
    }

    #[test]
    fn only_functions_are_jobs() {
        assert_eq!(
            item_errors(parse_quote!(
                struct SendEmail;
            )),
            ["`#[job]` applies to an `async fn`, not to a struct"]
        );
        assert_eq!(
            item_errors(parse_quote!(impl SendEmail {})),
            ["`#[job]` applies to an `async fn`, not to an impl block"]
        );
    }

    #[test]
    fn attributes_are_sorted_by_where_they_belong() {
        let job = check(
            TokenStream::new(),
            parse_quote! {
                /// Docs.
                #[cfg(feature = "x")]
                #[allow(unused)]
                async fn f(ctx: JobContext, p: u32) -> Result<(), String> {}
            },
        )
        .ok()
        .unwrap();
        assert_eq!(job.handler.docs.len(), 1);
        assert_eq!(job.handler.cfgs.len(), 1);
        assert_eq!(job.handler.attrs.len(), 1);
        assert!(job.handler.item.attrs.is_empty());
    }

    #[test]
    fn every_error_is_reported_in_source_order() {
        let messages = errors(
            quote!(
                timeout = "soon",
                prority = "high",
                attempts = 0,
                attempts = 2
            ),
            parse_quote!(
                fn f(ctx: JobContext) {}
            ),
        );
        let starts: Vec<&str> = messages
            .iter()
            .map(|m| &m[..m.find(' ').unwrap()])
            .collect();
        assert_eq!(
            starts,
            [
                "malformed",
                "unknown",
                "`attempts`",
                "duplicate",
                "a",
                "a",
                "a"
            ],
            "{messages:#?}"
        );
    }
}
