//! The actions: POST forms (or scripts with a bearer token) that change
//! jobs and queues, and signing in and out.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::html::enc;
use super::pages::{self, Ctx, safe_back};
use super::security::{self, Refusal, SESSION_COOKIE, Via};
use super::{App, Writes};
use crate::admin::STEP;
use crate::queue::{Finished, JobId, QueueError};

/// The most ids one form may name (the rest of a bigger selection is left
/// for another request).
const MAX_IDS: usize = STEP;

/// A urlencoded form, repeated keys kept in order.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_encoding::percent_decode_str(&s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let text = String::from_utf8_lossy(body);
        Form(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(pair), String::new()),
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json") && !v.contains("text/html"))
}

/// A refused or failed action, as JSON for scripts and as a page for
/// people.
async fn refuse(
    app: &App,
    headers: &HeaderMap,
    uri: &Uri,
    status: StatusCode,
    reason: &str,
) -> Response {
    if wants_json(headers) {
        return (status, axum::Json(serde_json::json!({ "error": reason }))).into_response();
    }
    let ctx = Ctx::new(app, headers, uri, None);
    let title = match status {
        StatusCode::UNAUTHORIZED => "Sign in to act",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "Cannot do that",
        _ => "Action failed",
    };
    pages::problem(app, &ctx, status, title, reason).await
}

/// Checks who is asking and, for forms, the CSRF token.
fn admit(app: &App, headers: &HeaderMap, form: &Form) -> Result<(), Refusal> {
    let via = security::authorise(&app.config, &app.session, headers)?;
    if via != Via::Header {
        security::check_csrf(headers, form.get("_csrf"))?;
    }
    Ok(())
}

/// Where to go after the action, telling what it did.
fn done(app: &App, headers: &HeaderMap, form: &Form, what: &str, n: u64, skipped: u64) -> Response {
    if wants_json(headers) {
        return axum::Json(serde_json::json!({ "done": what, "count": n, "skipped": skipped }))
            .into_response();
    }
    let back = safe_back(app, form.get("back"));
    // Drop an earlier flash from the page being returned to.
    let (path, query) = back.split_once('?').unwrap_or((&back, ""));
    let mut kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            !p.is_empty()
                && !p.starts_with("done=")
                && !p.starts_with("n=")
                && !p.starts_with("skipped=")
        })
        .collect();
    let flash = format!("done={what}&n={n}&skipped={skipped}");
    kept.push(&flash);
    Redirect::to(&format!("{path}?{}", kept.join("&"))).into_response()
}

async fn failed(app: &App, headers: &HeaderMap, uri: &Uri, error: QueueError) -> Response {
    let status = match &error {
        QueueError::NoSuchQueue { .. } => StatusCode::NOT_FOUND,
        QueueError::InvalidName { .. } | QueueError::JobActive { .. } => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let text = crate::queue::Chain(&error).to_string();
    refuse(app, headers, uri, status, &text).await
}

fn ids(form: &Form) -> Vec<JobId> {
    let mut seen = std::collections::HashSet::new();
    form.all("ids")
        .filter(|id| !id.is_empty() && seen.insert(*id))
        .take(MAX_IDS)
        .map(JobId::from)
        .collect()
}

pub(crate) async fn queue_action(
    State(app): State<App>,
    Path((queue, action)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(r) = admit(&app, &headers, &form) {
        return refuse(&app, &headers, &uri, r.status, r.reason).await;
    }
    if let Err(e) = app.admin.expect_queue(&queue).await {
        return failed(&app, &headers, &uri, e).await;
    }
    let admin = &app.admin;
    let ids = ids(&form);
    if matches!(action.as_str(), "retry" | "remove") && ids.is_empty() {
        let reason = format!("no job was selected: tick the jobs to {action}");
        return refuse(&app, &headers, &uri, StatusCode::BAD_REQUEST, &reason).await;
    }
    match action.as_str() {
        "retry" => match admin.retry(&queue, &ids).await {
            Ok(n) => done(&app, &headers, &form, "retried", n as u64, 0),
            Err(e) => failed(&app, &headers, &uri, e).await,
        },
        "retry-all" => match admin.retry_all_failed(&queue, |_| {}).await {
            Ok(n) => done(&app, &headers, &form, "retried", n as u64, 0),
            Err(e) => failed(&app, &headers, &uri, e).await,
        },
        "remove" => match admin.remove(&queue, &ids).await {
            Ok(r) => done(
                &app,
                &headers,
                &form,
                "removed",
                r.removed.len() as u64,
                r.running.len() as u64,
            ),
            Err(e) => failed(&app, &headers, &uri, e).await,
        },
        "clean" => {
            let state = match form.get("state") {
                Some("completed") => Finished::Completed,
                Some("failed") => Finished::Failed,
                Some("cancelled") => Finished::Cancelled,
                other => {
                    let reason = format!(
                        "cannot clean `{}` jobs; choose `completed`, `failed` or `cancelled`",
                        other.unwrap_or("")
                    );
                    return refuse(&app, &headers, &uri, StatusCode::BAD_REQUEST, &reason).await;
                }
            };
            let text = form.get("older_than").unwrap_or("").trim();
            let older_than: Duration = match humantime::parse_duration(text) {
                Ok(d) => d,
                Err(e) => {
                    let reason = format!(
                        "`{text}` is not an age ({e}); write one such as `30m`, `1h` or `7d`"
                    );
                    return refuse(&app, &headers, &uri, StatusCode::BAD_REQUEST, &reason).await;
                }
            };
            match admin.clean(&queue, state, older_than, |_| {}).await {
                Ok(n) => done(&app, &headers, &form, "cleaned", n as u64, 0),
                Err(e) => failed(&app, &headers, &uri, e).await,
            }
        }
        "pause" => match admin.pause(&queue).await {
            Ok(()) => done(&app, &headers, &form, "paused", 0, 0),
            Err(e) => failed(&app, &headers, &uri, e).await,
        },
        "resume" => match admin.resume(&queue).await {
            Ok(()) => done(&app, &headers, &form, "resumed", 0, 0),
            Err(e) => failed(&app, &headers, &uri, e).await,
        },
        other => {
            let reason = format!(
                "there is no queue action `{other}`; the actions are retry, retry-all, remove, clean, pause and resume"
            );
            refuse(&app, &headers, &uri, StatusCode::NOT_FOUND, &reason).await
        }
    }
}

pub(crate) async fn job_action(
    State(app): State<App>,
    Path((queue, id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(r) = admit(&app, &headers, &form) {
        return refuse(&app, &headers, &uri, r.status, r.reason).await;
    }
    if let Err(e) = app.admin.expect_queue(&queue).await {
        return failed(&app, &headers, &uri, e).await;
    }
    let id = JobId::from(id);
    let admin = &app.admin;
    match action.as_str() {
        "retry" => match admin.retry(&queue, std::slice::from_ref(&id)).await {
            Ok(n) => done(&app, &headers, &form, "retried", n as u64, 0),
            Err(e) => failed(&app, &headers, &uri, e).await,
        },
        "promote" => match admin.promote(&queue, &id).await {
            Ok(moved) => done(&app, &headers, &form, "promoted", u64::from(moved), 0),
            Err(e) => failed(&app, &headers, &uri, e).await,
        },
        "cancel" => match admin.cancel(&queue, std::slice::from_ref(&id)).await {
            Ok(r) if !r.ended.is_empty() => {
                let reason = format!("job `{id}` had ended already: there is nothing to cancel");
                refuse(&app, &headers, &uri, StatusCode::CONFLICT, &reason).await
            }
            Ok(r) => done(
                &app,
                &headers,
                &form,
                "cancelled",
                (r.cancelled.len() + r.requested.len()) as u64,
                0,
            ),
            Err(e) => failed(&app, &headers, &uri, e).await,
        },
        "remove" => match admin.remove(&queue, std::slice::from_ref(&id)).await {
            Ok(r) if !r.running.is_empty() => {
                let reason = format!("job `{id}` is running: it can be removed once it settles");
                refuse(&app, &headers, &uri, StatusCode::CONFLICT, &reason).await
            }
            Ok(r) => {
                // The job's own page is gone: go back to its queue.
                let mut form = form;
                let p = app.prefix();
                form.0.retain(|(k, _)| k != "back");
                form.0
                    .push(("back".to_owned(), format!("{p}/queues/{}", enc(&queue))));
                done(&app, &headers, &form, "removed", r.removed.len() as u64, 0)
            }
            Err(e) => failed(&app, &headers, &uri, e).await,
        },
        other => {
            let reason = format!(
                "there is no job action `{other}`; the actions are retry, promote, cancel and remove"
            );
            refuse(&app, &headers, &uri, StatusCode::NOT_FOUND, &reason).await
        }
    }
}

pub(crate) async fn login(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(r) = security::check_csrf(&headers, form.get("_csrf")) {
        return refuse(&app, &headers, &uri, r.status, r.reason).await;
    }
    let next = safe_back(&app, form.get("next"));
    let Writes::Token(token) = &app.config.writes else {
        return refuse(
            &app,
            &headers,
            &uri,
            StatusCode::FORBIDDEN,
            "there is no token to sign in with: this dashboard is read-only, or its actions are authorised in front of it",
        )
        .await;
    };
    let given = form.get("token").unwrap_or("");
    if !security::same(given, token) {
        let ctx = Ctx::new(&app, &headers, &uri, None);
        return pages::sign_in_page(
            &app,
            &ctx,
            &next,
            Some("That is not the admin token."),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    let sep = if next.contains('?') { '&' } else { '?' };
    let mut response = Redirect::to(&format!("{next}{sep}done=signed-in")).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        security::set_cookie(
            SESSION_COOKIE,
            &app.session,
            security::cookie_path(app.prefix()),
            Some(12 * 3600),
            security::over_https(&headers),
        ),
    );
    response
}

pub(crate) async fn logout(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(r) = security::check_csrf(&headers, form.get("_csrf")) {
        return refuse(&app, &headers, &uri, r.status, r.reason).await;
    }
    let mut response = Redirect::to(&format!("{}/?done=signed-out", app.prefix())).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        security::set_cookie(
            SESSION_COOKIE,
            "",
            security::cookie_path(app.prefix()),
            Some(0),
            security::over_https(&headers),
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_keys_and_decode() {
        let form = Form::parse(b"ids=a%2Fb&ids=c+d&_csrf=x&empty&ids=a%2Fb");
        assert_eq!(form.all("ids").collect::<Vec<_>>(), ["a/b", "c d", "a/b"]);
        assert_eq!(form.get("_csrf"), Some("x"));
        assert_eq!(form.get("empty"), Some(""));
        assert_eq!(ids(&form), [JobId::from("a/b"), JobId::from("c d")]);
    }
}
