//! What changes jobs: `retry`, `remove`, `promote`, `pause`, `resume`,
//! `clean`.

use std::time::Duration;

use athyper::admin::{QueueView, STEP};
use athyper::queue::{Finished, JobId, JobState};
use serde::Serialize;

use super::Ctx;
use crate::error::CliError;
use crate::progress::Progress;

/// A job that was not acted on, and why.
#[derive(Debug, Serialize)]
struct Skipped {
    id: String,
    /// Its state.
    state: String,
}

/// `retry --json`.
#[derive(Debug, Serialize)]
struct Retried<'a> {
    queue: &'a str,
    /// How many were requeued.
    retried: usize,
    /// Named jobs left alone because they are not failed.
    not_failed: Vec<Skipped>,
    /// Named ids no job has.
    missing: Vec<String>,
}

/// Shows a bar for an action of more than one step.
fn progress(ctx: &Ctx, what: &str, total: usize) -> Progress {
    let quiet = total <= STEP;
    let out = crate::output::Output {
        stderr_terminal: ctx.out.stderr_terminal && !quiet,
        ..ctx.out
    };
    Progress::new(&out, what, Some(u64::try_from(total).unwrap_or(u64::MAX)))
}

pub async fn retry(ctx: &Ctx, queue: &str, ids: &[JobId]) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let bar = progress(ctx, "retrying", ids.len());
    let mut report = Retried {
        queue,
        retried: 0,
        not_failed: Vec::new(),
        missing: Vec::new(),
    };
    // Jobs that were failed when looked at but not when retried.
    let mut changed = 0;
    for (step, chunk) in ids.chunks(STEP).enumerate() {
        // Looked up first, all at once, so that the report can say which
        // ids were not failed jobs and why.
        let found = futures::future::try_join_all(chunk.iter().map(|id| ctx.admin.job(queue, id)))
            .await
            .map_err(|e| ctx.fail(e))?;
        let mut failed = Vec::new();
        for (id, job) in chunk.iter().zip(found) {
            match job {
                None => report.missing.push(id.to_string()),
                Some(job) if job.state != JobState::Failed => report.not_failed.push(Skipped {
                    id: id.to_string(),
                    state: job.state.to_string(),
                }),
                Some(_) => failed.push(id.clone()),
            }
        }
        let moved = ctx
            .admin
            .retry(queue, &failed)
            .await
            .map_err(|e| ctx.fail(e))?;
        changed += failed.len() - moved.min(failed.len());
        report.retried += moved;
        bar.set((step + 1) * STEP);
    }
    bar.finish();
    if ctx.out.json {
        ctx.out.print_json(&report)?;
    } else {
        ctx.out.print(&format!(
            "retried {} of queue `{queue}`\n",
            jobs(report.retried)
        ))?;
    }
    let not_failed = report
        .not_failed
        .iter()
        .map(|s| format!("`{}` is {}", s.id, s.state));
    let mut problems = with_missing(not_failed, &report.missing);
    if changed > 0 {
        problems.push(format!("{} stopped being failed meanwhile", jobs(changed)));
    }
    partly(
        ids.len() - report.retried,
        ids.len(),
        "retried",
        "only failed jobs can be retried",
        &problems,
        !report.missing.is_empty(),
    )
}

pub async fn retry_all_failed(ctx: &Ctx, queue: &str) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let failed = ctx
        .admin
        .counts(queue)
        .await
        .map_err(|e| ctx.fail(e))?
        .failed();
    let bar = progress(
        ctx,
        "retrying",
        usize::try_from(failed).unwrap_or(usize::MAX),
    );
    let retried = ctx
        .admin
        .retry_all_failed(queue, |done| bar.set(done))
        .await
        .map_err(|e| ctx.fail(e))?;
    bar.finish();
    if ctx.out.json {
        return ctx.out.print_json(&Retried {
            queue,
            retried,
            not_failed: Vec::new(),
            missing: Vec::new(),
        });
    }
    ctx.out
        .print(&format!("retried {} of queue `{queue}`\n", jobs(retried)))
}

/// `remove --json`.
#[derive(Debug, Serialize)]
struct RemovedView<'a> {
    queue: &'a str,
    removed: Vec<String>,
    /// Named jobs left alone because they are running.
    running: Vec<String>,
    /// Named ids no job has.
    missing: Vec<String>,
}

pub async fn remove(ctx: &Ctx, queue: &str, ids: &[JobId]) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let mut report = RemovedView {
        queue,
        removed: Vec::new(),
        running: Vec::new(),
        missing: Vec::new(),
    };
    for done in in_steps(ctx, "removing", ids, |chunk| ctx.admin.remove(queue, chunk)).await? {
        report.removed.extend(texts(done.removed));
        report.running.extend(texts(done.running));
        report.missing.extend(texts(done.missing));
    }
    if ctx.out.json {
        ctx.out.print_json(&report)?;
    } else {
        ctx.out.print(&format!(
            "removed {} of queue `{queue}`\n",
            jobs(report.removed.len())
        ))?;
    }
    let running = report.running.iter().map(|id| format!("`{id}` is running"));
    partly(
        ids.len() - report.removed.len(),
        ids.len(),
        "removed",
        "remove a running job once it finishes",
        &with_missing(running, &report.missing),
        !report.missing.is_empty(),
    )
}

/// `cancel --json`.
#[derive(Debug, Serialize)]
struct CancelledView<'a> {
    queue: &'a str,
    cancelled: Vec<String>,
    /// Running jobs told to stop; they end cancelled.
    requested: Vec<String>,
    /// Named jobs that had ended already.
    ended: Vec<String>,
    /// Named ids no job has.
    missing: Vec<String>,
}

pub async fn cancel(ctx: &Ctx, queue: &str, ids: &[JobId]) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let mut report = CancelledView {
        queue,
        cancelled: Vec::new(),
        requested: Vec::new(),
        ended: Vec::new(),
        missing: Vec::new(),
    };
    for done in in_steps(ctx, "cancelling", ids, |chunk| {
        ctx.admin.cancel(queue, chunk)
    })
    .await?
    {
        report.cancelled.extend(texts(done.cancelled));
        report.requested.extend(texts(done.requested));
        report.ended.extend(texts(done.ended));
        report.missing.extend(texts(done.missing));
    }
    if ctx.out.json {
        ctx.out.print_json(&report)?;
    } else {
        ctx.out.print(&format!(
            "cancelled {} of queue `{queue}`; {} running, told to stop\n",
            jobs(report.cancelled.len()),
            jobs(report.requested.len())
        ))?;
    }
    let ended = report.ended.iter().map(|id| format!("`{id}` had ended"));
    partly(
        ids.len() - report.cancelled.len() - report.requested.len(),
        ids.len(),
        "cancelled",
        "a job that ended stays as it is",
        &with_missing(ended, &report.missing),
        !report.missing.is_empty(),
    )
}

/// Runs `step` over `ids` [`STEP`] at a time, with a progress bar, and
/// gives each step's answer.
async fn in_steps<'a, T, F, Fut>(
    ctx: &Ctx,
    what: &str,
    ids: &'a [JobId],
    mut step: F,
) -> Result<Vec<T>, CliError>
where
    F: FnMut(&'a [JobId]) -> Fut,
    Fut: std::future::Future<Output = Result<T, athyper::queue::QueueError>>,
{
    let bar = progress(ctx, what, ids.len());
    let mut answers = Vec::new();
    for (n, chunk) in ids.chunks(STEP).enumerate() {
        answers.push(step(chunk).await.map_err(|e| ctx.fail(e))?);
        bar.set((n + 1) * STEP);
    }
    bar.finish();
    Ok(answers)
}

fn texts(ids: Vec<JobId>) -> impl Iterator<Item = String> {
    ids.into_iter().map(|id| id.to_string())
}

/// `problems`, then each of `missing` as an id no job has.
fn with_missing(problems: impl Iterator<Item = String>, missing: &[String]) -> Vec<String> {
    problems
        .chain(missing.iter().map(|id| format!("`{id}` does not exist")))
        .collect()
}

/// `promote --json`.
#[derive(Debug, Serialize)]
struct Promoted<'a> {
    queue: &'a str,
    id: &'a str,
    promoted: bool,
}

pub async fn promote(ctx: &Ctx, queue: &str, id: &JobId) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let promoted = ctx
        .admin
        .promote(queue, id)
        .await
        .map_err(|e| ctx.fail(e))?;
    if !promoted {
        let job = ctx
            .admin
            .job(queue, id)
            .await
            .map_err(|e| ctx.fail(e))?
            .ok_or_else(|| CliError::NoSuchJob {
                queue: queue.to_owned(),
                id: id.to_string(),
            })?;
        return Err(CliError::Partly {
            summary: format!(
                "job `{id}` of queue `{queue}` is {}, not delayed; only a delayed job can be promoted",
                job.state
            ),
            missing: false,
        });
    }
    if ctx.out.json {
        return ctx.out.print_json(&Promoted {
            queue,
            id: id.as_str(),
            promoted,
        });
    }
    ctx.out
        .print(&format!("job `{id}` of queue `{queue}` is due now\n"))
}

pub async fn pause(ctx: &Ctx, queue: &str, paused: bool) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let done = if paused {
        ctx.admin.pause(queue).await
    } else {
        ctx.admin.resume(queue).await
    };
    done.map_err(|e| ctx.fail(e))?;
    if ctx.out.json {
        let counts = ctx.admin.counts(queue).await.map_err(|e| ctx.fail(e))?;
        return ctx.out.print_json(&QueueView::new(queue, &counts));
    }
    ctx.out.print(&if paused {
        format!("paused queue `{queue}`: workers take no new jobs until `athyper resume {queue}`\n")
    } else {
        format!("resumed queue `{queue}`: workers take its jobs again\n")
    })
}

/// `clean --json`.
#[derive(Debug, Serialize)]
struct Cleaned<'a> {
    queue: &'a str,
    state: &'a str,
    older_than_ms: u64,
    removed: usize,
}

pub async fn clean(
    ctx: &Ctx,
    queue: &str,
    state: Finished,
    older_than: Duration,
) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let name = JobState::from(state).as_str();
    let in_state = ctx
        .admin
        .counts(queue)
        .await
        .map_err(|e| ctx.fail(e))?
        .state(state.into());
    // How many are old enough is known only at the end: the bar runs over
    // every job in the state.
    let bar = progress(
        ctx,
        "cleaning",
        usize::try_from(in_state).unwrap_or(usize::MAX),
    );
    let removed = ctx
        .admin
        .clean(queue, state, older_than, |done| bar.set(done))
        .await
        .map_err(|e| ctx.fail(e))?;
    bar.finish();
    if ctx.out.json {
        return ctx.out.print_json(&Cleaned {
            queue,
            state: name,
            older_than_ms: u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX),
            removed,
        });
    }
    ctx.out.print(&format!(
        "removed {} {name} jobs older than {} from queue `{queue}`\n",
        removed,
        humantime::format_duration(older_than)
    ))
}

/// `1 job`, `3 jobs`.
fn jobs(n: usize) -> String {
    if n == 1 {
        "1 job".to_owned()
    } else {
        format!("{n} jobs")
    }
}

/// How many problems a one-line summary names before `and N more`.
const NAMED: usize = 5;

/// Fails, with one line, when `left` of `total` named jobs were not acted
/// on.
fn partly(
    left: usize,
    total: usize,
    verb: &str,
    fix: &str,
    problems: &[String],
    missing: bool,
) -> Result<(), CliError> {
    if left == 0 {
        return Ok(());
    }
    let mut named = problems
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if problems.len() > NAMED {
        named.push_str(&format!(" and {} more", problems.len() - NAMED));
    }
    let summary = if total == 1 {
        format!("not {verb}: {named}; {fix}")
    } else {
        format!("{left} of {total} jobs not {verb}: {named}; {fix}")
    };
    Err(CliError::Partly { summary, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_results_are_one_line() {
        let fix = "only failed jobs can be retried";
        assert!(partly(0, 3, "retried", fix, &[], false).is_ok());
        let one = partly(1, 1, "retried", fix, &["`a` is waiting".into()], false).unwrap_err();
        assert_eq!(
            one.to_string(),
            "not retried: `a` is waiting; only failed jobs can be retried"
        );
        assert_eq!(one.exit_code(), 1);
        let problems: Vec<String> = (0..7).map(|i| format!("`{i}` does not exist")).collect();
        let many = partly(7, 9, "removed", "fix", &problems, true).unwrap_err();
        assert_eq!(
            many.to_string(),
            "7 of 9 jobs not removed: `0` does not exist, `1` does not exist, `2` does not exist, `3` does not exist, `4` does not exist and 2 more; fix"
        );
        assert_eq!(many.exit_code(), 3);
    }
}
