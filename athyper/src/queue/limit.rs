//! Rate limits: at most `max` jobs per `per`, counted by the backend across
//! every worker and process, per handler (`#[job(rate = "100/s")]`) or per
//! queue ([`WorkerConfig::rate_limit`](crate::queue::WorkerConfig)).
//!
//! The backend counts in fixed windows of `per`, aligned to its clock
//! (whole seconds for `/s`): a fetch takes no more than what is left of the
//! window and, when a limit held jobs back, says when the window ends, so
//! that workers wait for it rather than poll.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// At most `max` jobs started per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    max: u32,
    per: Duration,
}

impl RateLimit {
    /// `max` jobs per `per`. `max` is at least 1 and `per` at least 1 ms
    /// (both are raised to that).
    pub const fn new(max: u32, per: Duration) -> RateLimit {
        let max = if max == 0 { 1 } else { max };
        let per = if per.as_millis() == 0 {
            Duration::from_millis(1)
        } else {
            per
        };
        RateLimit { max, per }
    }

    /// The most jobs per window.
    pub const fn max(&self) -> u32 {
        self.max
    }

    /// The window.
    pub const fn per(&self) -> Duration {
        self.per
    }

    pub(crate) fn per_millis(&self) -> u64 {
        u64::try_from(self.per.as_millis()).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.as_millis() {
            1_000 => write!(f, "{}/s", self.max),
            60_000 => write!(f, "{}/m", self.max),
            3_600_000 => write!(f, "{}/h", self.max),
            _ => write!(f, "{}/{}", self.max, humantime::format_duration(self.per)),
        }
    }
}

impl FromStr for RateLimit {
    type Err = String;

    /// `100/s`, `10/m`, `5/h`, `1/ms`, or `20/250ms` (any duration).
    fn from_str(s: &str) -> Result<Self, String> {
        let (max, per) = s
            .split_once('/')
            .ok_or_else(|| format!("rate `{s}`: write it as `<count>/<unit>`, such as `100/s`"))?;
        let max: u32 =
            max.trim().parse().ok().filter(|m| *m > 0).ok_or_else(|| {
                format!("rate `{s}`: the count must be a whole number of at least 1")
            })?;
        let per = match per.trim() {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3_600),
            other => humantime::parse_duration(other).map_err(|e| {
                format!("rate `{s}`: {e}; write `/ms`, `/s`, `/m`, `/h` or a duration")
            })?,
        };
        if per.is_zero() {
            return Err(format!("rate `{s}`: the window must be longer than zero"));
        }
        Ok(RateLimit::new(max, per))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_and_print() {
        let r: RateLimit = "100/s".parse().unwrap();
        assert_eq!((r.max(), r.per()), (100, Duration::from_secs(1)));
        assert_eq!(r.to_string(), "100/s");
        assert_eq!(
            "20/250ms".parse::<RateLimit>().unwrap().to_string(),
            "20/250ms"
        );
        let r: RateLimit = "3/ms".parse().unwrap();
        assert_eq!((r.max(), r.per()), (3, Duration::from_millis(1)));
        assert!("0/s".parse::<RateLimit>().is_err());
        assert!(
            "fast"
                .parse::<RateLimit>()
                .unwrap_err()
                .contains("`<count>/<unit>`")
        );
    }
}
