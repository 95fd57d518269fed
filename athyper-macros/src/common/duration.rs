use std::time::Duration;

use humantime::DurationError;

/// How a duration should look, appended to every duration error.
const EXAMPLES: &str = "write durations like `250ms`, `30s`, `5m` or `1h`";

/// The longest duration an option takes. No backoff, timeout or breaker
/// delay needs more; a longer one is a typo (`"30d"` for `"30s"`), and
/// rejecting it keeps delay arithmetic far from overflow.
const MAX: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Units humantime reads as months or years: never meant here, and `M`
/// is a slip of the shift key for minutes.
const CALENDAR_UNITS: [&str; 8] = ["M", "month", "months", "y", "yr", "yrs", "year", "years"];

/// Parses a duration option's text (`"250ms"`, `"30s"`, `"5m"`, `"1h"`) the
/// way the runtime parses durations from the environment, with humantime.
///
/// The runtime keeps delays in whole milliseconds (they are stored with
/// every job), so finer durations are rejected rather than rounded.
pub(crate) fn parse_duration(option: &str, text: &str) -> Result<Duration, String> {
    let malformed = |reason: String| {
        format!("malformed duration `{text}` for `{option}`: {reason}; {EXAMPLES}")
    };
    // humantime skips spaces between digits, so `1 0s` would be ten
    // seconds.
    if let Some(joined) = split_digits(text) {
        return Err(malformed(format!(
            "its digits are split by a space; write `{joined}` if that is the number you mean"
        )));
    }
    if let Some(unit) = units(text).find(|unit| CALENDAR_UNITS.contains(unit)) {
        let reason = if unit == "M" {
            "`M` means months; write `m` for minutes, as in `5m`".to_owned()
        } else {
            format!("`{unit}` is a calendar unit, longer than any delay here needs")
        };
        return Err(format!(
            "duration `{text}` for `{option}` is in months or years: {reason}; {EXAMPLES}"
        ));
    }
    let duration = humantime::parse_duration(text).map_err(|error| {
        malformed(match error {
            DurationError::Empty => "it is empty".to_owned(),
            DurationError::UnknownUnit { unit, value, .. } if unit.is_empty() => {
                format!("`{value}` needs a unit, e.g. `{value}s`")
            }
            DurationError::UnknownUnit { unit, .. } => format!("unknown unit `{unit}`"),
            DurationError::InvalidCharacter(at) => {
                match text.get(at..).and_then(|rest| rest.chars().next()) {
                    Some(found) => format!("unexpected character `{found}`"),
                    None => "unexpected character".to_owned(),
                }
            }
            DurationError::NumberExpected(at) => {
                format!(
                    "expected a number before `{}`",
                    text.get(at..).unwrap_or_default()
                )
            }
            DurationError::NumberOverflow => "it is too large".to_owned(),
        })
    })?;
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(malformed(
            "delays are kept in whole milliseconds".to_owned(),
        ));
    }
    if duration > MAX {
        return Err(format!(
            "duration `{text}` for `{option}` is longer than a week (`7d`), the longest allowed: no backoff, timeout or breaker delay needs more, so check it for a typo"
        ));
    }
    Ok(duration)
}

/// `text` with the spaces removed from between its digits, if any digit is
/// followed by spaces and another digit.
fn split_digits(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut split = false;
    let mut joined = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c.is_whitespace() {
            let before = chars[..i].iter().rev().find(|c| !c.is_whitespace());
            let after = chars[i..].iter().find(|c| !c.is_whitespace());
            if before.is_some_and(char::is_ascii_digit) && after.is_some_and(char::is_ascii_digit) {
                split = true;
                continue;
            }
        }
        joined.push(c);
    }
    split.then_some(joined)
}

/// The unit words of `text`: its runs of letters.
fn units(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|word| !word.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(
            parse_duration("backoff", "250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("backoff", "30s"),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            parse_duration("backoff", "5m"),
            Ok(Duration::from_secs(300))
        );
        assert_eq!(
            parse_duration("backoff", "1h 30m"),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(parse_duration("timeout", "0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn explains_what_is_wrong() {
        let err = |text| parse_duration("backoff", text).unwrap_err();
        assert_eq!(
            err("5 sex"),
            "malformed duration `5 sex` for `backoff`: unknown unit `sex`; write durations like `250ms`, `30s`, `5m` or `1h`"
        );
        assert!(
            err("30").contains("`30` needs a unit, e.g. `30s`"),
            "{}",
            err("30")
        );
        assert!(err("").contains("it is empty"), "{}", err(""));
        assert!(
            err("1,5s").contains("unexpected character `,`"),
            "{}",
            err("1,5s")
        );
        assert!(
            err("ms").contains("expected a number before `ms`"),
            "{}",
            err("ms")
        );
        assert!(
            err("1500us").contains("whole milliseconds"),
            "{}",
            err("1500us")
        );
        assert!(err("99999999999999999999s").contains("too large"));
    }

    #[test]
    fn rejects_what_is_almost_certainly_a_typo() {
        let err = |text| parse_duration("timeout", text).unwrap_err();
        assert_eq!(
            err("5M"),
            "duration `5M` for `timeout` is in months or years: `M` means months; write `m` for minutes, as in `5m`; write durations like `250ms`, `30s`, `5m` or `1h`"
        );
        assert!(
            err("1 year").contains("`year` is a calendar unit"),
            "{}",
            err("1 year")
        );
        assert!(err("2months").contains("months or years"));
        assert_eq!(
            err("30d"),
            "duration `30d` for `timeout` is longer than a week (`7d`), the longest allowed: no backoff, timeout or breaker delay needs more, so check it for a typo"
        );
        assert!(err("99999999999999999s").contains("longer than a week"));
        assert_eq!(
            err("1 0s"),
            "malformed duration `1 0s` for `timeout`: its digits are split by a space; write `10s` if that is the number you mean; write durations like `250ms`, `30s`, `5m` or `1h`"
        );
        assert!(
            err("1 000 ms").contains("write `1000 ms`"),
            "{}",
            err("1 000 ms")
        );
        // A week is fine, and so are spaces between a number and its unit
        // or between parts.
        assert_eq!(parse_duration("timeout", "7d"), Ok(MAX));
        assert_eq!(parse_duration("timeout", "1w"), Ok(MAX));
        assert_eq!(
            parse_duration("timeout", "1h 30m"),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(parse_duration("timeout", "5 s"), Ok(Duration::from_secs(5)));
    }
}
