//! `watch`: live counts and rates, redrawn in place on a terminal, one
//! snapshot per interval in a pipe.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use athyper::admin::{MinuteView, QueueView};
use athyper::queue::backend::Minute;
use athyper::queue::{JobCounts, QueueError};
use serde::Serialize;

use super::Ctx;
use crate::error::CliError;
use crate::output::{BOLD, DIM, Text, count, paint, timestamp};

/// Minutes of throughput read per refresh: the last full one and the
/// current one.
const MINUTES: usize = 2;

/// One refresh.
struct Snapshot {
    at: SystemTime,
    instant: Instant,
    queues: Vec<Row>,
}

/// A queue in one refresh.
struct Row {
    name: String,
    counts: JobCounts,
    /// Its last [`MINUTES`] of throughput, oldest first.
    minutes: Vec<Minute>,
}

/// A queue in `watch --json`.
#[derive(Serialize)]
struct QueueRates {
    #[serde(flatten)]
    queue: QueueView,
    /// Completed per minute over the last one to two minutes.
    completed_per_minute: f64,
    /// Failed for good per minute over the same time.
    failed_per_minute: f64,
    /// How fast the waiting count changed since the previous refresh;
    /// `null` on the first.
    waiting_per_second: Option<f64>,
    /// The minutes the rates come from, oldest first.
    minutes: Vec<MinuteView>,
}

/// One line of `watch --json`.
#[derive(Serialize)]
struct Frame {
    at: String,
    queues: Vec<QueueRates>,
}

pub async fn watch(
    ctx: &Ctx,
    only: &[String],
    interval: Duration,
    count: Option<u64>,
) -> Result<(), CliError> {
    for queue in only {
        ctx.expect_queue(queue).await?;
    }
    let redraw = ctx.out.stdout_terminal && !ctx.out.json;
    let mut previous: Option<Snapshot> = None;
    let mut shown = 0u64;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    if redraw {
        ctx.out.print("\x1b[2J")?;
    }
    loop {
        match snapshot(ctx, only).await {
            Ok(now) => {
                let frame = if ctx.out.json {
                    let line = serde_json::to_string(&frame(&now, previous.as_ref()))
                        .map_err(|e| CliError::Other(format!("cannot encode JSON: {e}")))?;
                    format!("{line}\n")
                } else {
                    table(ctx, &now, previous.as_ref(), interval)
                };
                ctx.out
                    .print(&if redraw { in_place(&frame) } else { frame })?;
                previous = Some(now);
            }
            // A monitor outlives an outage: it says so and tries again.
            Err(error) if error.is_unavailable() => {
                let line = format!("{}: {}", timestamp(SystemTime::now()), ctx.fail(error));
                if redraw {
                    let mut frame = header(ctx, interval);
                    let _ = writeln!(frame, "\n{line}");
                    ctx.out.print(&in_place(&frame))?;
                } else {
                    ctx.out.warn(&line);
                }
            }
            Err(error) => return Err(ctx.fail(error)),
        }
        shown += 1;
        if count.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = &mut stop => {
                if redraw {
                    ctx.out.print("\n")?;
                }
                return Ok(());
            }
        }
    }
}

async fn snapshot(ctx: &Ctx, only: &[String]) -> Result<Snapshot, QueueError> {
    let queues: Vec<(String, JobCounts)> = if only.is_empty() {
        ctx.admin
            .queues()
            .await?
            .into_iter()
            .map(|q| (q.name, q.counts))
            .collect()
    } else {
        let mut queues = Vec::with_capacity(only.len());
        for name in only {
            queues.push((name.clone(), ctx.admin.counts(name).await?));
        }
        queues
    };
    let mut rows = Vec::with_capacity(queues.len());
    for (name, counts) in queues {
        let minutes = ctx.admin.throughput(&name, MINUTES).await?;
        rows.push(Row {
            name,
            counts,
            minutes,
        });
    }
    Ok(Snapshot {
        at: SystemTime::now(),
        instant: Instant::now(),
        queues: rows,
    })
}

/// Jobs per minute over `minutes` (oldest first, the last one running
/// now): full minutes count 60 s, the current one as far as it has gone.
fn per_minute(minutes: &[Minute], now: SystemTime, of: impl Fn(&Minute) -> u64) -> f64 {
    let Some(current) = minutes.last() else {
        return 0.0;
    };
    let into_current = now
        .duration_since(current.at)
        .unwrap_or_default()
        .min(Duration::from_secs(60));
    let full = (minutes.len() - 1) as f64 * 60.0;
    let seconds = full + into_current.as_secs_f64();
    if seconds < 1.0 {
        return 0.0;
    }
    let total: u64 = minutes.iter().map(of).sum();
    total as f64 * 60.0 / seconds
}

/// Change of the waiting count per second since `previous`.
fn waiting_per_second(now: &Snapshot, previous: Option<&Snapshot>, queue: &Row) -> Option<f64> {
    let previous = previous?;
    let before = previous
        .queues
        .iter()
        .find(|q| q.name == queue.name)?
        .counts
        .waiting();
    let seconds = now.instant.duration_since(previous.instant).as_secs_f64();
    (seconds > 0.0).then(|| (queue.counts.waiting() as f64 - before as f64) / seconds)
}

fn frame(now: &Snapshot, previous: Option<&Snapshot>) -> Frame {
    Frame {
        at: humantime::format_rfc3339_millis(now.at).to_string(),
        queues: now
            .queues
            .iter()
            .map(|queue| QueueRates {
                queue: QueueView::new(&queue.name, &queue.counts),
                completed_per_minute: round(per_minute(&queue.minutes, now.at, |m| m.completed)),
                failed_per_minute: round(per_minute(&queue.minutes, now.at, |m| m.failed)),
                waiting_per_second: waiting_per_second(now, previous, queue).map(round),
                minutes: queue.minutes.iter().map(MinuteView::from).collect(),
            })
            .collect(),
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn header(ctx: &Ctx, interval: Duration) -> String {
    let out = &ctx.out;
    format!(
        "{}  Redis {}  prefix {}  every {}  {}\n",
        out.paint("athyper watch", BOLD),
        ctx.target.address,
        ctx.target.prefix,
        humantime::format_duration(interval),
        timestamp(SystemTime::now()),
    )
}

fn table(ctx: &Ctx, now: &Snapshot, previous: Option<&Snapshot>, interval: Duration) -> String {
    let numeric = [
        "WAITING",
        "DELAYED",
        "ACTIVE",
        "COMPLETED",
        "FAILED",
        "COMPLETED/MIN",
        "FAILED/MIN",
        "WAITING/S",
    ];
    let mut headings = vec!["QUEUE", "PAUSED"];
    headings.extend(numeric);
    let mut table = ctx.out.table(&headings, &numeric);
    for queue in &now.queues {
        let view = QueueView::new(&queue.name, &queue.counts);
        let done = per_minute(&queue.minutes, now.at, |m| m.completed);
        let failed = per_minute(&queue.minutes, now.at, |m| m.failed);
        table.row([
            Text::from(&view.name),
            if view.paused {
                Text::state("yes", "paused", true)
            } else {
                Text::dim("no")
            },
            count(view.waiting, "waiting"),
            count(view.delayed, "delayed"),
            count(view.active, "active"),
            count(view.completed, "completed"),
            count(view.failed, "failed"),
            Text::state(format!("{done:.1}"), "completed", done > 0.0),
            Text::state(format!("{failed:.1}"), "failed", failed > 0.0),
            match waiting_per_second(now, previous, queue) {
                Some(rate) => Text::from(format!("{rate:+.1}")),
                None => Text::dim("-"),
            },
        ]);
    }
    let mut text = header(ctx, interval);
    text.push('\n');
    if table.is_empty() {
        let _ = writeln!(text, "no queues yet");
    } else {
        text.push_str(&table.render());
    }
    if ctx.out.stdout_terminal {
        let _ = write!(text, "\n{}\n", paint(ctx.out.colour, "Ctrl-C quits", DIM));
    } else {
        text.push('\n');
    }
    text
}

/// `frame` drawn over the previous one: from the top left, each line
/// cleared to its end, and the rest of the screen below cleared.
fn in_place(frame: &str) -> String {
    let mut text = String::from("\x1b[H");
    for line in frame.lines() {
        text.push_str(line);
        text.push_str("\x1b[K\n");
    }
    text.push_str("\x1b[J");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rates_count_the_current_minute_as_far_as_it_has_gone() {
        // 60 in the last full minute and 30 in the 30 s of this one: 60/min.
        let minutes = [Minute::new(at(0), 60, 3), Minute::new(at(60), 30, 0)];
        assert_eq!(per_minute(&minutes, at(90), |m| m.completed), 60.0);
        assert_eq!(per_minute(&minutes, at(90), |m| m.failed), 2.0);
        // Past its end the current minute counts 60 s, not more.
        assert_eq!(per_minute(&minutes, at(500), |m| m.completed), 45.0);
        assert_eq!(per_minute(&[], at(90), |m| m.completed), 0.0);
    }

    #[test]
    fn in_place_redraws_from_the_top() {
        assert_eq!(in_place("a\nb\n"), "\x1b[Ha\x1b[K\nb\x1b[K\n\x1b[J");
    }
}
