//! The syntax of `#[job(...)]`: `key = literal` pairs, kept with their
//! spans, read by the option parser both attributes share.
//!
//! This stage knows which keys exist and what form (string or integer) each
//! value takes; what the values mean is the model's business.

use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitInt, LitStr};

use crate::common::{
    Errors, Setting, Value, integer, key_name, one_of, parse_options, string, wrong_form,
};

/// Every option, in the order messages list them.
pub(crate) const KEYS: [&str; 18] = [
    "queue",
    "name",
    "priority",
    "retry",
    "attempts",
    "backoff",
    "max_backoff",
    "jitter",
    "timeout",
    "concurrency",
    "rate",
    "max_deferrals",
    "cron",
    "tz",
    "every",
    "catch_up",
    "payload",
    "crate",
];

/// A well-formed attribute, for messages about malformed ones.
const EXAMPLE: &str = "#[job(queue = \"emails\", attempts = 5)]";

/// The options of one `#[job(...)]`, as written.
#[derive(Default)]
pub(crate) struct JobArgs {
    pub(crate) queue: Setting<LitStr>,
    pub(crate) name: Setting<LitStr>,
    pub(crate) priority: Setting<LitStr>,
    pub(crate) retry: Setting<LitStr>,
    pub(crate) attempts: Setting<LitInt>,
    pub(crate) backoff: Setting<LitStr>,
    pub(crate) max_backoff: Setting<LitStr>,
    pub(crate) jitter: Setting<LitStr>,
    pub(crate) timeout: Setting<LitStr>,
    pub(crate) concurrency: Setting<LitInt>,
    pub(crate) rate: Setting<LitStr>,
    pub(crate) max_deferrals: Setting<LitInt>,
    pub(crate) cron: Setting<LitStr>,
    pub(crate) tz: Setting<LitStr>,
    pub(crate) every: Setting<LitStr>,
    pub(crate) catch_up: Setting<LitInt>,
    /// Any expression: it is evaluated by the generated code, not read by
    /// the macro.
    pub(crate) payload: Setting<Expr>,
    pub(crate) krate: Setting<LitStr>,
    /// Mistakes that spoil one option but not the parse: unknown keys,
    /// repeats, values of the wrong form. Kept here rather than returned so
    /// the model can add its own and the user sees them all at once.
    pub(crate) errors: Errors,
}

impl Parse for JobArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = JobArgs::default();
        let mut errors = Errors::new();
        parse_options(
            input,
            &mut errors,
            EXAMPLE,
            |errors, key, value, position| {
                args.option(errors, &key, value, position);
            },
        );
        args.errors = errors;
        Ok(args)
    }
}

impl JobArgs {
    fn option(&mut self, errors: &mut Errors, key: &Ident, value: Value, position: usize) {
        let name = key_name(key);
        let example = example(&name);
        let text = match name.as_str() {
            "queue" => Some(&mut self.queue),
            "name" => Some(&mut self.name),
            "priority" => Some(&mut self.priority),
            "retry" => Some(&mut self.retry),
            "backoff" => Some(&mut self.backoff),
            "max_backoff" => Some(&mut self.max_backoff),
            "jitter" => Some(&mut self.jitter),
            "timeout" => Some(&mut self.timeout),
            "rate" => Some(&mut self.rate),
            "cron" => Some(&mut self.cron),
            "tz" => Some(&mut self.tz),
            "every" => Some(&mut self.every),
            "crate" => Some(&mut self.krate),
            _ => None,
        };
        if let Some(setting) = text {
            setting.set(errors, key, position, string(&name, value, example, key));
            return;
        }
        if name == "payload" {
            let expr = match value {
                Value::Expr(expr) => Ok(expr),
                other => Err(wrong_form(&name, "an expression", example, &other, key)),
            };
            self.payload.set(errors, key, position, expr);
            return;
        }
        let number = match name.as_str() {
            "attempts" => &mut self.attempts,
            "concurrency" => &mut self.concurrency,
            "max_deferrals" => &mut self.max_deferrals,
            "catch_up" => &mut self.catch_up,
            _ => {
                let error = syn::Error::new(key.span(), one_of("option", &name, &KEYS));
                return errors.push_at(position, error);
            }
        };
        number.set(errors, key, position, integer(&name, value, example, key));
    }
}

/// A typical value of each option, for messages.
fn example(key: &str) -> &'static str {
    match key {
        "queue" => "\"emails\"",
        "name" => "\"send-email\"",
        "priority" => "\"high\"",
        "retry" => "\"exponential\"",
        "attempts" => "5",
        "backoff" => "\"2s\"",
        "max_backoff" => "\"1m\"",
        "jitter" => "\"full\"",
        "timeout" => "\"30s\"",
        "concurrency" => "4",
        "rate" => "\"100/s\"",
        "max_deferrals" => "50",
        "cron" => "\"0 */5 * * * *\"",
        "tz" => "\"Europe/Berlin\"",
        "every" => "\"30s\"",
        "catch_up" => "3",
        "payload" => "Report::daily()",
        "crate" => "\"my_sdk::athyper\"",
        _ => "...",
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn messages(args: &JobArgs) -> Vec<String> {
        args.errors.messages()
    }

    #[test]
    fn parses_every_option() {
        let args: JobArgs = parse_quote!(
            queue = "emails",
            name = "send-email",
            priority = "high",
            retry = "linear",
            attempts = 5,
            backoff = "2s",
            max_backoff = "1m",
            jitter = "full",
            timeout = "30s",
            concurrency = 4,
            crate = "sdk::athyper",
        );
        assert_eq!(messages(&args), Vec::<String>::new());
        let text = |s: &Setting<LitStr>| s.value().map(LitStr::value);
        let int = |s: &Setting<LitInt>| s.value().map(|l| l.base10_digits().to_owned());
        assert_eq!(text(&args.queue).as_deref(), Some("emails"));
        assert_eq!(text(&args.name).as_deref(), Some("send-email"));
        assert_eq!(text(&args.priority).as_deref(), Some("high"));
        assert_eq!(text(&args.retry).as_deref(), Some("linear"));
        assert_eq!(int(&args.attempts).as_deref(), Some("5"));
        assert_eq!(text(&args.backoff).as_deref(), Some("2s"));
        assert_eq!(text(&args.max_backoff).as_deref(), Some("1m"));
        assert_eq!(text(&args.jitter).as_deref(), Some("full"));
        assert_eq!(text(&args.timeout).as_deref(), Some("30s"));
        assert_eq!(int(&args.concurrency).as_deref(), Some("4"));
        assert_eq!(text(&args.krate).as_deref(), Some("sdk::athyper"));
        assert_eq!(args.attempts.position(), Some(4));
    }

    #[test]
    fn every_key_has_a_setter() {
        for key in KEYS {
            let tokens: proc_macro2::TokenStream =
                format!("{key} = {}", example(key)).parse().unwrap();
            let args: JobArgs = syn::parse2(tokens).unwrap();
            assert_eq!(messages(&args), Vec::<String>::new(), "{key}");
        }
    }

    #[test]
    fn parses_the_scheduling_options() {
        let args: JobArgs = parse_quote!(
            rate = "10/30s",
            max_deferrals = 0,
            cron = "0 */5 * * * *",
            tz = "Europe/Berlin",
            catch_up = 2,
            payload = Report::daily(),
        );
        assert_eq!(messages(&args), Vec::<String>::new());
        assert_eq!(
            args.rate.value().map(LitStr::value).as_deref(),
            Some("10/30s")
        );
        assert_eq!(
            args.tz.value().map(LitStr::value).as_deref(),
            Some("Europe/Berlin")
        );
        let payload = args
            .payload
            .value()
            .map(|e| quote::ToTokens::to_token_stream(e).to_string());
        assert_eq!(payload.as_deref(), Some("Report :: daily ()"));
        let args: JobArgs = parse_quote!(payload, every = 30);
        assert_eq!(
            messages(&args),
            [
                "option `payload` needs a value, as in `payload = Report::daily()`",
                "option `every` takes a string, not an integer; write `every = \"30s\"`",
            ]
        );
    }

    #[test]
    fn empty_is_fine() {
        let args: JobArgs = parse_quote!();
        assert!(args.errors.is_empty());
        assert!(args.queue.key().is_none());
    }

    #[test]
    fn unknown_option_lists_keys_and_suggests() {
        let args: JobArgs = parse_quote!(prority = "high");
        assert_eq!(
            messages(&args),
            [
                "unknown option `prority`; expected one of `queue`, `name`, `priority`, `retry`, `attempts`, `backoff`, `max_backoff`, `jitter`, `timeout`, `concurrency`, `rate`, `max_deferrals`, `cron`, `tz`, `every`, `catch_up`, `payload`, `crate`; did you mean `priority`?"
            ]
        );
        let args: JobArgs = parse_quote!(color = "blue");
        assert!(!messages(&args)[0].contains("did you mean"));
    }

    #[test]
    fn reports_every_mistake_and_keeps_going() {
        let args: JobArgs = parse_quote!(
            attempts = "5",
            queue = 7,
            priority = "high",
            priority = "low",
            colour = "red",
            timeout,
            concurrency = -1,
            jitter = JITTER,
            backoff = 1.5,
            retry = "fixed" "x",
            name = "ok",
        );
        assert_eq!(
            messages(&args),
            [
                "option `attempts` takes an integer, not a string; write `attempts = 5`",
                "option `queue` takes a string, not an integer; write `queue = \"emails\"`",
                "duplicate option `priority`; it is already set earlier in this attribute, remove one of them",
                "unknown option `colour`; expected one of `queue`, `name`, `priority`, `retry`, `attempts`, `backoff`, `max_backoff`, `jitter`, `timeout`, `concurrency`, `rate`, `max_deferrals`, `cron`, `tz`, `every`, `catch_up`, `payload`, `crate`",
                "option `timeout` needs a value, as in `timeout = \"30s\"`",
                "option `concurrency` takes an integer, not a negative number; write `concurrency = 4`",
                "option `jitter` takes a string literal: the macro reads it at compile time, so constants cannot be used; write `jitter = \"full\"`",
                "option `backoff` takes a string, not a float; write `backoff = \"2s\"`",
                "expected `,` between options, as in `#[job(queue = \"emails\", attempts = 5)]`",
            ]
        );
        assert_eq!(args.name.value().map(LitStr::value).as_deref(), Some("ok"));
        assert_eq!(
            args.priority.value().map(LitStr::value).as_deref(),
            Some("high")
        );
        assert_eq!(
            args.retry.value().map(LitStr::value).as_deref(),
            Some("fixed")
        );
    }

    #[test]
    fn an_unquoted_word_is_told_to_quote_it() {
        let args: JobArgs = parse_quote!(priority = high, queue = EMAILS);
        assert_eq!(
            messages(&args),
            [
                "option `priority` takes a string; quote the value: `priority = \"high\"`",
                "option `queue` takes a string literal: the macro reads it at compile time, so constants cannot be used; write `queue = \"emails\"`",
            ]
        );
    }

    #[test]
    fn a_string_number_suggests_the_number() {
        let args: JobArgs = parse_quote!(concurrency = "12");
        assert_eq!(
            messages(&args),
            ["option `concurrency` takes an integer, not a string; write `concurrency = 12`"]
        );
    }

    #[test]
    fn not_an_option_at_all() {
        let args: JobArgs = parse_quote!("emails", queue = "ok");
        assert_eq!(
            messages(&args),
            ["expected an option, as in `#[job(queue = \"emails\", attempts = 5)]`"]
        );
        assert_eq!(args.queue.value().map(LitStr::value).as_deref(), Some("ok"));
    }
}
