//! The pages: overview, queue, job, workers, process, sign-in.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

use super::html::{
    Access, Flash, Frame, Nav, empty, enc, esc, num, page, short, snippet, state_badge, when,
    when_opt,
};
use super::security::{self, CSRF_COOKIE};
use super::{App, chart, process};
use crate::admin::{JobQuery, MinuteView, QueueSummary, QueueView, WorkerView};
use crate::health::{CheckStatus, HealthStatus, Importance};
use crate::queue::{Chain, ChildOutcome, JobId, JobInfo, JobState, QueueError};

/// The most jobs a page lists.
pub(crate) const MAX_LIMIT: usize = 200;

/// What one request's page needs besides its content.
pub(crate) struct Ctx {
    pub(crate) csrf: String,
    new_csrf: bool,
    secure: bool,
    pub(crate) access: Access,
    here: String,
    flash: Option<Flash>,
}

impl Ctx {
    pub(crate) fn new(app: &App, headers: &HeaderMap, uri: &Uri, flash: Option<Flash>) -> Ctx {
        let existing = security::cookie(headers, CSRF_COOKIE)
            .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        let (csrf, new_csrf) = match existing {
            Some(v) => (v.to_owned(), false),
            None => (security::new_csrf(), true),
        };
        Ctx {
            csrf,
            new_csrf,
            secure: security::over_https(headers),
            access: security::access(&app.config, &app.session, headers),
            here: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
            flash,
        }
    }

    /// The hidden CSRF field of a form.
    pub(crate) fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"_csrf\" value=\"{}\">",
            esc(&self.csrf)
        )
    }
}

/// Which page is being drawn.
pub(crate) struct Screen<'a> {
    pub(crate) title: &'a str,
    pub(crate) nav: Nav,
    pub(crate) queue: Option<&'a str>,
}

/// A page: the frame around `body`, with the CSRF cookie if it is new.
pub(crate) fn render(
    app: &App,
    ctx: &Ctx,
    queues: &[QueueSummary],
    screen: Screen<'_>,
    status: StatusCode,
    body: &str,
) -> Response {
    let side: Vec<(String, u64, bool)> = queues
        .iter()
        .map(|q| (q.name.clone(), q.counts.failed(), q.counts.paused))
        .collect();
    let html = page(
        &Frame {
            prefix: app.prefix(),
            title: screen.title,
            nav: screen.nav,
            queues: &side,
            current_queue: screen.queue,
            has_process: app.process.is_some(),
            access: ctx.access,
            csrf: &ctx.csrf,
            refresh_ms: app.config.refresh_ms,
            backend: app.admin.backend().kind(),
            flash: ctx.flash.as_ref().map(|f| Flash {
                ok: f.ok,
                text: f.text.clone(),
            }),
            here: &ctx.here,
        },
        body,
    );
    let mut response = (status, Html(html)).into_response();
    if ctx.new_csrf {
        response.headers_mut().append(
            header::SET_COOKIE,
            security::set_cookie(
                CSRF_COOKIE,
                &ctx.csrf,
                security::cookie_path(app.prefix()),
                None,
                ctx.secure,
            ),
        );
    }
    response
}

/// A page that says what went wrong.
pub(crate) async fn problem(
    app: &App,
    ctx: &Ctx,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let queues = app.admin.queues().await.unwrap_or_default();
    let body = format!(
        "<div class=\"page-head\"><h1>{}</h1></div><div class=\"card problem\"><p>{}</p><p><a href=\"{}/\">Back to the overview</a></p></div>",
        esc(title),
        esc(text),
        app.prefix()
    );
    render(
        app,
        ctx,
        &queues,
        Screen {
            title,
            nav: Nav::Overview,
            queue: None,
        },
        status,
        &body,
    )
}

/// A backend error as a page.
pub(crate) async fn backend_problem(app: &App, ctx: &Ctx, error: &QueueError) -> Response {
    match error {
        QueueError::NoSuchQueue { queue } => {
            problem(
                app,
                ctx,
                StatusCode::NOT_FOUND,
                "No such queue",
                &format!("The backend knows no queue `{queue}`."),
            )
            .await
        }
        QueueError::InvalidName { .. } => {
            problem(
                app,
                ctx,
                StatusCode::BAD_REQUEST,
                "Invalid name",
                &error.to_string(),
            )
            .await
        }
        _ => {
            let text = format!("The queue backend did not answer: {}", Chain(error));
            // The frame's queue list needs the backend too: leave it empty.
            let body = format!(
                "<div class=\"page-head\"><h1>Backend unavailable</h1></div><div class=\"card problem\"><p>{}</p><p class=\"muted\">This page retries when reloaded.</p></div>",
                esc(&text)
            );
            render(
                app,
                ctx,
                &[],
                Screen {
                    title: "Backend unavailable",
                    nav: Nav::Overview,
                    queue: None,
                },
                StatusCode::SERVICE_UNAVAILABLE,
                &body,
            )
        }
    }
}

/// The flash message a redirect after an action asks for.
pub(crate) fn flash_from(query: &HashMap<String, String>) -> Option<Flash> {
    let n: u64 = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let skipped: u64 = query
        .get("skipped")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let jobs = |n: u64| {
        if n == 1 {
            "1 job".to_owned()
        } else {
            format!("{} jobs", num(n))
        }
    };
    let (ok, text) = match query.get("done")?.as_str() {
        "retried" => (n > 0, format!("{} requeued.", jobs(n))),
        "removed" if skipped > 0 => (
            true,
            format!(
                "{} removed; {} left alone because running.",
                jobs(n),
                jobs(skipped)
            ),
        ),
        "removed" => (true, format!("{} removed.", jobs(n))),
        "promoted" if n > 0 => (true, "The job is due now.".to_owned()),
        "promoted" => (
            false,
            "The job was not delayed: nothing to promote.".to_owned(),
        ),
        "paused" => (
            true,
            "The queue is paused: workers take no more of its jobs.".to_owned(),
        ),
        "resumed" => (true, "The queue is resumed.".to_owned()),
        "cleaned" => (true, format!("{} cleaned.", jobs(n))),
        "signed-in" => (true, "Signed in: actions are on.".to_owned()),
        "signed-out" => (true, "Signed out.".to_owned()),
        _ => return None,
    };
    Some(Flash { ok, text })
}

/// The last hour of every queue, summed.
async fn hour(app: &App, queues: &[QueueSummary]) -> Result<Vec<MinuteView>, QueueError> {
    let mut series = Vec::with_capacity(queues.len());
    for q in queues {
        let minutes = app.admin.throughput(&q.name, 60).await?;
        series.push(minutes.iter().map(MinuteView::from).collect::<Vec<_>>());
    }
    Ok(chart::sum(&series, 60))
}

/// One queue's last hour.
pub(crate) async fn queue_hour(app: &App, queue: &str) -> Result<Vec<MinuteView>, QueueError> {
    Ok(app
        .admin
        .throughput(queue, 60)
        .await?
        .iter()
        .map(MinuteView::from)
        .collect())
}

/// The chart card's markup.
pub(crate) fn chart_card(minutes: &[MinuteView], label: &str) -> String {
    let completed: u64 = minutes.iter().map(|m| m.completed).sum();
    let failed: u64 = minutes.iter().map(|m| m.failed).sum();
    format!(
        "<section class=\"card\"><div class=\"card-head\"><h2>Throughput <span class=\"muted\">· last hour</span></h2><div class=\"legend\"><span class=\"key key-completed\"></span>completed <b data-hour=\"completed\">{}</b><span class=\"key key-failed\"></span>failed <b data-hour=\"failed\">{}</b></div></div><div class=\"chart-box\" data-chart>{}</div></section>",
        num(completed),
        num(failed),
        chart::throughput(minutes, label)
    )
}

fn count_cell(queue: &str, state: JobState, n: u64, prefix: &str) -> String {
    let zero = if n == 0 { " zero" } else { "" };
    format!(
        "<td class=\"num\"><a class=\"count count-{s}{zero}\" href=\"{prefix}/queues/{q}?state={s}\" data-count=\"{qe}/{s}\">{n}</a></td>",
        s = state.as_str(),
        q = enc(queue),
        qe = esc(queue),
        n = num(n)
    )
}

pub(crate) async fn overview(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let ctx = Ctx::new(&app, &headers, &uri, flash_from(&query));
    let queues = match app.admin.queues().await {
        Ok(q) => q,
        Err(e) => return backend_problem(&app, &ctx, &e).await,
    };
    let minutes = match hour(&app, &queues).await {
        Ok(m) => m,
        Err(e) => return backend_problem(&app, &ctx, &e).await,
    };
    let p = app.prefix();
    let mut body = String::new();
    body.push_str("<div class=\"page-head\"><h1>Overview</h1><p class=\"muted\">Every queue the backend knows, with its jobs per state.</p></div>\n");
    // Totals.
    body.push_str("<section class=\"stats\">");
    for state in JobState::ALL {
        let total: u64 = queues.iter().map(|q| q.counts.state(state)).sum();
        let _ = write!(
            body,
            "<div class=\"stat stat-{s}\"><div class=\"stat-label\">{s}</div><div class=\"stat-value\" data-total=\"{s}\">{n}</div></div>",
            s = state.as_str(),
            n = num(total)
        );
    }
    body.push_str("</section>\n");
    body.push_str(&chart_card(&minutes, "All queues, jobs per minute"));
    body.push_str("<section class=\"card\"><div class=\"card-head\"><h2>Queues</h2></div>");
    if queues.is_empty() {
        body.push_str(&empty(
            "No queue yet: a queue appears once a job is added to it or a worker starts on it.",
        ));
    } else {
        body.push_str("<table class=\"table\"><thead><tr><th>Queue</th><th>Status</th>");
        for state in JobState::ALL {
            let _ = write!(body, "<th class=\"num\">{}</th>", state.as_str());
        }
        body.push_str("<th class=\"num\">Pending by priority</th></tr></thead><tbody>");
        for q in &queues {
            let view = QueueView::from(q);
            let _ = write!(
                body,
                "<tr><td><a class=\"strong\" href=\"{p}/queues/{}\">{}</a></td><td>{}</td>",
                enc(&q.name),
                esc(&q.name),
                if q.counts.paused {
                    "<span class=\"badge badge-paused\">paused</span>"
                } else {
                    "<span class=\"badge badge-running\">running</span>"
                }
            );
            for state in JobState::ALL {
                body.push_str(&count_cell(&q.name, state, q.counts.state(state), p));
            }
            body.push_str("<td class=\"num prio\">");
            for (priority, n) in &view.pending_by_priority {
                if *n > 0 {
                    let _ = write!(
                        body,
                        "<span class=\"prio-chip prio-{priority}\">{priority} {}</span>",
                        num(*n)
                    );
                }
            }
            body.push_str("</td></tr>");
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>\n");
    render(
        &app,
        &ctx,
        &queues,
        Screen {
            title: "Overview",
            nav: Nav::Overview,
            queue: None,
        },
        StatusCode::OK,
        &body,
    )
}

fn parse_state(text: &str) -> Option<JobState> {
    JobState::ALL.into_iter().find(|s| s.as_str() == text)
}

pub(crate) async fn queue(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let ctx = Ctx::new(&app, &headers, &uri, flash_from(&query));
    let state = match query.get("state").map(String::as_str) {
        None | Some("") => JobState::Waiting,
        Some(text) => match parse_state(text) {
            Some(s) => s,
            None => {
                return problem(
                    &app,
                    &ctx,
                    StatusCode::BAD_REQUEST,
                    "Unknown state",
                    &format!(
                        "There is no state `{text}`; use one of waiting, delayed, active, completed, failed."
                    ),
                )
                .await;
            }
        },
    };
    let offset: usize = query
        .get("offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .clamp(1, MAX_LIMIT);
    let search = query.get("q").map(|s| s.trim()).unwrap_or("").to_owned();

    if let Err(e) = app.admin.expect_queue(&name).await {
        return backend_problem(&app, &ctx, &e).await;
    }
    let queues = match app.admin.queues().await {
        Ok(q) => q,
        Err(e) => return backend_problem(&app, &ctx, &e).await,
    };
    let counts = queues
        .iter()
        .find(|q| q.name == name)
        .map(|q| q.counts)
        .unwrap_or_default();
    // A search finds the job of that id, in whatever state, and the jobs
    // of the handler of that name in the state shown.
    let mut found_by_id: Option<JobInfo> = None;
    let page_result = if search.is_empty() {
        app.admin
            .jobs(&name, &JobQuery::new(state).offset(offset).limit(limit))
            .await
    } else {
        match app.admin.job(&name, &JobId::from(search.as_str())).await {
            Ok(job) => found_by_id = job,
            Err(QueueError::InvalidName { .. }) => {}
            Err(e) => return backend_problem(&app, &ctx, &e).await,
        }
        app.admin
            .jobs(
                &name,
                &JobQuery::new(state)
                    .name(search.clone())
                    .offset(offset)
                    .limit(limit),
            )
            .await
    };
    let jobs_page = match page_result {
        Ok(p) => p,
        Err(e) => return backend_problem(&app, &ctx, &e).await,
    };
    let minutes = match queue_hour(&app, &name).await {
        Ok(m) => m,
        Err(e) => return backend_problem(&app, &ctx, &e).await,
    };
    let schedules = match app.admin.schedules(&name).await {
        Ok(s) => s,
        Err(e) => return backend_problem(&app, &ctx, &e).await,
    };
    let p = app.prefix();
    let q = enc(&name);
    let now = SystemTime::now();
    let can_write = ctx.access.can_write();
    let show = app.config.show_payloads;
    let mut body = String::new();

    // Head: name, status, pause or resume.
    let _ = write!(
        body,
        "<div class=\"page-head row\"><div><div class=\"crumbs\"><a href=\"{p}/\">Overview</a> / queue</div><h1>{} {}</h1></div><div class=\"actions\">",
        esc(&name),
        if counts.paused {
            "<span class=\"badge badge-paused\" data-paused>paused</span>"
        } else {
            ""
        }
    );
    if can_write {
        let (action, label) = if counts.paused {
            ("resume", "Resume")
        } else {
            ("pause", "Pause")
        };
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{p}/queues/{q}/{action}\" class=\"inline\">{}<input type=\"hidden\" name=\"back\" value=\"{}\"><button class=\"btn\" type=\"submit\">{label}</button></form>",
            ctx.csrf_field(),
            esc(&ctx.here)
        );
    }
    body.push_str("</div></div>\n");

    // Tabs per state.
    body.push_str("<nav class=\"tabs\">");
    for s in JobState::ALL {
        let on = if s == state { " on" } else { "" };
        let _ = write!(
            body,
            "<a class=\"tab tab-{st}{on}\" href=\"{p}/queues/{q}?state={st}\"><span class=\"tab-label\">{st}</span><span class=\"tab-count\" data-count=\"{qe}/{st}\">{n}</span></a>",
            st = s.as_str(),
            qe = esc(&name),
            n = num(counts.state(s))
        );
    }
    body.push_str("</nav>\n");

    // The list.
    let _ = write!(
        body,
        "<section class=\"card\"><div class=\"toolbar\"><form method=\"get\" action=\"{p}/queues/{q}\" class=\"search\"><input type=\"hidden\" name=\"state\" value=\"{st}\"><input type=\"search\" name=\"q\" value=\"{sv}\" placeholder=\"Job id or handler name\" aria-label=\"Search\"><button class=\"btn\" type=\"submit\">Search</button>{clear}</form><div class=\"notice hidden\" id=\"changed\" data-watch=\"{qe}/{st}\" data-seen=\"{seen}\">This list has changed. <a href=\"{here}\">Refresh</a></div></div>",
        st = state.as_str(),
        sv = esc(&search),
        clear = if search.is_empty() {
            String::new()
        } else {
            format!(
                "<a class=\"btn btn-ghost\" href=\"{p}/queues/{q}?state={}\">Clear</a>",
                state.as_str()
            )
        },
        qe = esc(&name),
        seen = counts.state(state),
        here = esc(&ctx.here),
    );

    if let Some(job) = &found_by_id {
        let _ = write!(
            body,
            "<div class=\"found\">Job <a class=\"mono strong\" href=\"{p}/queues/{q}/jobs/{}\">{}</a> is {} ({}).</div>",
            enc(job.id.as_str()),
            esc(job.id.as_str()),
            state_badge(job.state),
            esc(&job.name)
        );
    }

    let form_id = "bulk";
    let bulk_actions = can_write
        && !jobs_page.jobs.is_empty()
        && matches!(
            state,
            JobState::Failed | JobState::Completed | JobState::Waiting | JobState::Delayed
        );
    if jobs_page.jobs.is_empty() {
        let text = if search.is_empty() {
            format!("No {} jobs.", state.as_str())
        } else {
            format!("No {} jobs of a handler named `{search}`.", state.as_str())
        };
        body.push_str(&empty(&text));
    } else {
        if bulk_actions {
            let _ = write!(
                body,
                "<form method=\"post\" id=\"{form_id}\" action=\"{p}/queues/{q}/retry\">{}<input type=\"hidden\" name=\"back\" value=\"{}\"></form>",
                ctx.csrf_field(),
                esc(&ctx.here)
            );
        }
        body.push_str("<table class=\"table jobs\"><thead><tr>");
        if bulk_actions {
            let _ = write!(
                body,
                "<th class=\"check\"><input type=\"checkbox\" data-select-all=\"{form_id}\" aria-label=\"Select all\"></th>"
            );
        }
        let time_label = match state {
            JobState::Waiting | JobState::WaitingChildren => "Added",
            JobState::Delayed => "Due",
            JobState::Active => "Started",
            JobState::Completed => "Completed",
            JobState::Failed => "Failed",
            JobState::Cancelled => "Cancelled",
        };
        let _ = write!(
            body,
            "<th>Id</th><th>Handler</th><th>Priority</th><th class=\"num\">Attempts</th><th>{time_label}</th><th>{}</th></tr></thead><tbody>",
            match state {
                JobState::Failed => "Last error",
                JobState::Completed if show => "Result",
                _ if show => "Payload",
                JobState::Waiting => "Due",
                _ => "Added",
            }
        );
        for job in &jobs_page.jobs {
            let id = job.id.as_str();
            body.push_str("<tr>");
            if bulk_actions {
                let _ = write!(
                    body,
                    "<td class=\"check\"><input type=\"checkbox\" name=\"ids\" value=\"{}\" form=\"{form_id}\" aria-label=\"Select {}\"></td>",
                    esc(id),
                    esc(id)
                );
            }
            let time = match state {
                JobState::Waiting | JobState::WaitingChildren => when(job.enqueued_at, now),
                JobState::Delayed => when(job.due_at, now),
                JobState::Active => when_opt(job.started_at, now),
                JobState::Completed | JobState::Failed | JobState::Cancelled => {
                    when_opt(job.finished_at, now)
                }
            };
            let dash = || "<span class=\"muted\">—</span>".to_owned();
            let json = |text: &str| format!("<span class=\"json\">{}</span>", snippet(text, 110));
            let last = match state {
                JobState::Failed => job.errors.last().map_or_else(dash, |e| {
                    format!(
                        "<span class=\"error-text\">{}</span>",
                        snippet(&e.message, 90)
                    )
                }),
                JobState::Completed if show => job.result.as_deref().map_or_else(dash, json),
                _ if show => json(&job.payload),
                JobState::Waiting => when(job.due_at, now),
                _ => when(job.enqueued_at, now),
            };
            let _ = write!(
                body,
                "<td><a class=\"mono\" href=\"{p}/queues/{q}/jobs/{}\" data-job=\"{}\">{}</a></td><td>{}</td><td><span class=\"prio-chip prio-{pr}\">{pr}</span></td><td class=\"num\">{}/{}</td><td>{time}</td><td class=\"wide\">{last}</td></tr>",
                enc(id),
                esc(id),
                snippet(id, 40),
                esc(&job.name),
                job.attempts_made,
                job.max_attempts,
                pr = job.priority,
            );
        }
        body.push_str("</tbody></table>");
    }

    // Paging and the bulk buttons.
    body.push_str("<div class=\"footer-bar\"><div class=\"bulk\">");
    if bulk_actions {
        if state == JobState::Failed {
            let _ = write!(
                body,
                "<button class=\"btn btn-primary\" type=\"submit\" form=\"{form_id}\" formaction=\"{p}/queues/{q}/retry\" data-needs-selection>Retry selected</button>"
            );
        }
        let _ = write!(
            body,
            "<button class=\"btn btn-danger\" type=\"submit\" form=\"{form_id}\" formaction=\"{p}/queues/{q}/remove\" data-needs-selection data-confirm=\"Remove the selected jobs? This cannot be undone.\">Remove selected</button>"
        );
    }
    body.push_str("</div><div class=\"pager\">");
    let link = |offset: usize| {
        let mut href = format!("{p}/queues/{q}?state={}&offset={offset}", state.as_str());
        if limit != 50 {
            let _ = write!(href, "&limit={limit}");
        }
        if !search.is_empty() {
            let _ = write!(href, "&q={}", enc(&search));
        }
        href
    };
    let shown = jobs_page.jobs.len();
    if shown > 0 {
        let _ = write!(
            body,
            "<span class=\"muted\">{}–{}{}</span>",
            num(offset as u64 + 1),
            num((offset + shown) as u64),
            if search.is_empty() {
                format!(" of {}", num(counts.state(state)))
            } else {
                String::new()
            }
        );
    }
    if offset > 0 {
        let _ = write!(
            body,
            "<a class=\"btn btn-ghost\" href=\"{}\" rel=\"prev\">← Previous</a>",
            esc(&link(offset.saturating_sub(limit)))
        );
    }
    if let Some(next) = jobs_page.next {
        let _ = write!(
            body,
            "<a class=\"btn btn-ghost\" href=\"{}\" rel=\"next\">Next →</a>",
            esc(&link(next))
        );
    }
    body.push_str("</div></div></section>\n");

    // Queue-wide actions.
    if can_write {
        let _ = write!(
            body,
            "<section class=\"card\"><div class=\"card-head\"><h2>Maintenance</h2></div><div class=\"maint\">"
        );
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{p}/queues/{q}/retry-all\" class=\"maint-item\" data-confirm=\"Requeue every failed job of this queue?\">{}<input type=\"hidden\" name=\"back\" value=\"{}\"><div><b>Retry all failed</b><p class=\"muted\">Requeues all {} failed jobs with fresh attempts, 1,000 at a time.</p></div><button class=\"btn\" type=\"submit\"{}>Retry all failed</button></form>",
            ctx.csrf_field(),
            esc(&ctx.here),
            num(counts.failed()),
            if counts.failed() == 0 {
                " disabled"
            } else {
                ""
            }
        );
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{p}/queues/{q}/clean\" class=\"maint-item\" data-confirm=\"Remove these finished jobs? This cannot be undone.\">{}<input type=\"hidden\" name=\"back\" value=\"{}\"><div><b>Clean</b><p class=\"muted\">Removes finished jobs older than the age given.</p></div><div class=\"controls\"><select name=\"state\" aria-label=\"Which jobs\"><option value=\"completed\">completed</option><option value=\"failed\">failed</option><option value=\"cancelled\">cancelled</option></select><input name=\"older_than\" value=\"1h\" size=\"6\" aria-label=\"Older than\" title=\"Older than, such as 30m, 1h, 7d\"><button class=\"btn btn-danger\" type=\"submit\">Clean</button></div></form>",
            ctx.csrf_field(),
            esc(&ctx.here)
        );
        body.push_str("</div></section>\n");
    }
    body.push_str(&chart_card(&minutes, &format!("{name}, jobs per minute")));
    if !schedules.is_empty() {
        let _ = write!(
            body,
            "<section class=\"card\"><div class=\"card-head\"><h2>Recurring jobs <span class=\"muted\">· {}</span></h2></div><table class=\"table\"><thead><tr><th>Schedule</th><th>Handler</th><th>When</th><th>Missed ticks</th><th>Next</th><th>Last</th></tr></thead><tbody>",
            schedules.len()
        );
        let at = |ms: u64| when(crate::queue::time::from_millis(ms), now);
        for entry in &schedules {
            let _ = write!(
                body,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&entry.id),
                esc(&entry.job.name),
                esc(&entry.spec),
                esc(&entry.missed.to_string()),
                entry
                    .ticks
                    .first()
                    .map_or_else(|| "<span class=\"muted\">—</span>".to_owned(), |&t| at(t)),
                entry
                    .last_tick
                    .map_or_else(|| "<span class=\"muted\">—</span>".to_owned(), at),
            );
        }
        body.push_str("</tbody></table></section>\n");
    }

    render(
        &app,
        &ctx,
        &queues,
        Screen {
            title: &name,
            nav: Nav::Queues,
            queue: Some(&name),
        },
        StatusCode::OK,
        &body,
    )
}

fn pretty(json: &serde_json::Value) -> String {
    serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string())
}

pub(crate) async fn job(
    State(app): State<App>,
    Path((queue, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let ctx = Ctx::new(&app, &headers, &uri, flash_from(&query));
    if let Err(e) = app.admin.expect_queue(&queue).await {
        return backend_problem(&app, &ctx, &e).await;
    }
    let job = match app.admin.job(&queue, &JobId::from(id.as_str())).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            return problem(
                &app,
                &ctx,
                StatusCode::NOT_FOUND,
                "No such job",
                &format!(
                    "Queue `{queue}` has no job `{id}`: it may have been removed, or cleaned after it finished."
                ),
            )
            .await;
        }
        Err(QueueError::InvalidName { .. }) => {
            return problem(
                &app,
                &ctx,
                StatusCode::BAD_REQUEST,
                "Invalid job id",
                &format!("`{id}` cannot be a job id."),
            )
            .await;
        }
        Err(e) => return backend_problem(&app, &ctx, &e).await,
    };
    let queues = match app.admin.queues().await {
        Ok(q) => q,
        Err(e) => return backend_problem(&app, &ctx, &e).await,
    };
    let show = app.config.show_payloads;
    let view = crate::admin::JobView::new(&queue, &job, show);
    let p = app.prefix();
    let q = enc(&queue);
    let jid = enc(job.id.as_str());
    let now = SystemTime::now();
    let mut body = String::new();
    let _ = write!(
        body,
        "<div class=\"page-head row\"><div><div class=\"crumbs\"><a href=\"{p}/\">Overview</a> / <a href=\"{p}/queues/{q}?state={st}\">{qn}</a> / job</div><h1><span class=\"mono\">{}</span> {}</h1><p class=\"muted\">{} on {}</p></div><div class=\"actions\">",
        esc(job.id.as_str()),
        state_badge(job.state),
        esc(&job.name),
        esc(&queue),
        st = job.state.as_str(),
        qn = esc(&queue),
    );
    let back = format!("{p}/queues/{q}/jobs/{jid}");
    let button = |body: &mut String,
                  action: &str,
                  label: &str,
                  class: &str,
                  confirm: Option<&str>| {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{p}/queues/{q}/jobs/{jid}/{action}\" class=\"inline\"{}>{}<input type=\"hidden\" name=\"back\" value=\"{}\"><button class=\"btn {class}\" type=\"submit\" id=\"job-{action}\">{label}</button></form>",
            confirm.map_or(String::new(), |c| format!(" data-confirm=\"{}\"", esc(c))),
            ctx.csrf_field(),
            esc(&back),
        );
    };
    match ctx.access {
        Access::SignedIn | Access::Layer => {
            if job.state == JobState::Failed {
                button(&mut body, "retry", "Retry", "btn-primary", None);
            }
            if job.state == JobState::Delayed {
                button(&mut body, "promote", "Run now", "btn-primary", None);
            }
            if matches!(
                job.state,
                JobState::Waiting | JobState::Delayed | JobState::Active
            ) {
                button(
                    &mut body,
                    "cancel",
                    "Cancel",
                    "btn-danger",
                    Some(if job.state == JobState::Active {
                        "Cancel this running job? Its cancellation token fires where it runs, and it ends cancelled."
                    } else {
                        "Cancel this job? It will not run."
                    }),
                );
            }
            if job.state != JobState::Active {
                button(
                    &mut body,
                    "remove",
                    "Remove",
                    "btn-danger",
                    Some("Remove this job? This cannot be undone."),
                );
            }
        }
        Access::Locked => {
            let _ = write!(
                body,
                "<a class=\"btn\" href=\"{p}/login?next={}\">Sign in to act</a>",
                enc(&ctx.here)
            );
        }
        Access::ReadOnly => {}
    }
    body.push_str("</div></div>\n<div class=\"grid-2\">\n");

    // Facts.
    body.push_str("<section class=\"card\"><div class=\"card-head\"><h2>Details</h2></div><dl class=\"facts\">");
    let mut fact = |k: &str, v: String| {
        let _ = write!(body, "<dt>{k}</dt><dd>{v}</dd>");
    };
    fact("State", state_badge(job.state));
    fact(
        "Handler",
        format!("<span class=\"mono\">{}</span>", esc(&job.name)),
    );
    fact(
        "Priority",
        format!(
            "<span class=\"prio-chip prio-{p}\">{p}</span>",
            p = job.priority
        ),
    );
    fact(
        "Attempts",
        format!("{} of {}", job.attempts_made, job.max_attempts),
    );
    fact("Backoff", esc(&view.backoff).to_string());
    fact(
        "Timeout",
        job.timeout.map_or_else(
            || "<span class=\"muted\">none</span>".to_owned(),
            |t| esc(&humantime::format_duration(t).to_string()).to_string(),
        ),
    );
    fact("Added", when(job.enqueued_at, now));
    fact("Due", when(job.due_at, now));
    fact("Started", when_opt(job.started_at, now));
    fact("Finished", when_opt(job.finished_at, now));
    if let (Some(start), Some(end)) = (job.started_at, job.finished_at)
        && let Ok(took) = end.duration_since(start)
    {
        let text = if took < std::time::Duration::from_secs(1) {
            format!("{} ms", took.as_millis())
        } else {
            format!("{:.2} s", took.as_secs_f64())
        };
        fact("Last attempt took", text);
    }
    if job.stalled > 0 {
        fact("Stalled", format!("{} time(s)", job.stalled));
    }
    if !job.deferrals.is_empty() {
        fact(
            "Deferred",
            format!(
                "{} of at most {} time(s)",
                job.deferrals.len(),
                job.max_deferrals
            ),
        );
    }
    match &view.trace_id {
        Some(trace) => {
            let text = format!("<span class=\"mono\">{}</span>", esc(trace));
            let v = match app.config.trace_link(trace) {
                Some(link) => format!(
                    "<a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">{text} ↗</a>",
                    esc(&link)
                ),
                None => text,
            };
            fact("Trace", v);
        }
        None => fact(
            "Trace",
            "<span class=\"muted\">not traced</span>".to_owned(),
        ),
    }
    if let Some(request) = &view.request_id {
        fact(
            "Request id",
            format!("<span class=\"mono\">{}</span>", esc(request)),
        );
    }
    body.push_str("</dl></section>\n");

    // Payload, result, progress.
    body.push_str("<div class=\"stack\">");
    let block = |body: &mut String,
                 title: &str,
                 id: &str,
                 value: Option<&serde_json::Value>,
                 none: &str| {
        let _ = write!(
            body,
            "<section class=\"card\"><div class=\"card-head\"><h2>{title}</h2></div>"
        );
        match value {
            Some(v) => {
                let _ = write!(
                    body,
                    "<pre class=\"code\" id=\"{id}\">{}</pre>",
                    esc(&pretty(v))
                );
            }
            None => {
                let _ = write!(
                    body,
                    "<div class=\"empty small\" id=\"{id}\">{}</div>",
                    esc(none)
                );
            }
        }
        body.push_str("</section>");
    };
    let hidden =
        "Hidden: this dashboard is set not to show payloads (ATHYPER_ADMIN_SHOW_PAYLOADS=false).";
    block(
        &mut body,
        "Payload",
        "payload",
        view.payload.as_ref(),
        hidden,
    );
    if job.state == JobState::Completed || job.result.is_some() {
        let none = if show {
            "The handler returned no value."
        } else {
            hidden
        };
        block(&mut body, "Result", "result", view.result.as_ref(), none);
    }
    if job.progress.is_some() {
        let progress = if show { view.progress.as_ref() } else { None };
        block(&mut body, "Progress", "progress", progress, hidden);
    }
    body.push_str("</div></div>\n");

    // Attempts.
    let _ = write!(
        body,
        "<section class=\"card\"><div class=\"card-head\"><h2>Failed attempts <span class=\"muted\">· {}</span></h2></div>",
        job.errors.len()
    );
    if job.errors.is_empty() {
        body.push_str(&empty("No attempt of this job has failed."));
    } else {
        body.push_str("<ol class=\"attempts\">");
        for e in job.errors.iter().rev() {
            let _ = write!(
                body,
                "<li><div class=\"attempt-head\"><span class=\"badge badge-failed\">attempt {}</span> {}</div><pre class=\"code error\">{}</pre></li>",
                e.attempt,
                when(e.at, now),
                esc(&e.message)
            );
        }
        body.push_str("</ol>");
    }
    body.push_str("</section>\n");
    if job.parent.is_some() || job.children > 0 {
        body.push_str(&flow_card(&app, &queue, &job).await);
    }
    if !job.deferrals.is_empty() {
        body.push_str("<section class=\"card\"><div class=\"card-head\"><h2>Deferrals</h2></div><table class=\"table\"><thead><tr><th>When</th><th>For</th><th>Why</th></tr></thead><tbody>");
        for d in job.deferrals.iter().rev() {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                when(d.at, now),
                esc(&short(d.delay)),
                esc(&d.reason)
            );
        }
        body.push_str("</tbody></table></section>\n");
    }

    let title = format!("Job {}", job.id);
    render(
        &app,
        &ctx,
        &queues,
        Screen {
            title: &title,
            nav: Nav::Queues,
            queue: Some(&queue),
        },
        StatusCode::OK,
        &body,
    )
}

/// A job's place in its flow: the parent it reports to, and its children
/// with how each ended.
async fn flow_card(app: &App, queue: &str, job: &JobInfo) -> String {
    let p = app.prefix();
    let mut card = String::from(
        "<section class=\"card\" id=\"flow\"><div class=\"card-head\"><h2>Flow</h2></div>",
    );
    if let Some(parent) = &job.parent {
        let _ = write!(
            card,
            "<p>Child {} of <a class=\"mono\" href=\"{p}/queues/{}/jobs/{}\">{}</a> in <b>{}</b>.</p>",
            parent.index,
            enc(&parent.queue),
            enc(parent.id.as_str()),
            esc(parent.id.as_str()),
            esc(&parent.queue)
        );
    }
    if job.children > 0 {
        match app.admin.children(queue, &job.id).await {
            Ok(children) => {
                card.push_str("<table class=\"table\" id=\"children\"><thead><tr><th>Child</th><th>Queue</th><th>Handler</th><th>Outcome</th></tr></thead><tbody>");
                for child in &children {
                    // HTML: `snippet` escapes the error.
                    let (class, text) = match &child.outcome {
                        ChildOutcome::Pending => ("muted", "pending".to_owned()),
                        ChildOutcome::Completed(_) => ("completed", "completed".to_owned()),
                        ChildOutcome::Failed(error) => {
                            ("failed", format!("failed: {}", snippet(error, 80)))
                        }
                        ChildOutcome::Cancelled => ("failed", "cancelled".to_owned()),
                        ChildOutcome::Removed => ("failed", "removed".to_owned()),
                    };
                    let _ = write!(
                        card,
                        "<tr><td><a class=\"mono\" href=\"{p}/queues/{}/jobs/{}\">{}</a></td><td>{}</td><td>{}</td><td><span class=\"badge badge-{class}\">{}</span></td></tr>",
                        enc(&child.queue),
                        enc(child.id.as_str()),
                        esc(child.id.as_str()),
                        esc(&child.queue),
                        esc(&child.name),
                        text
                    );
                }
                card.push_str("</tbody></table>");
            }
            Err(e) => {
                let _ = write!(
                    card,
                    "<p class=\"muted\">Its {} children could not be read: {}</p>",
                    job.children,
                    esc(&e.to_string())
                );
            }
        }
    }
    card.push_str("</section>\n");
    card
}

pub(crate) async fn workers(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = Ctx::new(&app, &headers, &uri, None);
    let queues = match app.admin.queues().await {
        Ok(q) => q,
        Err(e) => return backend_problem(&app, &ctx, &e).await,
    };
    let p = app.prefix();
    let now = SystemTime::now();
    let mut all = Vec::new();
    for q in &queues {
        match app.admin.workers(&q.name).await {
            Ok(w) => all.push((q.name.clone(), w)),
            Err(e) => return backend_problem(&app, &ctx, &e).await,
        }
    }
    let total: usize = all.iter().map(|(_, w)| w.len()).sum();
    let busy: usize = all
        .iter()
        .flat_map(|(_, w)| w.iter())
        .map(|w| w.running.len())
        .sum();
    let slots: usize = all
        .iter()
        .flat_map(|(_, w)| w.iter())
        .map(|w| w.concurrency)
        .sum();
    let mut body = String::new();
    let _ = write!(
        body,
        "<div class=\"page-head\"><h1>Workers</h1><p class=\"muted\">Each worker holds a lease that it renews; a job on a worker whose lease ran out goes back to waiting.</p></div><section class=\"stats\"><div class=\"stat\"><div class=\"stat-label\">workers</div><div class=\"stat-value\">{}</div></div><div class=\"stat stat-active\"><div class=\"stat-label\">jobs running</div><div class=\"stat-value\">{}</div></div><div class=\"stat\"><div class=\"stat-label\">slots</div><div class=\"stat-value\">{}</div></div></section>",
        num(total as u64),
        num(busy as u64),
        num(slots as u64)
    );
    if total == 0 {
        body.push_str("<section class=\"card\">");
        body.push_str(&empty("No worker is running on any queue."));
        body.push_str("</section>");
    }
    for (queue, workers) in &all {
        if workers.is_empty() {
            continue;
        }
        let _ = write!(
            body,
            "<section class=\"card\"><div class=\"card-head\"><h2><a href=\"{p}/queues/{}\">{}</a> <span class=\"muted\">· {} worker{}</span></h2></div><table class=\"table\"><thead><tr><th>Worker</th><th>Host</th><th class=\"num\">Pid</th><th>Handlers</th><th>Started</th><th>Lease</th><th class=\"num\">Busy</th><th>Running</th></tr></thead><tbody>",
            enc(queue),
            esc(queue),
            workers.len(),
            if workers.len() == 1 { "" } else { "s" }
        );
        for w in workers {
            let view = WorkerView::from(w);
            let lease = match w.lease_expires_at {
                Some(at) if at > now => format!(
                    "<span class=\"badge badge-completed\">held</span> {}",
                    when(at, now)
                ),
                Some(at) => format!(
                    "<span class=\"badge badge-failed\">expired</span> {}",
                    when(at, now)
                ),
                None => "<span class=\"badge badge-muted\">none yet</span>".to_owned(),
            };
            let running = if w.running.is_empty() {
                "<span class=\"muted\">idle</span>".to_owned()
            } else {
                w.running
                    .iter()
                    .take(8)
                    .map(|id| {
                        format!(
                            "<a class=\"mono chip\" href=\"{p}/queues/{}/jobs/{}\">{}</a>",
                            enc(queue),
                            enc(id.as_str()),
                            snippet(id.as_str(), 24)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
                    + &if w.running.len() > 8 {
                        format!(" <span class=\"muted\">+{}</span>", w.running.len() - 8)
                    } else {
                        String::new()
                    }
            };
            let load = (w.running.len() * 100 / w.concurrency.max(1)).min(100);
            let _ = write!(
                body,
                "<tr><td class=\"mono\" title=\"{id}\">{ids}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{lease}</td><td class=\"num\"><div class=\"meter\" title=\"{} of {} slots\"><span class=\"meter-{}\"></span></div>{}/{}</td><td>{running}</td></tr>",
                esc(&view.host),
                view.pid,
                view.handlers
                    .iter()
                    .map(|h| format!("<span class=\"chip\">{}</span>", esc(h)))
                    .collect::<Vec<_>>()
                    .join(" "),
                when(w.started_at, now),
                w.running.len(),
                w.concurrency,
                load / 10 * 10,
                w.running.len(),
                w.concurrency,
                id = esc(&view.id),
                ids = snippet(&view.id, 28),
            );
        }
        body.push_str("</tbody></table></section>");
    }
    render(
        &app,
        &ctx,
        &queues,
        Screen {
            title: "Workers",
            nav: Nav::Workers,
            queue: None,
        },
        StatusCode::OK,
        &body,
    )
}

pub(crate) async fn process(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = Ctx::new(&app, &headers, &uri, None);
    let Some(proc_) = app.process.clone() else {
        return problem(
            &app,
            &ctx,
            StatusCode::NOT_FOUND,
            "No process page",
            "This dashboard runs on its own, not inside an application: it has no breakers or health checks to show.",
        )
        .await;
    };
    let queues = app.admin.queues().await.unwrap_or_default();
    let now = SystemTime::now();
    let mut body = String::new();
    body.push_str("<div class=\"page-head\"><h1>Process</h1><p class=\"muted\">The circuit breakers and health checks of the process serving this page.</p></div>");

    if let Some(health) = &proc_.health {
        let report = health.report().await;
        let (class, text) = match report.status {
            HealthStatus::Healthy => ("completed", "healthy"),
            HealthStatus::Degraded => ("delayed", "degraded"),
            HealthStatus::Unhealthy => ("failed", "unhealthy"),
        };
        let phase = serde_json::to_value(report.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<section class=\"card\"><div class=\"card-head\"><h2>Health <span class=\"badge badge-{class}\" id=\"health-status\">{text}</span></h2><div class=\"muted\">phase <b>{}</b> · {}</div></div>",
            esc(&phase),
            if report.is_ready() {
                "ready for traffic"
            } else {
                "not ready"
            }
        );
        if report.checks.is_empty() {
            body.push_str(&empty("No health check is registered."));
        } else {
            body.push_str("<table class=\"table\"><thead><tr><th>Check</th><th>Importance</th><th>Status</th><th class=\"num\">Took</th><th>Error</th></tr></thead><tbody>");
            for c in &report.checks {
                let (sc, st) = match c.status {
                    CheckStatus::Pass => ("completed", "pass"),
                    CheckStatus::Fail if c.importance == Importance::Optional => {
                        ("delayed", "fail")
                    }
                    CheckStatus::Fail => ("failed", "fail"),
                };
                let _ = write!(
                    body,
                    "<tr><td class=\"strong\">{}</td><td>{}</td><td><span class=\"badge badge-{sc}\">{st}</span></td><td class=\"num\">{:.1} ms</td><td class=\"wide\">{}</td></tr>",
                    esc(&c.name),
                    match c.importance {
                        Importance::Required => "required",
                        Importance::Optional => "optional",
                    },
                    c.duration_ms,
                    c.error.as_deref().map_or_else(
                        || "<span class=\"muted\">—</span>".to_owned(),
                        |e| format!("<span class=\"error-text\">{}</span>", esc(e))
                    ),
                );
            }
            body.push_str("</tbody></table>");
        }
        body.push_str("</section>");
    }

    let _ = write!(
        body,
        "<section class=\"card\"><div class=\"card-head\"><h2>Circuit breakers <span class=\"muted\">· {}</span></h2></div>",
        proc_.breakers.len()
    );
    if proc_.breakers.is_empty() {
        body.push_str(&empty(
            "No adapter with a circuit breaker is attached to this runtime.",
        ));
    } else {
        body.push_str("<table class=\"table\"><thead><tr><th>Adapter</th><th>State</th><th>Since</th><th>Trips on</th><th class=\"num\">Open for</th><th class=\"num\">Trial calls</th></tr></thead><tbody>");
        proc_.observe();
        for (i, b) in proc_.breakers.iter().enumerate() {
            let state = b.state();
            let cfg = b.config();
            let mut trips = Vec::new();
            if let Some(n) = cfg.failure_threshold() {
                trips.push(format!("{n} consecutive failures"));
            }
            if let Some(rate) = cfg.failure_rate() {
                trips.push(format!(
                    "{:.0}% of the last {} calls failing (at least {})",
                    rate * 100.0,
                    cfg.window(),
                    cfg.min_calls()
                ));
            }
            if let Some((slow, rate)) = cfg.slow_calls() {
                trips.push(format!(
                    "{:.0}% of the last {} calls slower than {}",
                    rate * 100.0,
                    cfg.window(),
                    humantime::format_duration(slow)
                ));
            }
            let _ = write!(
                body,
                "<tr><td class=\"strong\">{}</td><td><span class=\"badge breaker-{s}\" data-breaker=\"{}\">{s}</span>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(b.name()),
                esc(b.name()),
                if b.is_forced_open() {
                    " <span class=\"muted small\">forced</span>"
                } else {
                    ""
                },
                proc_.since(i).map_or_else(String::new, |t| when(t, now)),
                esc(&trips.join(", or ")),
                esc(&humantime::format_duration(cfg.open_for()).to_string()),
                cfg.half_open_permits(),
                s = process::state_name(state),
            );
        }
        body.push_str("</tbody></table>");
        let transitions = proc_.transitions();
        body.push_str("<div class=\"card-sub\"><h3>Recent state changes</h3>");
        if transitions.is_empty() {
            body.push_str(&empty(
                "No breaker has changed state since this dashboard started.",
            ));
        } else {
            body.push_str("<ol class=\"timeline\">");
            for t in transitions.iter().take(20) {
                let _ = write!(
                    body,
                    "<li>{} <b>{}</b> <span class=\"badge breaker-{f}\">{f}</span> → <span class=\"badge breaker-{to}\">{to}</span></li>",
                    when(t.at, now),
                    esc(&t.breaker),
                    f = process::state_name(t.from),
                    to = process::state_name(t.to),
                );
            }
            body.push_str("</ol>");
        }
        let _ = write!(
            body,
            "<p class=\"muted small\">Seen by this dashboard, which looks every {} ms.</p></div>",
            process::SAMPLE_EVERY.as_millis()
        );
    }
    body.push_str("</section>");
    render(
        &app,
        &ctx,
        &queues,
        Screen {
            title: "Process",
            nav: Nav::Process,
            queue: None,
        },
        StatusCode::OK,
        &body,
    )
}

/// Where a sign-in or action may send the person back to: a page of
/// this dashboard, never another site.
pub(crate) fn safe_back(app: &App, back: Option<&str>) -> String {
    let p = app.prefix();
    match back {
        Some(b)
            if b.starts_with(&format!("{p}/"))
                && !b.starts_with("//")
                && !b.contains('\\')
                && !b.contains("://")
                && b.chars().all(|c| !c.is_control()) =>
        {
            b.to_owned()
        }
        _ => format!("{p}/"),
    }
}

/// The sign-in form.
fn login_body(app: &App, ctx: &Ctx, next: &str, error: Option<&str>) -> String {
    let p = app.prefix();
    let note = match &app.config.writes {
        super::Writes::Token(_) => {
            "Enter the admin token (ATHYPER_ADMIN_TOKEN) to retry, remove, promote, pause and clean. Reading needs no token."
        }
        super::Writes::Layer => {
            "Actions are authorised by the application in front of this dashboard: there is nothing to sign in to."
        }
        super::Writes::Off => {
            "This dashboard is read-only: set ATHYPER_ADMIN_TOKEN where it runs to allow actions."
        }
    };
    let mut body = format!(
        "<div class=\"login\"><section class=\"card\"><div class=\"card-head\"><h2>Sign in to act</h2></div><p class=\"muted\">{}</p>",
        esc(note)
    );
    if let Some(e) = error {
        let _ = write!(body, "<div class=\"flash flash-error\">{}</div>", esc(e));
    }
    if matches!(app.config.writes, super::Writes::Token(_)) {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{p}/login\" class=\"form\">{}<input type=\"hidden\" name=\"next\" value=\"{}\"><label for=\"token\">Admin token</label><input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" required autofocus><button class=\"btn btn-primary\" type=\"submit\" id=\"sign-in\">Sign in</button></form>",
            ctx.csrf_field(),
            esc(next)
        );
    }
    body.push_str("</section></div>");
    body
}

pub(crate) async fn login(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let ctx = Ctx::new(&app, &headers, &uri, None);
    let next = safe_back(&app, query.get("next").map(String::as_str));
    sign_in_page(&app, &ctx, &next, None, StatusCode::OK).await
}

/// The sign-in page, with `error` above the form when a token was refused.
pub(crate) async fn sign_in_page(
    app: &App,
    ctx: &Ctx,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let queues = app.admin.queues().await.unwrap_or_default();
    let body = login_body(app, ctx, next, error);
    render(
        app,
        ctx,
        &queues,
        Screen {
            title: "Sign in",
            nav: Nav::SignIn,
            queue: None,
        },
        status,
        &body,
    )
}
