//! Pieces every attribute macro of the crate shares: the error collector,
//! the duplicate-aware option setter, and the checks of option values that
//! must agree with the runtime's (durations, names) or that make messages
//! friendlier (suggestions).

mod duration;
mod errors;
mod names;
mod setting;
mod suggest;
mod tokens;
mod values;

pub(crate) use self::duration::parse_duration;
pub(crate) use self::errors::Errors;
pub(crate) use self::names::{NameKind, validate_name};
pub(crate) use self::setting::Setting;
pub(crate) use self::suggest::{did_you_mean, one_of};
pub(crate) use self::tokens::respan;
pub(crate) use self::values::{
    Value, count, crate_path, flag, idents, integer, key_name, number, parse_nested, parse_options,
    positive_duration, rate, report, string, wrong_expr,
};
