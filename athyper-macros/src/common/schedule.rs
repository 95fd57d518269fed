//! The texts of `rate`, `cron` and `tz`, read at compile time the way the
//! runtime reads them (`RateLimit`'s parser, `Schedule::cron`,
//! `Schedule::in_tz`), so that a mistake is a compile error at the literal
//! rather than an error when the runtime starts. Cron expressions and time
//! zones go through the runtime's own crates, `croner` and `chrono-tz`.

use std::str::FromStr;
use std::time::Duration;

use super::{did_you_mean, parse_duration};

/// How a rate should look, appended to rate errors.
const RATE_EXAMPLES: &str = "write a rate like `100/s`, `10/m`, `5/h` or `20/30s`";

/// `<count>/<window>`: `100/s`, `10/m`, `5/h`, `1/ms`, or any duration as
/// the window (`20/30s`). The count is at least 1.
pub(crate) fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let Some((count, window)) = text.split_once('/') else {
        return Err(format!(
            "malformed rate `{text}` for `rate`: expected `<count>/<window>`; {RATE_EXAMPLES}"
        ));
    };
    let count = count.trim();
    let count = match count.parse::<u64>() {
        Ok(0) => {
            return Err(format!(
                "`rate = \"{text}\"` lets no job start: the count must be at least 1; leave `rate` out for no limit"
            ));
        }
        Ok(n) => u32::try_from(n).map_err(|_| {
            format!(
                "the count of `rate = \"{text}\"` is too large; the largest is {}",
                u32::MAX
            )
        })?,
        Err(_) => {
            return Err(format!(
                "malformed rate `{text}` for `rate`: the count `{count}` is not a whole number; {RATE_EXAMPLES}"
            ));
        }
    };
    let window = match window.trim() {
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3_600),
        // A word alone is a unit that is not one of the four: `/sec`.
        other if !other.starts_with(|c: char| c.is_ascii_digit()) => {
            return Err(format!(
                "unknown window `{other}` in rate `{text}`; write `/ms`, `/s`, `/m`, `/h` or a duration such as `/30s`"
            ));
        }
        other => parse_duration("rate", other)?,
    };
    if window.is_zero() {
        return Err(format!(
            "the window of `rate = \"{text}\"` must be longer than zero; {RATE_EXAMPLES}"
        ));
    }
    Ok((count, window))
}

/// A cron expression of five fields (minute first) or six (seconds
/// first) that matches at least one time, trimmed.
pub(crate) fn parse_cron(text: &str) -> Result<String, String> {
    let expr = text.trim();
    let fields = expr.split_whitespace().count();
    if !(super::runtime::MIN_CRON_FIELDS..=super::runtime::MAX_CRON_FIELDS).contains(&fields) {
        return Err(format!(
            "cron expression `{expr}` has {fields} field{}; write five (minute hour day month weekday), as in `*/5 * * * *`, or six (seconds first), as in `0 */5 * * * *`",
            if fields == 1 { "" } else { "s" }
        ));
    }
    let cron = croner::Cron::from_str(expr).map_err(|error| {
        let error = error.to_string();
        format!(
            "invalid cron expression `{expr}`: {}; the fields are [second] minute hour day month weekday, as in `0 */5 * * * *`",
            error.trim_end_matches('.')
        )
    })?;
    // An expression can be well formed and still name no real time, such
    // as the 30th of February; the runtime would store it and never run it.
    if cron
        .find_next_occurrence(&chrono::Utc::now(), false)
        .is_err()
    {
        return Err(format!(
            "cron expression `{expr}` never fires: no date matches it; check the day and month fields"
        ));
    }
    Ok(expr.to_owned())
}

/// An IANA time zone name, such as `Europe/Berlin`.
pub(crate) fn parse_tz(text: &str) -> Result<String, String> {
    if chrono_tz::Tz::from_str(text).is_ok() {
        return Ok(text.to_owned());
    }
    let lower: Vec<String> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name().to_lowercase())
        .collect();
    let candidates: Vec<&str> = lower.iter().map(String::as_str).collect();
    let suggestion = did_you_mean(text, &candidates)
        .and_then(|close| candidates.iter().position(|c| *c == close))
        .map(|i| format!("; did you mean `{}`?", chrono_tz::TZ_VARIANTS[i].name()))
        .unwrap_or_default();
    Err(format!(
        "unknown time zone `{text}`; write an IANA name such as `Europe/Berlin` or `America/New_York`{suggestion}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_like_the_runtime_reads_them() {
        assert_eq!(parse_rate("100/s"), Ok((100, Duration::from_secs(1))));
        assert_eq!(parse_rate("5 / m"), Ok((5, Duration::from_secs(60))));
        assert_eq!(parse_rate("2/h"), Ok((2, Duration::from_secs(3600))));
        assert_eq!(parse_rate("1/ms"), Ok((1, Duration::from_millis(1))));
        assert_eq!(parse_rate("10/30s"), Ok((10, Duration::from_secs(30))));
        assert_eq!(parse_rate("20/250ms"), Ok((20, Duration::from_millis(250))));
    }

    #[test]
    fn bad_rates_say_what_is_wrong() {
        assert_eq!(
            parse_rate("fast").unwrap_err(),
            "malformed rate `fast` for `rate`: expected `<count>/<window>`; write a rate like `100/s`, `10/m`, `5/h` or `20/30s`"
        );
        assert_eq!(
            parse_rate("0/s").unwrap_err(),
            "`rate = \"0/s\"` lets no job start: the count must be at least 1; leave `rate` out for no limit"
        );
        assert_eq!(
            parse_rate("x/s").unwrap_err(),
            "malformed rate `x/s` for `rate`: the count `x` is not a whole number; write a rate like `100/s`, `10/m`, `5/h` or `20/30s`"
        );
        assert_eq!(
            parse_rate("5000000000/s").unwrap_err(),
            "the count of `rate = \"5000000000/s\"` is too large; the largest is 4294967295"
        );
        assert_eq!(
            parse_rate("5/0s").unwrap_err(),
            "the window of `rate = \"5/0s\"` must be longer than zero; write a rate like `100/s`, `10/m`, `5/h` or `20/30s`"
        );
        assert_eq!(
            parse_rate("5/sec").unwrap_err(),
            "unknown window `sec` in rate `5/sec`; write `/ms`, `/s`, `/m`, `/h` or a duration such as `/30s`"
        );
        assert!(
            parse_rate("5/3 0s")
                .unwrap_err()
                .starts_with("malformed duration `3 0s` for `rate`")
        );
    }

    #[test]
    fn cron_expressions_are_parsed_by_croner() {
        assert_eq!(
            parse_cron(" 0 */5 * * * * ").as_deref(),
            Ok("0 */5 * * * *")
        );
        assert_eq!(parse_cron("*/5 * * * *").as_deref(), Ok("*/5 * * * *"));
        assert_eq!(
            parse_cron("* * *").unwrap_err(),
            "cron expression `* * *` has 3 fields; write five (minute hour day month weekday), as in `*/5 * * * *`, or six (seconds first), as in `0 */5 * * * *`"
        );
        assert_eq!(
            parse_cron("61 * * * *").unwrap_err(),
            "invalid cron expression `61 * * * *`: Component error: Number out of bounds; the fields are [second] minute hour day month weekday, as in `0 */5 * * * *`"
        );
        assert_eq!(
            parse_cron("0 0 0 30 2 *").unwrap_err(),
            "cron expression `0 0 0 30 2 *` never fires: no date matches it; check the day and month fields"
        );
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(parse_tz("Europe/Berlin").as_deref(), Ok("Europe/Berlin"));
        assert_eq!(parse_tz("UTC").as_deref(), Ok("UTC"));
        assert_eq!(
            parse_tz("Europe/Berln").unwrap_err(),
            "unknown time zone `Europe/Berln`; write an IANA name such as `Europe/Berlin` or `America/New_York`; did you mean `Europe/Berlin`?"
        );
        assert!(
            !parse_tz("Mars/Olympus")
                .unwrap_err()
                .contains("did you mean")
        );
    }
}
