//! Recurring jobs: [`Schedule`] (a cron expression in a time zone, or a
//! fixed period) and what happens to ticks that nobody was there to run.
//!
//! A schedule is data in the backend, in its queue's slot: the job to make
//! (name, payload, options) and the next few tick times, computed here and
//! handed to the backend, which promotes due ticks atomically in the same
//! step that promotes delayed jobs. A tick's job id is
//! `<schedule id>@<tick ms>`, so however many processes run workers, each
//! tick makes exactly one job. When a schedule runs low on ticks, the fetch
//! that noticed says so and its worker computes more.
//!
//! Cron expressions and time zones are read by `croner` and `chrono-tz`:
//! five fields (minute first) or six (seconds first), in any IANA zone,
//! with daylight-saving changes as that zone has them: a local time that
//! the spring jump skips runs at the first moment after the jump, and one
//! that the autumn change repeats runs once.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::queue::QueueError;
use crate::queue::time::duration_millis;

/// How many ticks a schedule is handed at a time.
pub(crate) const TICKS_AHEAD: usize = 16;
/// A schedule with fewer ticks left asks for more.
pub(crate) const REFILL_BELOW: usize = 4;
/// How many fields a cron expression has: five (minute first) or six
/// (seconds first). `athyper-macros` keeps a copy.
pub(crate) const CRON_FIELDS: std::ops::RangeInclusive<usize> = 5..=6;
/// The shortest period of [`Schedule::every`]. `athyper-macros` keeps a
/// copy.
pub(crate) const MIN_PERIOD: Duration = Duration::from_secs(1);
/// The longest a tick may be late and still run on time.
const MAX_GRACE: Duration = Duration::from_secs(30);

/// When a recurring job runs, and what becomes of missed ticks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
    missed: Missed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Cron { expr: String, tz: Tz },
    Every(Duration),
}

/// What happens to ticks that fell due while no worker ran (more than
/// `min(30 s, the schedule's period)` late when a worker came to them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Missed {
    /// They are dropped; the schedule goes on from the next tick. The
    /// default.
    #[default]
    Skip,
    /// The most recent of them, at most this many, run at once.
    CatchUp(u32),
}

impl fmt::Display for Missed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missed::Skip => f.write_str("skip"),
            Missed::CatchUp(n) => write!(f, "catch-up {n}"),
        }
    }
}

impl FromStr for Missed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("catch-up ") {
            None if s == "skip" => Ok(Missed::Skip),
            Some(n) => n
                .parse()
                .map(Missed::CatchUp)
                .map_err(|_| format!("`{s}`: expected `catch-up <count>`")),
            None => Err(format!("`{s}`: expected `skip` or `catch-up <count>`")),
        }
    }
}

fn invalid(reason: String) -> QueueError {
    QueueError::InvalidOptions { reason }
}

impl Schedule {
    /// At the times of a cron expression, in UTC: five fields (`*/5 * * * *`,
    /// minute first) or six (`0 */5 * * * *`, seconds first).
    pub fn cron(expr: &str) -> Result<Schedule, QueueError> {
        let expr = expr.trim();
        parse_cron(expr)?;
        Ok(Schedule {
            kind: Kind::Cron {
                expr: expr.to_owned(),
                tz: Tz::UTC,
            },
            missed: Missed::Skip,
        })
    }

    /// Every `period`, at multiples of it since the Unix epoch, so that
    /// every process computes the same ticks; at least one second.
    pub fn every(period: Duration) -> Result<Schedule, QueueError> {
        if period < MIN_PERIOD {
            return Err(invalid(format!(
                "schedule every {}: the period must be at least 1s",
                humantime::format_duration(period)
            )));
        }
        Ok(Schedule {
            kind: Kind::Every(Duration::from_millis(duration_millis(period))),
            missed: Missed::Skip,
        })
    }

    /// The cron expression's times in the IANA time zone `tz`, such as
    /// `Europe/Berlin`.
    pub fn in_tz(self, tz: &str) -> Result<Schedule, QueueError> {
        let zone: Tz = tz.parse().map_err(|_| {
            invalid(format!(
                "unknown time zone `{tz}`; write an IANA name such as `Europe/Berlin`"
            ))
        })?;
        match self.kind {
            Kind::Cron { expr, .. } => Ok(Schedule {
                kind: Kind::Cron { expr, tz: zone },
                missed: self.missed,
            }),
            Kind::Every(period) => Err(invalid(format!(
                "schedule every {}: a time zone applies to cron expressions only",
                humantime::format_duration(period)
            ))),
        }
    }

    /// What becomes of missed ticks; default [`Missed::Skip`].
    #[must_use]
    pub fn missed(mut self, missed: Missed) -> Schedule {
        self.missed = missed;
        self
    }

    /// The missed-ticks policy.
    pub fn missed_policy(&self) -> Missed {
        self.missed
    }

    /// The schedule as text, as the backend keeps it:
    /// `cron 0 */5 * * * * Europe/Berlin` or `every 30s`.
    pub fn spec(&self) -> String {
        match &self.kind {
            Kind::Cron { expr, tz } => format!("cron {expr} {}", tz.name()),
            Kind::Every(period) => format!("every {}", humantime::format_duration(*period)),
        }
    }

    /// Reads what [`spec`](Self::spec) wrote.
    pub fn from_spec(spec: &str, missed: Missed) -> Result<Schedule, QueueError> {
        let schedule = if let Some(rest) = spec.strip_prefix("cron ") {
            let (expr, tz) = rest
                .rsplit_once(' ')
                .ok_or_else(|| invalid(format!("schedule `{spec}`: no time zone")))?;
            Schedule::cron(expr)?.in_tz(tz)?
        } else if let Some(period) = spec.strip_prefix("every ") {
            let period = humantime::parse_duration(period)
                .map_err(|e| invalid(format!("schedule `{spec}`: {e}")))?;
            Schedule::every(period)?
        } else {
            return Err(invalid(format!(
                "schedule `{spec}`: expected `cron …` or `every …`"
            )));
        };
        Ok(schedule.missed(missed))
    }

    /// Up to `count` tick times (ms since the Unix epoch) after `after_ms`.
    pub(crate) fn ticks_after(&self, after_ms: u64, count: usize) -> Vec<u64> {
        match &self.kind {
            Kind::Every(period) => {
                let period = duration_millis(*period).max(1);
                let first = (after_ms / period + 1) * period;
                (0..count as u64).map(|i| first + i * period).collect()
            }
            Kind::Cron { expr, tz } => {
                let Ok(cron) = parse_cron(expr) else {
                    return Vec::new();
                };
                let Some(mut at) = Utc
                    .timestamp_millis_opt(i64::try_from(after_ms).unwrap_or(i64::MAX))
                    .single()
                    .map(|t| t.with_timezone(tz))
                else {
                    return Vec::new();
                };
                let mut ticks = Vec::with_capacity(count);
                while ticks.len() < count {
                    match cron.find_next_occurrence(&at, false) {
                        Ok(next) => {
                            let ms = u64::try_from(next.timestamp_millis()).unwrap_or(0);
                            ticks.push(ms);
                            at = next;
                        }
                        Err(_) => break,
                    }
                }
                ticks
            }
        }
    }

    /// How late a tick may run and still count as on time: the smaller of
    /// 30 s and the time between its ticks.
    pub(crate) fn grace(&self, ticks: &[u64]) -> Duration {
        let period = match &self.kind {
            Kind::Every(period) => *period,
            Kind::Cron { .. } => match ticks {
                [a, b, ..] => Duration::from_millis(b.saturating_sub(*a)),
                _ => MAX_GRACE,
            },
        };
        period.min(MAX_GRACE)
    }
}

fn parse_cron(expr: &str) -> Result<Cron, QueueError> {
    let fields = expr.split_whitespace().count();
    if !CRON_FIELDS.contains(&fields) {
        return Err(invalid(format!(
            "cron expression `{expr}` has {fields} fields; write five (minute hour day month weekday) or six (seconds first)"
        )));
    }
    Cron::from_str(expr).map_err(|e| invalid(format!("cron expression `{expr}`: {e}")))
}

/// A recurring job as its backend keeps it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ScheduleEntry {
    /// Its id, unique in the queue.
    pub id: String,
    /// The job each tick makes (its `id` and `delay` are not used).
    pub job: crate::queue::backend::NewJob,
    /// [`Schedule::spec`].
    pub spec: String,
    /// What becomes of missed ticks.
    pub missed: Missed,
    /// How late a tick may run and still count as on time.
    pub grace: Duration,
    /// The coming ticks, ms since the Unix epoch, ascending.
    pub ticks: Vec<u64>,
    /// The last tick that made a job (or was skipped), if any.
    pub last_tick: Option<u64>,
}

impl ScheduleEntry {
    /// The schedule `id` making `job` on `schedule`'s next ticks from now,
    /// as [`Queue::schedule`](crate::queue::Queue::schedule) stores it.
    pub fn new(
        id: impl Into<String>,
        job: crate::queue::backend::NewJob,
        schedule: &Schedule,
    ) -> Self {
        let now = crate::queue::time::to_millis(std::time::SystemTime::now());
        let ticks = schedule.ticks_after(now, TICKS_AHEAD);
        let mut job = job;
        job.id = None;
        job.delay = Duration::ZERO;
        ScheduleEntry {
            id: id.into(),
            grace: schedule.grace(&ticks),
            job,
            spec: schedule.spec(),
            missed: schedule.missed_policy(),
            ticks,
            last_tick: None,
        }
    }

    /// The schedule, read back from [`spec`](Self::spec).
    pub fn schedule(&self) -> Result<Schedule, QueueError> {
        Schedule::from_spec(&self.spec, self.missed)
    }
}

/// A schedule that ran low on ticks, as a fetch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refill {
    /// The schedule's id.
    pub id: String,
    /// Its spec, so the ticks are computed for what is stored.
    pub spec: String,
    /// The last tick it holds (or made); new ones come after it.
    pub after_ms: u64,
}

impl Refill {
    /// The refill of schedule `id`.
    pub fn new(id: impl Into<String>, spec: impl Into<String>, after_ms: u64) -> Refill {
        Refill {
            id: id.into(),
            spec: spec.into(),
            after_ms,
        }
    }
}

/// The job id a schedule's tick makes.
pub(crate) fn tick_job_id(schedule: &str, tick_ms: u64) -> String {
    format!("{schedule}@{tick_ms}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> u64 {
        humantime::parse_rfc3339(rfc3339)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[test]
    fn every_period_ticks_on_multiples_of_it() {
        let s = Schedule::every(Duration::from_secs(30)).unwrap();
        assert_eq!(s.ticks_after(61_000, 3), [90_000, 120_000, 150_000]);
        assert_eq!(s.spec(), "every 30s");
        assert_eq!(Schedule::from_spec("every 30s", Missed::Skip).unwrap(), s);
        assert!(Schedule::every(Duration::from_millis(500)).is_err());
    }

    #[test]
    fn cron_follows_the_zone_through_daylight_saving() {
        // 02:30 every day in Berlin: on 2026-03-29 clocks jump from 02:00
        // to 03:00, so that day has no 02:30 and the tick comes at 03:00.
        let s = Schedule::cron("30 2 * * *")
            .unwrap()
            .in_tz("Europe/Berlin")
            .unwrap();
        let ticks = s.ticks_after(ms("2026-03-27T12:00:00Z"), 3);
        assert_eq!(
            ticks,
            [
                ms("2026-03-28T01:30:00Z"), // 02:30 CET
                ms("2026-03-29T01:00:00Z"), // 03:00 CEST, just after the jump
                ms("2026-03-30T00:30:00Z"), // 02:30 CEST
            ]
        );
        // On 2026-10-25, 02:30 happens twice (CEST, then CET): one tick.
        let autumn = s.ticks_after(ms("2026-10-24T12:00:00Z"), 2);
        assert_eq!(autumn[1] - autumn[0], 25 * 3_600_000, "{autumn:?}");
        assert_eq!(s.spec(), "cron 30 2 * * * Europe/Berlin");
        assert_eq!(Schedule::from_spec(&s.spec(), Missed::Skip).unwrap(), s);
    }

    #[test]
    fn six_fields_start_with_seconds() {
        let s = Schedule::cron("*/10 * * * * *").unwrap();
        assert_eq!(
            s.ticks_after(ms("2026-01-01T00:00:05Z"), 2),
            [ms("2026-01-01T00:00:10Z"), ms("2026-01-01T00:00:20Z")]
        );
        assert_eq!(s.grace(&s.ticks_after(0, 2)), Duration::from_secs(10));
    }

    #[test]
    fn bad_expressions_name_the_expression() {
        let err = Schedule::cron("61 * * * *").unwrap_err().to_string();
        assert!(err.contains("cron expression `61 * * * *`"), "{err}");
        let err = Schedule::cron("* * *").unwrap_err().to_string();
        assert!(err.contains("has 3 fields"), "{err}");
        let err = Schedule::cron("* * * * *")
            .unwrap()
            .in_tz("Mars/Olympus")
            .unwrap_err();
        assert!(err.to_string().contains("unknown time zone `Mars/Olympus`"));
        assert_eq!("catch-up 3".parse::<Missed>(), Ok(Missed::CatchUp(3)));
        assert!("later".parse::<Missed>().is_err());
    }
}
