//! The scheduling and flow-control options, each reaching the descriptor,
//! and the payloads the schedules make.

use std::time::Duration;

use athyper::prelude::*;
use athyper::registry::{Declared, JobDefaults};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Digest {
    days: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Report {
    name: String,
}

impl Report {
    fn nightly() -> Report {
        Report {
            name: "nightly".into(),
        }
    }
}

const WINDOW: u32 = 7;

/// Every field of a cron schedule, with a payload from a function call.
#[athyper::job(
    queue = "reports",
    cron = "0 30 2 * * *",
    tz = "Europe/Berlin",
    catch_up = 3,
    payload = Report::nightly(),
    rate = "10/30s",
    max_deferrals = 20
)]
async fn nightly_report(_ctx: JobContext, _report: Report) -> Result<(), String> {
    Ok(())
}

/// A fixed period, with the payload type's `Default`.
#[athyper::job(every = "30s", rate = "100/s")]
async fn digest(_ctx: JobContext, _digest: Digest) -> Result<(), String> {
    Ok(())
}

/// A fixed period, with a constant for the payload.
#[athyper::job(every = "1h", payload = WINDOW, max_deferrals = 0)]
async fn window(_ctx: JobContext, _days: u32) -> Result<(), String> {
    Ok(())
}

/// Rates by the millisecond, minute and hour.
#[athyper::job(rate = "1/ms")]
async fn per_ms(_ctx: JobContext, _n: u8) -> Result<(), String> {
    Ok(())
}

#[athyper::job(rate = "5/m", cron = "*/5 * * * *")]
async fn per_minute(_ctx: JobContext, _payload: ()) -> Result<(), String> {
    Ok(())
}

#[athyper::job(rate = "2/h")]
async fn per_hour(_ctx: JobContext, _n: u8) -> Result<(), String> {
    Ok(())
}

fn unused() -> Result<String, String> {
    Err("not called".into())
}

fn payload_of(defaults: &JobDefaults) -> String {
    let declared = defaults.schedule.expect("a schedule");
    (declared.payload)().expect("the payload encodes")
}

fn main() {
    let nightly = &nightly_report.descriptor().defaults;
    assert_eq!(
        *nightly,
        JobDefaults::DEFAULT
            .with_rate(10, Duration::from_secs(30))
            .with_max_deferrals(20)
            .with_schedule(
                Declared::cron("0 30 2 * * *", unused)
                    .in_tz("Europe/Berlin")
                    .catch_up(3)
            )
    );
    assert_eq!(payload_of(nightly), r#"{"name":"nightly"}"#);
    let schedule = nightly.schedule.unwrap().schedule().unwrap();
    assert_eq!(schedule.spec(), "cron 0 30 2 * * * Europe/Berlin");

    let digest_defaults = &digest.descriptor().defaults;
    assert_eq!(
        *digest_defaults,
        JobDefaults::DEFAULT
            .with_rate(100, Duration::from_secs(1))
            .with_schedule(Declared::every(Duration::from_secs(30), unused))
    );
    assert_eq!(payload_of(digest_defaults), r#"{"days":0}"#);

    let window_defaults = &window.descriptor().defaults;
    assert_eq!(window_defaults.max_deferrals, 0);
    assert_eq!(payload_of(window_defaults), "7");

    let rate = |d: &JobDefaults| d.rate.map(|r| (r.max(), r.per()));
    assert_eq!(
        rate(&per_ms.descriptor().defaults),
        Some((1, Duration::from_millis(1)))
    );
    let minute = &per_minute.descriptor().defaults;
    assert_eq!(rate(minute), Some((5, Duration::from_secs(60))));
    assert_eq!(payload_of(minute), "null");
    assert_eq!(
        rate(&per_hour.descriptor().defaults),
        Some((2, Duration::from_secs(3600)))
    );
}
