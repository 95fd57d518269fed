//! What option values mean, for both attributes: counts, durations, rates,
//! names, words from a fixed list and the `crate` path. Each check reports
//! at the value's token, filed under the option's position so that errors
//! read in source order.

use std::time::Duration;

use syn::{Lit, LitInt, LitStr};

use super::{Errors, NameKind, Setting, one_of, parse_duration, validate_name};

/// Files an error about `setting` under its position, so that it reads in
/// source order among the others.
pub(crate) fn report<T>(errors: &mut Errors, setting: &Setting<T>, error: syn::Error) {
    errors.push_at(setting.position().unwrap_or(usize::MAX), error);
}

/// A count from 1 to `max`; the message for 0 ends with `zero_hint`.
pub(crate) fn count(
    errors: &mut Errors,
    setting: &Setting<LitInt>,
    key: &str,
    max: u32,
    zero_hint: &str,
) -> Option<u32> {
    let lit = setting.value()?;
    let message = match lit.base10_parse::<u32>() {
        Ok(0) => format!("`{key}` must be at least 1; {zero_hint}"),
        Ok(n) if n <= max => return Some(n),
        _ => format!("`{key}` is too large; the largest is {max}"),
    };
    report(errors, setting, syn::Error::new(lit.span(), message));
    None
}

/// A duration, zero included.
pub(crate) fn duration(
    errors: &mut Errors,
    setting: &Setting<LitStr>,
    key: &str,
) -> Option<Duration> {
    let lit = setting.value()?;
    parse_duration(key, &lit.value())
        .map_err(|message| report(errors, setting, syn::Error::new(lit.span(), message)))
        .ok()
}

/// A duration longer than zero.
pub(crate) fn positive_duration(
    errors: &mut Errors,
    setting: &Setting<LitStr>,
    key: &str,
    zero_hint: &str,
) -> Option<Duration> {
    let lit = setting.value()?;
    let message = match parse_duration(key, &lit.value()) {
        Ok(d) if d.is_zero() => format!("`{key}` must be longer than zero; {zero_hint}"),
        Ok(d) => return Some(d),
        Err(message) => message,
    };
    report(errors, setting, syn::Error::new(lit.span(), message));
    None
}

/// A rate in `(0, 1]`.
pub(crate) fn rate(errors: &mut Errors, setting: &Setting<Lit>, key: &str) -> Option<f64> {
    let lit = setting.value()?;
    let value = match lit {
        Lit::Float(f) => f.base10_parse::<f64>().ok(),
        Lit::Int(i) => i.base10_parse::<u32>().ok().map(f64::from),
        _ => None,
    };
    match value {
        Some(r) if r > 0.0 && r <= 1.0 => Some(r),
        _ => {
            let written = quote::ToTokens::to_token_stream(lit).to_string();
            report(
                errors,
                setting,
                syn::Error::new(
                    lit.span(),
                    format!(
                        "`{key} = {written}` is outside (0, 1]: write the share of calls as a number above 0 and at most 1, such as `{key} = 0.5` for half"
                    ),
                ),
            );
            None
        }
    }
}

/// One of `choices`, by its lowercase name.
pub(crate) fn choose<T: Copy>(
    errors: &mut Errors,
    setting: &Setting<LitStr>,
    what: &str,
    choices: &[(&str, T)],
) -> Option<T> {
    let lit = setting.value()?;
    let text = lit.value();
    if let Some(&(_, choice)) = choices.iter().find(|(name, _)| *name == text) {
        return Some(choice);
    }
    let names: Vec<&str> = choices.iter().map(|&(name, _)| name).collect();
    report(
        errors,
        setting,
        syn::Error::new(lit.span(), one_of(what, &text, &names)),
    );
    None
}

/// A queue, job or adapter name given with `queue = "..."` or
/// `name = "..."`, by the runtime's rule.
pub(crate) fn checked_name(
    errors: &mut Errors,
    kind: NameKind,
    setting: &Setting<LitStr>,
) -> Option<String> {
    let lit = setting.value()?;
    let name = lit.value();
    match validate_name(kind, &name) {
        Ok(()) => Some(name),
        Err(message) => {
            report(errors, setting, syn::Error::new(lit.span(), message));
            None
        }
    }
}

/// A path to a crate, from `crate = "..."`; `::athyper` when not given.
pub(crate) fn crate_path(errors: &mut Errors, setting: &Setting<LitStr>) -> Option<syn::Path> {
    if setting.key().is_none() {
        return Some(syn::parse_quote!(::athyper));
    }
    let lit = setting.value()?;
    // Parsed from the literal, so the path's tokens carry its span and a
    // wrong path is reported there.
    let path = lit.parse_with(syn::Path::parse_mod_style).ok();
    if path.is_none() {
        let message = format!(
            "invalid path `{}` for `crate`: expected a path to the athyper crate, such as `my_sdk::athyper`",
            lit.value()
        );
        report(errors, setting, syn::Error::new(lit.span(), message));
    }
    path
}
