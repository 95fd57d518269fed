//! The syntax of `#[adapter(...)]`: bare flags, `key = value` pairs and the
//! nested `circuit_breaker(...)`, kept with their spans.
//!
//! This stage knows which keys exist and what form each value takes; what
//! the values mean is the model's business.

use syn::{Expr, ExprLit, ExprPath, Ident, Lit, LitInt, LitStr, Path};

use crate::common::{
    Errors, Setting, Value, flag, integer, key_name, number, one_of, parse_nested, parse_options,
    string, unquoted_word,
};

/// Every option, in the order messages list them.
pub(crate) const KEYS: [&str; 9] = [
    "name",
    "circuit_breaker",
    "retry",
    "timeout",
    "health",
    "required",
    "optional",
    "state",
    "crate",
];

/// Every option of `circuit_breaker(...)`.
pub(crate) const BREAKER_KEYS: [&str; 9] = [
    "failure_threshold",
    "success_threshold",
    "open_for",
    "window",
    "min_calls",
    "failure_rate",
    "half_open_permits",
    "slow_call",
    "slow_call_rate",
];

const EXAMPLE: &str = "#[adapter(name = \"billing\", circuit_breaker, retry = \"api\")]";
const BREAKER_EXAMPLE: &str = "circuit_breaker(failure_threshold = 5, open_for = \"30s\")";

/// The `retry` option as written.
pub(crate) enum RetryArg {
    /// `retry = "db"`.
    Preset(LitStr),
    /// `retry = path::TO_POLICY`.
    Path(Path),
}

/// The options of one `#[adapter(...)]`, as written.
#[derive(Default)]
pub(crate) struct AdapterArgs {
    pub(crate) name: Setting<LitStr>,
    pub(crate) circuit_breaker: Setting<BreakerArgs>,
    pub(crate) retry: Setting<RetryArg>,
    pub(crate) timeout: Setting<LitStr>,
    pub(crate) health: Setting<LitStr>,
    pub(crate) required: Setting<Ident>,
    pub(crate) optional: Setting<Ident>,
    pub(crate) state: Setting<LitStr>,
    pub(crate) krate: Setting<LitStr>,
    /// Mistakes that spoil one option but not the parse, kept so the model
    /// can add its own and the user sees them all at once.
    pub(crate) errors: Errors,
}

/// The options of `circuit_breaker(...)`, as written; all absent for a
/// bare `circuit_breaker`.
#[derive(Default)]
pub(crate) struct BreakerArgs {
    pub(crate) failure_threshold: Setting<LitInt>,
    pub(crate) success_threshold: Setting<LitInt>,
    pub(crate) open_for: Setting<LitStr>,
    pub(crate) window: Setting<LitInt>,
    pub(crate) min_calls: Setting<LitInt>,
    pub(crate) failure_rate: Setting<Lit>,
    pub(crate) half_open_permits: Setting<LitInt>,
    pub(crate) slow_call: Setting<LitStr>,
    pub(crate) slow_call_rate: Setting<Lit>,
}

impl syn::parse::Parse for AdapterArgs {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let mut args = AdapterArgs::default();
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

/// A typical value of each option, for messages.
pub(crate) fn example(key: &str) -> &'static str {
    match key {
        "name" => "\"billing\"",
        "retry" => "\"api\"",
        "timeout" => "\"2s\"",
        "health" => "\"ping\"",
        "state" => "\"resilience\"",
        "crate" => "\"my_sdk::athyper\"",
        "failure_threshold" => "5",
        "success_threshold" => "2",
        "open_for" => "\"30s\"",
        "window" => "20",
        "min_calls" => "10",
        "failure_rate" => "0.5",
        "half_open_permits" => "1",
        "slow_call" => "\"2s\"",
        "slow_call_rate" => "0.5",
        _ => "...",
    }
}

impl AdapterArgs {
    fn option(&mut self, errors: &mut Errors, key: &Ident, value: Value, position: usize) {
        let name = key_name(key);
        let text = match name.as_str() {
            "name" => Some(&mut self.name),
            "timeout" => Some(&mut self.timeout),
            "health" => Some(&mut self.health),
            "state" => Some(&mut self.state),
            "crate" => Some(&mut self.krate),
            _ => None,
        };
        if let Some(setting) = text {
            let parsed = string(&name, value, example(&name), key);
            setting.set(errors, key, position, parsed);
            return;
        }
        match name.as_str() {
            "required" | "optional" => {
                let setting = if name == "required" {
                    &mut self.required
                } else {
                    &mut self.optional
                };
                let hint = "write `required` or `optional` alone";
                setting.set(errors, key, position, flag(&name, value, hint, key));
            }
            "retry" => {
                let parsed = retry(value, key);
                self.retry.set(errors, key, position, parsed);
            }
            "circuit_breaker" => {
                let parsed = match value {
                    Value::Flag => Ok(BreakerArgs::default()),
                    Value::List(tokens) => {
                        let mut breaker = BreakerArgs::default();
                        parse_nested(
                            tokens,
                            errors,
                            position,
                            BREAKER_EXAMPLE,
                            |errors, key, value| {
                                breaker.option(errors, &key, value, position);
                            },
                        );
                        Ok(breaker)
                    }
                    Value::Expr(expr) => Err(syn::Error::new_spanned(
                        expr,
                        format!(
                            "option `circuit_breaker` takes no value; write `circuit_breaker` for the defaults, or `{BREAKER_EXAMPLE}`"
                        ),
                    )),
                };
                self.circuit_breaker.set(errors, key, position, parsed);
            }
            _ => errors.push_at(
                position,
                syn::Error::new(key.span(), one_of("option", &name, &KEYS)),
            ),
        }
    }
}

impl BreakerArgs {
    fn option(&mut self, errors: &mut Errors, key: &Ident, value: Value, position: usize) {
        let name = key_name(key);
        let example = example(&name);
        let counts = match name.as_str() {
            "failure_threshold" => Some(&mut self.failure_threshold),
            "success_threshold" => Some(&mut self.success_threshold),
            "window" => Some(&mut self.window),
            "min_calls" => Some(&mut self.min_calls),
            "half_open_permits" => Some(&mut self.half_open_permits),
            _ => None,
        };
        if let Some(setting) = counts {
            setting.set(errors, key, position, integer(&name, value, example, key));
            return;
        }
        match name.as_str() {
            "open_for" | "slow_call" => {
                let setting = if name == "open_for" {
                    &mut self.open_for
                } else {
                    &mut self.slow_call
                };
                setting.set(errors, key, position, string(&name, value, example, key));
            }
            "failure_rate" | "slow_call_rate" => {
                let setting = if name == "failure_rate" {
                    &mut self.failure_rate
                } else {
                    &mut self.slow_call_rate
                };
                setting.set(errors, key, position, number(&name, value, example, key));
            }
            _ => errors.push_at(
                position,
                syn::Error::new(
                    key.span(),
                    one_of("`circuit_breaker` option", &name, &BREAKER_KEYS),
                ),
            ),
        }
    }
}

/// The retry presets, written as strings.
pub(crate) const PRESETS: [&str; 3] = ["db", "api", "none"];

fn retry(value: Value, key: &Ident) -> syn::Result<RetryArg> {
    match value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) => Ok(RetryArg::Preset(lit)),
        // `retry = db`: a preset without its quotes, not a policy constant.
        Value::Expr(Expr::Path(path))
            if unquoted_word(&path).is_some_and(|word| PRESETS.contains(&word.as_str())) =>
        {
            let word = unquoted_word(&path).unwrap_or_default();
            Err(syn::Error::new_spanned(
                path,
                format!("the retry preset `{word}` is a string; quote it: `retry = \"{word}\"`"),
            ))
        }
        Value::Expr(Expr::Path(ExprPath {
            qself: None, path, ..
        })) => Ok(RetryArg::Path(path)),
        Value::Flag => Err(syn::Error::new(
            key.span(),
            "option `retry` needs a value: `retry = \"db\"`, `retry = \"api\"`, `retry = \"none\"` or a path to a `RetryPolicy`, as in `retry = policies::BILLING`",
        )),
        Value::Expr(other) => Err(syn::Error::new_spanned(
            other,
            "option `retry` takes `\"db\"`, `\"api\"`, `\"none\"` or a path to a `RetryPolicy` constant or static, as in `retry = policies::BILLING`",
        )),
        Value::List(_) => Err(syn::Error::new(
            key.span(),
            "option `retry` takes a value, not a list: `retry = \"db\"`, `retry = \"api\"`, `retry = \"none\"` or a path to a `RetryPolicy`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use quote::ToTokens;
    use syn::parse_quote;

    use super::*;

    fn messages(args: &AdapterArgs) -> Vec<String> {
        args.errors.messages()
    }

    #[test]
    fn parses_every_option() {
        let args: AdapterArgs = parse_quote!(
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
            state = "protection",
            crate = "sdk::athyper",
        );
        assert_eq!(messages(&args), Vec::<String>::new());
        let text = |s: &Setting<LitStr>| s.value().map(LitStr::value);
        assert_eq!(text(&args.name).as_deref(), Some("billing"));
        assert_eq!(text(&args.timeout).as_deref(), Some("2s"));
        assert_eq!(text(&args.health).as_deref(), Some("ping"));
        assert_eq!(text(&args.state).as_deref(), Some("protection"));
        assert_eq!(text(&args.krate).as_deref(), Some("sdk::athyper"));
        assert!(args.optional.value().is_some());
        assert!(args.required.key().is_none());
        assert!(matches!(args.retry.value(), Some(RetryArg::Preset(l)) if l.value() == "api"));
        let b = args.circuit_breaker.value().unwrap();
        let int = |s: &Setting<LitInt>| s.value().map(|l| l.base10_digits().to_owned());
        assert_eq!(int(&b.failure_threshold).as_deref(), Some("3"));
        assert_eq!(int(&b.success_threshold).as_deref(), Some("2"));
        assert_eq!(int(&b.window).as_deref(), Some("20"));
        assert_eq!(int(&b.min_calls).as_deref(), Some("5"));
        assert_eq!(int(&b.half_open_permits).as_deref(), Some("2"));
        assert_eq!(text(&b.open_for).as_deref(), Some("10s"));
        assert_eq!(text(&b.slow_call).as_deref(), Some("1s"));
        let lit = |s: &Setting<Lit>| s.value().map(|l| l.to_token_stream().to_string());
        assert_eq!(lit(&b.failure_rate).as_deref(), Some("0.5"));
        assert_eq!(lit(&b.slow_call_rate).as_deref(), Some("1"));
    }

    #[test]
    fn bare_breaker_and_retry_path() {
        let args: AdapterArgs = parse_quote!(circuit_breaker, retry = crate::policies::BILLING);
        assert_eq!(messages(&args), Vec::<String>::new());
        assert!(args.circuit_breaker.value().is_some());
        match args.retry.value() {
            Some(RetryArg::Path(path)) => assert_eq!(
                path.to_token_stream().to_string(),
                "crate :: policies :: BILLING"
            ),
            _ => panic!("expected a path"),
        }
    }

    #[test]
    fn every_key_has_a_setter() {
        for key in KEYS {
            let tokens: proc_macro2::TokenStream = match key {
                "required" | "optional" | "circuit_breaker" => key.parse().unwrap(),
                _ => format!("{key} = {}", example(key)).parse().unwrap(),
            };
            let args: AdapterArgs = syn::parse2(tokens).unwrap();
            assert_eq!(messages(&args), Vec::<String>::new(), "{key}");
        }
        for key in BREAKER_KEYS {
            let tokens: proc_macro2::TokenStream =
                format!("circuit_breaker({key} = {})", example(key))
                    .parse()
                    .unwrap();
            let args: AdapterArgs = syn::parse2(tokens).unwrap();
            assert_eq!(messages(&args), Vec::<String>::new(), "{key}");
        }
    }

    #[test]
    fn reports_every_mistake_and_keeps_going() {
        let args: AdapterArgs = parse_quote!(
            nmae = "billing",
            retry = "db",
            retry = "api",
            timeout = 2,
            required = true,
            circuit_breaker = true,
            health,
            circuit_breaker(failure_treshold = 5, window = "20", failure_rate = "half"),
            retry = 1 + 1,
            name = "ok",
        );
        assert_eq!(
            messages(&args),
            [
                "unknown option `nmae`; expected one of `name`, `circuit_breaker`, `retry`, `timeout`, `health`, `required`, `optional`, `state`, `crate`; did you mean `name`?",
                "duplicate option `retry`; it is already set earlier in this attribute, remove one of them",
                "option `timeout` takes a string, not an integer; write `timeout = \"2s\"`",
                "option `required` takes no value; write `required` or `optional` alone",
                "option `circuit_breaker` takes no value; write `circuit_breaker` for the defaults, or `circuit_breaker(failure_threshold = 5, open_for = \"30s\")`",
                "option `health` needs a value, as in `health = \"ping\"`",
                "unknown `circuit_breaker` option `failure_treshold`; expected one of `failure_threshold`, `success_threshold`, `open_for`, `window`, `min_calls`, `failure_rate`, `half_open_permits`, `slow_call`, `slow_call_rate`; did you mean `failure_threshold`?",
                "option `window` takes an integer, not a string; write `window = 20`",
                "option `failure_rate` takes a number, not a string; write `failure_rate = 0.5`",
                "duplicate option `circuit_breaker`; it is already set earlier in this attribute, remove one of them",
                "duplicate option `retry`; it is already set earlier in this attribute, remove one of them",
            ]
        );
        assert_eq!(args.name.value().map(LitStr::value).as_deref(), Some("ok"));
    }

    #[test]
    fn an_unquoted_preset_is_told_to_quote_it() {
        let args: AdapterArgs = parse_quote!(retry = db);
        assert_eq!(
            messages(&args),
            ["the retry preset `db` is a string; quote it: `retry = \"db\"`"]
        );
        // A constant is a policy.
        let args: AdapterArgs = parse_quote!(retry = DB);
        assert!(messages(&args).is_empty());
    }

    #[test]
    fn not_an_option_at_all() {
        let args: AdapterArgs = parse_quote!("billing", name = "ok");
        assert_eq!(
            messages(&args),
            [
                "expected an option, as in `#[adapter(name = \"billing\", circuit_breaker, retry = \"api\")]`"
            ]
        );
        assert_eq!(args.name.value().map(LitStr::value).as_deref(), Some("ok"));
    }
}
