//! What only reads: `queues`, `jobs`, `job`, `workers`.

use std::fmt::Write as _;
use std::time::SystemTime;

use athyper::admin::{JobQuery, JobView, QueueView, ScheduleView, WorkerView};
use athyper::queue::{JobId, JobInfo, JobState};
use serde::Serialize;

use super::Ctx;
use crate::cli::JobsArgs;
use crate::error::CliError;
use crate::output::{BOLD, DIM, RED, Text, clip, count, relative, short, state_style, timestamp};

const COUNT_COLUMNS: [&str; 7] = [
    "WAITING",
    "DELAYED",
    "WAITING-CHILDREN",
    "ACTIVE",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
];

pub async fn queues(ctx: &Ctx) -> Result<(), CliError> {
    let queues = ctx.admin.queues().await.map_err(|e| ctx.fail(e))?;
    let views: Vec<QueueView> = queues.iter().map(QueueView::from).collect();
    if ctx.out.json {
        return ctx.out.print_json(&views);
    }
    if views.is_empty() {
        return ctx.out.print(&format!(
            "no queues in Redis at {} (prefix `{}`): no job or worker was ever seen there\n",
            ctx.target.address, ctx.target.prefix
        ));
    }
    let mut headings = vec!["QUEUE", "PAUSED"];
    headings.extend(COUNT_COLUMNS);
    let mut table = ctx.out.table(&headings, &COUNT_COLUMNS);
    for q in &views {
        table.row([
            Text::from(&q.name),
            if q.paused {
                Text::state("yes", "paused", true)
            } else {
                Text::dim("no")
            },
            count(q.waiting, "waiting"),
            count(q.delayed, "delayed"),
            count(q.waiting_children, "waiting-children"),
            count(q.active, "active"),
            count(q.completed, "completed"),
            count(q.failed, "failed"),
            count(q.cancelled, "cancelled"),
        ]);
    }
    ctx.out.print(&table.render())
}

/// `jobs --json`: a page of jobs and where the next one starts.
#[derive(Serialize)]
struct JobsPage<'a> {
    queue: &'a str,
    state: &'a str,
    name: Option<&'a str>,
    offset: usize,
    limit: usize,
    jobs: Vec<JobView>,
    /// The offset of the next page, `null` at the end.
    next: Option<usize>,
}

pub async fn jobs(ctx: &Ctx, args: JobsArgs) -> Result<(), CliError> {
    ctx.expect_queue(&args.queue).await?;
    let state = JobState::from(args.state);
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let mut query = JobQuery::new(state).offset(args.offset).limit(limit);
    if let Some(name) = &args.name {
        query = query.name(name.clone());
    }
    let page = ctx
        .admin
        .jobs(&args.queue, &query)
        .await
        .map_err(|e| ctx.fail(e))?;
    if ctx.out.json {
        return ctx.out.print_json(&JobsPage {
            queue: &args.queue,
            state: state.as_str(),
            name: args.name.as_deref(),
            offset: args.offset,
            limit,
            jobs: page
                .jobs
                .iter()
                .map(|j| JobView::new(&args.queue, j, true))
                .collect(),
            next: page.next,
        });
    }
    let more = page.next.map(|next| {
        let mut hint = format!(
            "more: athyper jobs {} --state {state} --offset {next}",
            args.queue
        );
        if let Some(name) = &args.name {
            let _ = write!(hint, " --name {name}");
        }
        if limit != 50 {
            let _ = write!(hint, " --limit {limit}");
        }
        hint
    });
    if page.jobs.is_empty() {
        let of = args
            .name
            .as_ref()
            .map(|n| format!(" of `{n}`"))
            .unwrap_or_default();
        let from = if args.offset > 0 {
            format!(" from offset {}", args.offset)
        } else {
            String::new()
        };
        ctx.out.print(&format!(
            "no {state} jobs{of} in queue `{}`{from}\n",
            args.queue
        ))?;
    } else {
        ctx.out.print(&jobs_table(ctx, state, &page.jobs))?;
    }
    if let Some(more) = more {
        ctx.out.note(&ctx.out.paint(&more, DIM));
    }
    Ok(())
}

fn jobs_table(ctx: &Ctx, state: JobState, jobs: &[JobInfo]) -> String {
    let now = SystemTime::now();
    let when = match state {
        JobState::Waiting | JobState::WaitingChildren => None,
        JobState::Delayed => Some("DUE"),
        JobState::Active => Some("STARTED"),
        JobState::Completed => Some("FINISHED"),
        JobState::Failed => Some("FAILED"),
        JobState::Cancelled => Some("CANCELLED"),
    };
    let errors = jobs.iter().any(|j| !j.errors.is_empty());
    let mut headings = vec!["ID", "NAME", "PRIORITY", "ATTEMPTS", "ENQUEUED"];
    headings.extend(when);
    if errors {
        headings.push("LAST ERROR");
    }
    let mut table = ctx.out.table(&headings, &["ATTEMPTS"]);
    for job in jobs {
        let mut row = vec![
            Text::from(&job.id),
            Text::from(&job.name),
            Text::from(job.priority),
            Text::from(format!("{}/{}", job.attempts_made, job.max_attempts)),
            Text::from(relative(job.enqueued_at, now)),
        ];
        let at = match state {
            JobState::Waiting | JobState::WaitingChildren => None,
            JobState::Delayed => Some(Some(job.due_at)),
            JobState::Active => Some(job.started_at),
            JobState::Completed | JobState::Failed | JobState::Cancelled => Some(job.finished_at),
        };
        if let Some(at) = at {
            row.push(at.map_or_else(|| Text::dim("-"), |t| Text::from(relative(t, now))));
        }
        if errors {
            row.push(match job.failed_reason() {
                Some(reason) => Text::state(clip(reason, 60), "failed", true),
                None => Text::dim("-"),
            });
        }
        table.row(row);
    }
    table.render()
}

pub async fn job(ctx: &Ctx, queue: &str, id: &JobId) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let job = ctx
        .admin
        .job(queue, id)
        .await
        .map_err(|e| ctx.fail(e))?
        .ok_or_else(|| CliError::NoSuchJob {
            queue: queue.to_owned(),
            id: id.to_string(),
        })?;
    let view = JobView::new(queue, &job, true);
    if ctx.out.json {
        return ctx.out.print_json(&view);
    }
    ctx.out.print(&job_detail(ctx, &job, &view))
}

fn job_detail(ctx: &Ctx, job: &JobInfo, view: &JobView) -> String {
    let now = SystemTime::now();
    let out = &ctx.out;
    let at = |t: Option<SystemTime>| match t {
        Some(t) => format!("{}  ({})", timestamp(t), relative(t, now)),
        None => out.paint("-", DIM),
    };
    let state = out.paint(&view.state, state_style(&view.state));
    let mut fields: Vec<(&str, String)> = vec![
        ("queue", view.queue.clone()),
        ("name", view.name.clone()),
        ("state", state),
        ("priority", view.priority.clone()),
        (
            "attempts",
            format!("{} of {}", view.attempts_made, view.max_attempts),
        ),
        ("backoff", view.backoff.clone()),
        (
            "timeout",
            job.timeout.map_or_else(|| out.paint("none", DIM), short),
        ),
        ("stalled", view.stalled.to_string()),
        ("enqueued", at(Some(job.enqueued_at))),
        ("due", at(Some(job.due_at))),
        ("started", at(job.started_at)),
        ("finished", at(job.finished_at)),
    ];
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| out.paint("-", DIM));
    fields.push(("trace id", or_dash(&view.trace_id)));
    fields.push(("request id", or_dash(&view.request_id)));
    if let Some(parent) = &view.parent {
        fields.push(("parent", parent.clone()));
    }
    if view.children > 0 {
        fields.push(("children", view.children.to_string()));
    }
    fields.push((
        "progress",
        view.progress
            .as_ref()
            .map_or_else(|| out.paint("-", DIM), |p| p.to_string()),
    ));
    let mut text = format!("{} {}\n", out.paint("job", BOLD), out.paint(&view.id, BOLD));
    for (label, value) in fields {
        let _ = writeln!(
            text,
            "  {}  {value}",
            out.paint(&format!("{label:<10}"), DIM)
        );
    }
    let _ = writeln!(text, "\n{}", out.paint("payload", BOLD));
    let payload = view
        .payload
        .as_ref()
        .and_then(|p| serde_json::to_string_pretty(p).ok())
        .unwrap_or_default();
    for line in payload.lines() {
        let _ = writeln!(text, "  {line}");
    }
    if !view.errors.is_empty() {
        let _ = writeln!(text, "\n{}", out.paint("errors", BOLD));
        for (error, attempt) in view.errors.iter().zip(&job.errors) {
            let _ = writeln!(
                text,
                "  attempt {}  {}  ({})",
                error.attempt,
                timestamp(attempt.at),
                relative(attempt.at, now)
            );
            for line in error.error.lines() {
                let _ = writeln!(text, "    {}", out.paint(line, RED));
            }
        }
    }
    text
}

/// How many of a worker's jobs the table lists; `--json` has them all.
const JOBS_SHOWN: usize = 10;

pub async fn workers(ctx: &Ctx, queue: &str) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let workers = ctx.admin.workers(queue).await.map_err(|e| ctx.fail(e))?;
    if ctx.out.json {
        let views: Vec<WorkerView> = workers.iter().map(WorkerView::from).collect();
        return ctx.out.print_json(&views);
    }
    if workers.is_empty() {
        return ctx.out.print(&format!("no workers on queue `{queue}`\n"));
    }
    let now = SystemTime::now();
    let mut table = ctx.out.table(
        &[
            "WORKER", "HOST", "PID", "HANDLERS", "STARTED", "LEASE", "RUNNING", "JOBS",
        ],
        &["PID", "RUNNING"],
    );
    for w in &workers {
        let lease = match w.lease_expires_at {
            None => Text::dim("none yet"),
            Some(t) => match t.duration_since(now) {
                Ok(left) => Text::from(format!("expires in {}", short(left))),
                Err(past) => Text::state(
                    format!("expired {} ago", short(past.duration())),
                    "failed",
                    true,
                ),
            },
        };
        let mut jobs: Vec<String> = w
            .running
            .iter()
            .take(JOBS_SHOWN)
            .map(ToString::to_string)
            .collect();
        if w.running.len() > JOBS_SHOWN {
            jobs.push(format!("and {} more", w.running.len() - JOBS_SHOWN));
        }
        table.row([
            Text::from(&w.id),
            Text::from(&w.host),
            Text::from(w.pid),
            Text::from(w.handlers.join(",")),
            Text::from(relative(w.started_at, now)),
            lease,
            Text::state(
                format!("{}/{}", w.running.len(), w.concurrency),
                "active",
                !w.running.is_empty(),
            ),
            if jobs.is_empty() {
                Text::dim("-")
            } else {
                Text::from(jobs.join(", "))
            },
        ]);
    }
    ctx.out.print(&table.render())
}

pub async fn schedules(ctx: &Ctx, queue: &str) -> Result<(), CliError> {
    ctx.expect_queue(queue).await?;
    let entries = ctx.admin.schedules(queue).await.map_err(|e| ctx.fail(e))?;
    if ctx.out.json {
        let views: Vec<ScheduleView> = entries.iter().map(|e| ScheduleView::new(e, true)).collect();
        return ctx.out.print_json(&views);
    }
    if entries.is_empty() {
        return ctx.out.print(&format!("no schedules on queue `{queue}`\n"));
    }
    let now = SystemTime::now();
    let mut table = ctx
        .out
        .table(&["SCHEDULE", "JOB", "WHEN", "MISSED", "NEXT", "LAST"], &[]);
    for entry in &entries {
        let at = |ms: u64| relative(athyper_time(ms), now);
        table.row([
            Text::from(&entry.id),
            Text::from(&entry.job.name),
            Text::from(&entry.spec),
            Text::from(entry.missed.to_string()),
            entry
                .ticks
                .first()
                .map_or_else(|| Text::dim("none yet"), |t| Text::from(at(*t))),
            entry
                .last_tick
                .map_or_else(|| Text::dim("never"), |t| Text::from(at(t))),
        ]);
    }
    ctx.out.print(&table.render())
}

fn athyper_time(ms: u64) -> SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}
