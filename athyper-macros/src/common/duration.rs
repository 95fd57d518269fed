use std::time::Duration;

use humantime::DurationError;

/// How a duration should look, appended to every duration error.
const EXAMPLES: &str = "write durations like `250ms`, `30s`, `5m` or `1h`";

/// Parses a duration option's text (`"250ms"`, `"30s"`, `"5m"`, `"1h"`) the
/// way the runtime parses durations from the environment, with humantime.
///
/// The runtime keeps delays in whole milliseconds (they are stored with
/// every job), so finer durations are rejected rather than rounded.
pub(crate) fn parse_duration(option: &str, text: &str) -> Result<Duration, String> {
    let malformed = |reason: String| {
        format!("malformed duration `{text}` for `{option}`: {reason}; {EXAMPLES}")
    };
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
    if u64::try_from(duration.as_millis()).is_err() {
        return Err(malformed("it is too large".to_owned()));
    }
    Ok(duration)
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
}
