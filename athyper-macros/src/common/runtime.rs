//! The runtime's limits and defaults that the macros check options
//! against. They are copies, since a procedural macro cannot depend on the
//! crate its expansions use; `athyper`'s test
//! `macro_constants_match_the_runtime` reads them through
//! `__runtime_constants!` and fails when the two drift apart.

use proc_macro2::TokenStream;
use quote::quote;

/// The longest queue, job or adapter name: `athyper::queue::MAX_NAME_LEN`.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// The largest count a breaker option takes:
/// `CircuitBreakerConfig::MAX_COUNT`.
pub(crate) const MAX_COUNT: u32 = 10_000;

/// The breaker's window when `window` is not given, for checking
/// `min_calls` alone: `CircuitBreakerConfig::DEFAULT.window()`.
pub(crate) const DEFAULT_WINDOW: u32 = 100;

/// The fewest and most fields of a cron expression:
/// `athyper::queue::schedule::CRON_FIELDS`.
pub(crate) const MIN_CRON_FIELDS: usize = 5;
pub(crate) const MAX_CRON_FIELDS: usize = 6;

/// The shortest period of `every`, in milliseconds:
/// `athyper::queue::schedule::MIN_PERIOD`.
pub(crate) const MIN_EVERY_MS: u64 = 1_000;

/// Every constant above, by name, as `[(&str, u64); N]`.
pub(crate) fn exported() -> TokenStream {
    let entries = [
        ("MAX_NAME_LEN", MAX_NAME_LEN as u64),
        ("MAX_COUNT", u64::from(MAX_COUNT)),
        ("DEFAULT_WINDOW", u64::from(DEFAULT_WINDOW)),
        ("MIN_CRON_FIELDS", MIN_CRON_FIELDS as u64),
        ("MAX_CRON_FIELDS", MAX_CRON_FIELDS as u64),
        ("MIN_EVERY_MS", MIN_EVERY_MS),
    ];
    let entries = entries.iter().map(|(name, value)| quote!((#name, #value)));
    quote!([#(#entries),*])
}
