//! Pieces both attribute macros share: the option parser and the forms of
//! values, the error collector, the duplicate-aware option setter, the
//! checks of option values that must agree with the runtime's (durations,
//! names, counts), suggestions, and describing items and types in
//! messages.

mod checks;
mod duration;
mod errors;
mod item;
mod names;
pub(crate) mod runtime;
mod schedule;
mod setting;
mod suggest;
mod tokens;
mod values;

pub(crate) use self::checks::{
    checked_name, choose, count, crate_path, duration, positive_duration, rate, report,
};
pub(crate) use self::duration::parse_duration;
pub(crate) use self::errors::Errors;
pub(crate) use self::item::{Part, compact, describe, find_part, is_attribute, type_text};
pub(crate) use self::names::{NameKind, validate_name};
pub(crate) use self::schedule::{parse_cron, parse_rate, parse_tz};
pub(crate) use self::setting::Setting;
pub(crate) use self::suggest::{did_you_mean, one_of};
pub(crate) use self::tokens::{millis, respan};
pub(crate) use self::values::{
    Value, flag, idents, integer, key_name, number, parse_nested, parse_options, string,
    unquoted_word, wrong_form,
};
