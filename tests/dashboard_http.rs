//! The dashboard over HTTP, against a real Redis: its pages and JSON, the
//! escaping of what jobs carry, the admin token (a write without it is
//! refused and changes nothing), CSRF tokens, hidden payloads, bulk
//! actions, and the runtime serving it under `/admin` only when enabled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use athyper::admin::Admin;
use athyper::admin::dashboard::{DashboardConfig, router};
use athyper::prelude::*;
use athyper::queue::backend::{NewJob, RedisBackend, RedisConfig};
use athyper::queue::{JobState, JobTrace, Schedule, SharedBackend, Worker};
use athyper::registry::Registry;
use athyper_test_support::{HttpAnswer, RedisServer, http_request};

const TOKEN: &str = "test-admin-token-0123456789";
const PATIENCE: Duration = Duration::from_secs(60);

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

async fn backend() -> SharedBackend {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!("dash{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let config = RedisConfig::new(server().url()).prefix(prefix);
    Arc::new(RedisBackend::connect(config).await.unwrap())
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Letter {
    to: String,
    fail: bool,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Sent {
    message_id: String,
}

/// Fails with markup in its error when told to; otherwise returns a
/// receipt.
#[job(queue = "mail", retry = "none")]
async fn deliver(_ctx: JobContext, letter: Letter) -> Result<Sent, String> {
    if letter.fail {
        Err(format!("<b>bounced</b> for {}", letter.to))
    } else {
        Ok(Sent {
            message_id: format!("<{}@mail.test>", letter.to),
        })
    }
}

/// The ids of the seeded jobs.
struct Seeded {
    admin: Admin,
    completed: String,
    failed: Vec<String>,
}

/// Two letters sent, three bounced (one with markup in its payload), one
/// delayed by an hour, one traced.
async fn seed() -> Seeded {
    let backend = backend().await;
    let queue = Queue::new(backend.clone(), "mail").unwrap();
    let letter = |to: &str, fail: bool| Letter {
        to: to.to_owned(),
        fail,
    };
    let ok = queue.add(&deliver, letter("ada", false)).await.unwrap();
    queue.add(&deliver, letter("bob", false)).await.unwrap();
    let mut failed = Vec::new();
    for to in ["<script>alert(1)</script>", "carol", "dave"] {
        failed.push(
            queue
                .add(&deliver, letter(to, true))
                .await
                .unwrap()
                .to_string(),
        );
    }
    queue
        .add_with(
            &deliver,
            letter("later", false),
            JobOptions::new()
                .id("delayed-1")
                .delay(Duration::from_secs(3_600)),
        )
        .await
        .unwrap();
    // A job with a trace, as a traced producer would add it.
    let mut traced = NewJob::new(
        "deliver",
        serde_json::to_string(&letter("traced", false)).unwrap(),
    );
    traced.id = Some("traced-1".into());
    traced.delay = Duration::from_secs(3_600);
    let mut trace = JobTrace::default();
    trace.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    traced.trace = trace;
    backend.add("mail", vec![traced]).await.unwrap();

    let worker = Worker::builder(backend.clone(), "mail")
        .handler(&deliver)
        .build()
        .unwrap()
        .start();
    let admin = Admin::new(backend);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let counts = admin.counts("mail").await.unwrap();
        if counts.completed() == 2 && counts.failed() == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the seeded jobs did not settle: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown(Duration::from_secs(5)).await;
    Seeded {
        admin,
        completed: ok.to_string(),
        failed,
    }
}

/// Serves `app` on a free loopback port; the base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn get(url: &str, headers: &[(&str, &str)]) -> HttpAnswer {
    http_request("GET", url, headers, "").await.unwrap()
}

async fn post(url: &str, headers: &[(&str, &str)], form: &str) -> HttpAnswer {
    let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    http_request("POST", url, &all, form).await.unwrap()
}

/// The value the answer sets for cookie `name`.
fn set_cookie(answer: &HttpAnswer, name: &str) -> Option<String> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
}

async fn state_of(admin: &Admin, id: &str) -> JobState {
    admin
        .job("mail", &JobId::from(id))
        .await
        .unwrap()
        .expect("the job exists")
        .state
}

/// A CSRF token and its cookie, as a page hands them out.
async fn csrf(base: &str) -> (String, String) {
    let page = get(&format!("{base}/admin/"), &[]).await;
    let token = set_cookie(&page, "athyper_csrf").expect("a page sets the CSRF cookie");
    assert_eq!(token.len(), 32, "{token}");
    (token.clone(), format!("athyper_csrf={token}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_json_show_every_state_with_user_data_escaped() {
    let s = seed().await;
    let config =
        DashboardConfig::default().trace_url("https://grafana.example/explore?traceId={trace_id}");
    let base = serve(router(s.admin.clone(), config)).await;

    let overview = get(&format!("{base}/admin"), &[]).await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    let csp = overview.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        overview.body.contains("href=\"/admin/queues/mail\""),
        "{}",
        overview.body
    );
    assert!(
        overview.body.contains("data-count=\"mail/failed\">3<"),
        "{}",
        overview.body
    );
    assert!(
        overview.body.contains("<svg class=\"chart\""),
        "{}",
        overview.body
    );
    assert!(
        overview.body.contains("2 completed, 3 failed"),
        "{}",
        overview.body
    );
    assert_eq!(get(&format!("{base}/admin/"), &[]).await.status, 200);

    // The failed list, with each error escaped.
    let failed = get(&format!("{base}/admin/queues/mail?state=failed"), &[]).await;
    assert_eq!(failed.status, 200);
    for id in &s.failed {
        assert!(
            failed.body.contains(&format!("data-job=\"{id}\"")),
            "{id}: {}",
            failed.body
        );
    }
    assert!(
        failed.body.contains("&lt;b&gt;bounced&lt;/b&gt;"),
        "{}",
        failed.body
    );
    assert!(!failed.body.contains("<b>bounced"), "{}", failed.body);
    // Read-only: no action buttons.
    assert!(!failed.body.contains("Retry selected"), "{}", failed.body);

    // One failed job: its payload pretty-printed and escaped, its error.
    let job = get(
        &format!("{base}/admin/queues/mail/jobs/{}", s.failed[0]),
        &[],
    )
    .await;
    assert_eq!(job.status, 200);
    assert!(
        job.body
            .contains("&quot;to&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;"),
        "{}",
        job.body
    );
    assert!(!job.body.contains("<script>alert"), "{}", job.body);
    assert!(job.body.contains("attempt 1"), "{}", job.body);

    // A completed job shows what its handler returned.
    let done = get(
        &format!("{base}/admin/queues/mail/jobs/{}", s.completed),
        &[],
    )
    .await;
    assert!(done.body.contains("<h2>Result</h2>"), "{}", done.body);
    assert!(
        done.body
            .contains("&quot;message_id&quot;: &quot;&lt;ada@mail.test&gt;&quot;"),
        "{}",
        done.body
    );

    // Lists show a snippet of each payload, and of each result.
    let completed = get(&format!("{base}/admin/queues/mail?state=completed"), &[]).await;
    assert!(
        completed.body.contains("&lt;ada@mail.test&gt;"),
        "{}",
        completed.body
    );
    let delayed = get(&format!("{base}/admin/queues/mail?state=delayed"), &[]).await;
    assert!(
        delayed.body.contains("&quot;to&quot;:&quot;later&quot;"),
        "{}",
        delayed.body
    );

    // The traced job links to its trace.
    let traced = get(&format!("{base}/admin/queues/mail/jobs/traced-1"), &[]).await;
    assert!(
        traced.body.contains(
            "href=\"https://grafana.example/explore?traceId=4bf92f3577b34da6a3ce929d0e0e4736\""
        ),
        "{}",
        traced.body
    );

    // Search by id finds the job in whatever state; by name, the state's jobs.
    let by_id = get(
        &format!("{base}/admin/queues/mail?state=waiting&q=delayed-1"),
        &[],
    )
    .await;
    assert!(by_id.body.contains("class=\"found\""), "{}", by_id.body);
    assert!(by_id.body.contains("badge-delayed"), "{}", by_id.body);
    let by_name = get(
        &format!("{base}/admin/queues/mail?state=failed&q=deliver"),
        &[],
    )
    .await;
    assert_eq!(
        by_name.body.matches("data-job=").count(),
        3,
        "{}",
        by_name.body
    );
    let nobody = get(
        &format!("{base}/admin/queues/mail?state=failed&q=nobody"),
        &[],
    )
    .await;
    assert!(
        nobody.body.contains("No failed jobs of a handler named"),
        "{}",
        nobody.body
    );

    // Paging: one job a page, and a link to the next.
    let page = get(
        &format!("{base}/admin/queues/mail?state=failed&limit=1"),
        &[],
    )
    .await;
    assert_eq!(page.body.matches("data-job=").count(), 1, "{}", page.body);
    assert!(page.body.contains("offset=1&amp;limit=1"), "{}", page.body);

    // The JSON the pages poll.
    let summary = get(&format!("{base}/admin/api/summary?queue=mail"), &[]).await;
    assert_eq!(summary.status, 200);
    let json: serde_json::Value = serde_json::from_str(&summary.body).unwrap();
    let mail = &json["queues"][0];
    assert_eq!(mail["name"], "mail");
    assert_eq!(mail["failed"], 3);
    assert_eq!(mail["completed"], 2);
    assert_eq!(mail["delayed"], 2);
    assert_eq!(json["totals"]["failed"], 3);
    assert_eq!(json["hour"]["completed"], 2);
    assert_eq!(json["hour"]["failed"], 3);
    assert!(json["hour"]["svg"].as_str().unwrap().starts_with("<svg"));
    assert!(json.get("breakers").is_none(), "standalone: no breakers");

    // Workers, assets, and what does not exist.
    assert_eq!(get(&format!("{base}/admin/workers"), &[]).await.status, 200);
    let css = get(&format!("{base}/admin/assets/dashboard.css"), &[]).await;
    assert_eq!(css.status, 200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = get(&format!("{base}/admin/assets/dashboard.js"), &[]).await;
    assert!(js.body.contains("/api/summary"));
    let bad_state = get(&format!("{base}/admin/queues/mail?state=lost"), &[]).await;
    assert_eq!(bad_state.status, 400);
    assert!(
        bad_state.body.contains("There is no state `lost`"),
        "{}",
        bad_state.body
    );
    let no_job = get(&format!("{base}/admin/queues/mail/jobs/nope"), &[]).await;
    assert_eq!(no_job.status, 404);
    assert!(no_job.body.contains("has no job `nope`"), "{}", no_job.body);
    let no_queue = get(&format!("{base}/admin/queues/%3Cnope%3E"), &[]).await;
    assert!(matches!(no_queue.status, 400 | 404), "{no_queue:?}");
    assert!(!no_queue.body.contains("<nope>"), "{}", no_queue.body);
    assert_eq!(get(&format!("{base}/admin/process"), &[]).await.status, 404);

    // A queue's recurring jobs show on its page.
    Queue::new(s.admin.backend().clone(), "mail")
        .unwrap()
        .schedule(
            "nightly-<digest>",
            &deliver,
            Schedule::every(Duration::from_secs(86_400)).unwrap(),
            Letter {
                to: "team".into(),
                fail: false,
            },
        )
        .await
        .unwrap();
    let page = get(&format!("{base}/admin/queues/mail"), &[]).await;
    assert!(page.body.contains("Recurring jobs"), "{}", page.body);
    assert!(
        page.body.contains(">nightly-&lt;digest&gt;<"),
        "{}",
        page.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_the_token_is_refused_and_changes_nothing() {
    let s = seed().await;
    let id = &s.failed[1];
    let retry = |base: &str| format!("{base}/admin/queues/mail/jobs/{id}/retry");

    // Read-only: refused whatever is presented.
    let base = serve(router(s.admin.clone(), DashboardConfig::default())).await;
    let (token, cookie) = csrf(&base).await;
    let bearer = format!("Bearer {TOKEN}");
    let refused = post(
        &retry(&base),
        &[("cookie", &cookie), ("authorization", &bearer)],
        &format!("_csrf={token}"),
    )
    .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("read-only"), "{}", refused.body);
    assert_eq!(state_of(&s.admin, id).await, JobState::Failed);

    // With a token configured: no token, a wrong one, the wrong cookie.
    let base = serve(router(
        s.admin.clone(),
        DashboardConfig::default().token(TOKEN),
    ))
    .await;
    let (token, cookie) = csrf(&base).await;
    let form = format!("_csrf={token}");
    let none = post(&retry(&base), &[("cookie", &cookie)], &form).await;
    assert_eq!(none.status, 401, "{none:?}");
    assert!(
        none.body.contains("actions need the admin token"),
        "{}",
        none.body
    );
    let wrong = post(
        &retry(&base),
        &[
            ("cookie", &cookie),
            ("authorization", "Bearer not-the-token"),
        ],
        &form,
    )
    .await;
    assert_eq!(wrong.status, 401);
    let forged = format!("{cookie}; athyper_admin=0123456789abcdef0123456789abcdef01234567");
    let forged = post(&retry(&base), &[("cookie", &forged)], &form).await;
    assert_eq!(forged.status, 401);
    let json = post(
        &format!("{base}/admin/queues/mail/retry-all"),
        &[("accept", "application/json")],
        "",
    )
    .await;
    assert_eq!(json.status, 401);
    let json: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("admin token"),
        "{json}"
    );
    let counts = s.admin.counts("mail").await.unwrap();
    assert_eq!(counts.failed(), 3, "nothing moved: {counts}");
    assert_eq!(state_of(&s.admin, id).await, JobState::Failed);

    // The page offers to sign in instead of buttons.
    let page = get(&format!("{base}/admin/queues/mail/jobs/{id}"), &[]).await;
    assert!(page.body.contains("Sign in to act"), "{}", page.body);
    assert!(!page.body.contains("id=\"job-retry\""), "{}", page.body);

    // A script with the right bearer token needs no CSRF token.
    let ok = post(
        &retry(&base),
        &[("authorization", &bearer), ("accept", "application/json")],
        "",
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let ok: serde_json::Value = serde_json::from_str(&ok.body).unwrap();
    assert_eq!(ok["done"], "retried");
    assert_eq!(ok["count"], 1);
    assert_eq!(state_of(&s.admin, id).await, JobState::Waiting);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_their_csrf_token_and_bulk_actions_work() {
    let s = seed().await;
    let base = serve(router(
        s.admin.clone(),
        DashboardConfig::default().token(TOKEN),
    ))
    .await;
    let (csrf_token, csrf_cookie) = csrf(&base).await;

    // Signing in needs the CSRF token too, and the right admin token.
    let login = format!("{base}/admin/login");
    let no_csrf = post(&login, &[], &format!("token={TOKEN}")).await;
    assert_eq!(no_csrf.status, 403, "{no_csrf:?}");
    let bad = post(
        &login,
        &[("cookie", &csrf_cookie)],
        &format!("_csrf={csrf_token}&token=guess-guess-guess"),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert!(
        bad.body.contains("That is not the admin token."),
        "{}",
        bad.body
    );
    assert!(set_cookie(&bad, "athyper_admin").is_none());
    let signed = post(
        &login,
        &[("cookie", &csrf_cookie)],
        &format!("_csrf={csrf_token}&token={TOKEN}&next=%2Fadmin%2Fqueues%2Fmail"),
    )
    .await;
    assert_eq!(signed.status, 303, "{signed:?}");
    assert_eq!(
        signed.headers["location"].to_str().unwrap(),
        "/admin/queues/mail?done=signed-in"
    );
    let session = set_cookie(&signed, "athyper_admin").expect("a session cookie");
    assert!(!session.contains(TOKEN), "the cookie holds no token");
    let cookies = format!("{csrf_cookie}; athyper_admin={session}");

    // Signed in, the page has the actions.
    let page = get(
        &format!("{base}/admin/queues/mail?state=failed"),
        &[("cookie", &cookies)],
    )
    .await;
    assert!(page.body.contains("Retry selected"), "{}", page.body);
    assert!(page.body.contains("signed in"), "{}", page.body);

    // Without the CSRF field, with a wrong one, or from another site: 403.
    let id = &s.failed[0];
    let retry = format!("{base}/admin/queues/mail/retry");
    let ids = format!("ids={}", id);
    let missing = post(&retry, &[("cookie", &cookies)], &ids).await;
    assert_eq!(missing.status, 403, "{missing:?}");
    assert!(missing.body.contains("CSRF token"), "{}", missing.body);
    let wrong = post(
        &retry,
        &[("cookie", &cookies)],
        &format!("{ids}&_csrf=00000000000000000000000000000000"),
    )
    .await;
    assert_eq!(wrong.status, 403);
    let host = base.trim_start_matches("http://");
    let cross = post(
        &retry,
        &[
            ("cookie", &cookies),
            ("origin", "https://evil.example"),
            ("host", host),
        ],
        &format!("{ids}&_csrf={csrf_token}"),
    )
    .await;
    assert_eq!(cross.status, 403);
    assert_eq!(state_of(&s.admin, id).await, JobState::Failed);

    // With it: a bulk retry of two jobs, back to the page it came from.
    let back = "%2Fadmin%2Fqueues%2Fmail%3Fstate%3Dfailed";
    let two = post(
        &retry,
        &[("cookie", &cookies), ("origin", &base), ("host", host)],
        &format!(
            "ids={}&ids={}&_csrf={csrf_token}&back={back}",
            s.failed[0], s.failed[1]
        ),
    )
    .await;
    assert_eq!(two.status, 303, "{two:?}");
    let location = two.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        "/admin/queues/mail?state=failed&done=retried&n=2&skipped=0"
    );
    let flashed = get(&format!("{base}{location}"), &[("cookie", &cookies)]).await;
    assert!(
        flashed.body.contains("2 jobs requeued."),
        "{}",
        flashed.body
    );
    assert_eq!(state_of(&s.admin, &s.failed[0]).await, JobState::Waiting);
    assert_eq!(state_of(&s.admin, &s.failed[1]).await, JobState::Waiting);

    // A redirect never leaves the dashboard.
    let away = post(
        &format!("{base}/admin/queues/mail/pause"),
        &[("cookie", &cookies)],
        &format!("_csrf={csrf_token}&back=https%3A%2F%2Fevil.example%2F"),
    )
    .await;
    assert_eq!(
        away.headers["location"].to_str().unwrap(),
        "/admin/?done=paused&n=0&skipped=0"
    );
    assert!(s.admin.counts("mail").await.unwrap().paused);
    let resumed = post(
        &format!("{base}/admin/queues/mail/resume"),
        &[("cookie", &cookies)],
        &format!("_csrf={csrf_token}"),
    )
    .await;
    assert_eq!(resumed.status, 303);
    assert!(!s.admin.counts("mail").await.unwrap().paused);

    // Remove one job; clean the completed ones; bad input says what is wrong.
    let removed = post(
        &format!("{base}/admin/queues/mail/remove"),
        &[("cookie", &cookies)],
        &format!("ids={}&ids=no-such-job&_csrf={csrf_token}", s.failed[2]),
    )
    .await;
    assert_eq!(removed.status, 303);
    assert!(
        s.admin
            .job("mail", &JobId::from(s.failed[2].as_str()))
            .await
            .unwrap()
            .is_none()
    );
    let bad_age = post(
        &format!("{base}/admin/queues/mail/clean"),
        &[("cookie", &cookies)],
        &format!("state=completed&older_than=soon&_csrf={csrf_token}"),
    )
    .await;
    assert_eq!(bad_age.status, 400);
    assert!(
        bad_age.body.contains("`soon` is not an age"),
        "{}",
        bad_age.body
    );
    let cleaned = post(
        &format!("{base}/admin/queues/mail/clean"),
        &[("cookie", &cookies), ("accept", "application/json")],
        &format!("state=completed&older_than=0s&_csrf={csrf_token}"),
    )
    .await;
    assert_eq!(cleaned.status, 200, "{cleaned:?}");
    let cleaned: serde_json::Value = serde_json::from_str(&cleaned.body).unwrap();
    assert_eq!(cleaned["count"], 2);
    assert_eq!(s.admin.counts("mail").await.unwrap().completed(), 0);

    // Promote the delayed job.
    let promoted = post(
        &format!("{base}/admin/queues/mail/jobs/delayed-1/promote"),
        &[("cookie", &cookies)],
        &format!("_csrf={csrf_token}&back=%2Fadmin%2Fqueues%2Fmail%2Fjobs%2Fdelayed-1"),
    )
    .await;
    assert_eq!(
        promoted.headers["location"].to_str().unwrap(),
        "/admin/queues/mail/jobs/delayed-1?done=promoted&n=1&skipped=0"
    );
    assert_eq!(state_of(&s.admin, "delayed-1").await, JobState::Waiting);

    // Cancel it: it will not run; cancelling again is refused, saying why.
    let page = get(
        &format!("{base}/admin/queues/mail/jobs/delayed-1"),
        &[("cookie", &cookies)],
    )
    .await;
    assert!(page.body.contains("id=\"job-cancel\""), "a Cancel button");
    let cancelled = post(
        &format!("{base}/admin/queues/mail/jobs/delayed-1/cancel"),
        &[("cookie", &cookies)],
        &format!("_csrf={csrf_token}&back=%2Fadmin%2Fqueues%2Fmail%2Fjobs%2Fdelayed-1"),
    )
    .await;
    assert_eq!(
        cancelled.headers["location"].to_str().unwrap(),
        "/admin/queues/mail/jobs/delayed-1?done=cancelled&n=1&skipped=0"
    );
    assert_eq!(state_of(&s.admin, "delayed-1").await, JobState::Cancelled);
    let again = post(
        &format!("{base}/admin/queues/mail/jobs/delayed-1/cancel"),
        &[("cookie", &cookies)],
        &format!("_csrf={csrf_token}"),
    )
    .await;
    assert_eq!(again.status, 409, "{again:?}");
    assert!(again.body.contains("had ended already"), "{}", again.body);

    // Signing out clears the cookie.
    let out = post(
        &format!("{base}/admin/logout"),
        &[("cookie", &cookies)],
        &format!("_csrf={csrf_token}"),
    )
    .await;
    assert_eq!(out.status, 303);
    assert_eq!(set_cookie(&out, "athyper_admin").as_deref(), Some(""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_and_results_can_be_hidden() {
    let s = seed().await;
    let config = DashboardConfig::from_env_with(|name| {
        (name == "ATHYPER_ADMIN_SHOW_PAYLOADS").then(|| "false".to_owned())
    })
    .unwrap();
    let base = serve(router(s.admin.clone(), config)).await;
    let job = get(
        &format!("{base}/admin/queues/mail/jobs/{}", s.failed[0]),
        &[],
    )
    .await;
    assert_eq!(job.status, 200);
    assert!(
        job.body
            .contains("Hidden: this dashboard is set not to show payloads"),
        "{}",
        job.body
    );
    // The error still shows (it is the handler's text, not the payload).
    assert!(!job.body.contains("&quot;fail&quot;"), "{}", job.body);
    assert!(job.body.contains("bounced"), "{}", job.body);
    let done = get(
        &format!("{base}/admin/queues/mail/jobs/{}", s.completed),
        &[],
    )
    .await;
    assert!(!done.body.contains("mail.test"), "{}", done.body);
    assert!(done.body.contains("<h2>Result</h2>"), "{}", done.body);
    let list = get(&format!("{base}/admin/queues/mail?state=completed"), &[]).await;
    assert!(!list.body.contains("mail.test"), "{}", list.body);
    let list = get(&format!("{base}/admin/queues/mail?state=delayed"), &[]).await;
    assert!(!list.body.contains("later"), "{}", list.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_serves_it_under_admin_only_when_enabled() {
    let build = |dashboard: Option<DashboardConfig>| {
        let builder = Runtime::builder()
            .registry(Registry::default())
            .env_from(|_| None)
            .http_addr("127.0.0.1:0".parse().unwrap());
        match dashboard {
            Some(config) => builder.dashboard(config),
            None => builder,
        }
        .build()
        .unwrap()
    };

    let off = build(None).start().await.unwrap();
    let base = format!("http://{}", off.http_addr().unwrap());
    assert_eq!(get(&format!("{base}/health"), &[]).await.status, 200);
    assert_eq!(get(&format!("{base}/admin"), &[]).await.status, 404);
    off.shutdown().await;

    let runtime = build(Some(DashboardConfig::default()));
    runtime
        .queue("inbox")
        .unwrap()
        .add_raw("sort", &1, JobOptions::new())
        .await
        .unwrap();
    let on = runtime.start().await.unwrap();
    let base = format!("http://{}", on.http_addr().unwrap());
    assert_eq!(get(&format!("{base}/health"), &[]).await.status, 200);
    let overview = get(&format!("{base}/admin/"), &[]).await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("inbox"), "{}", overview.body);
    assert!(
        overview.body.contains("href=\"/admin/process\""),
        "{}",
        overview.body
    );
    let process = get(&format!("{base}/admin/process"), &[]).await;
    assert_eq!(process.status, 200);
    assert!(
        process.body.contains("queue backend (memory)"),
        "{}",
        process.body
    );
    assert!(process.body.contains("healthy"), "{}", process.body);
    let summary = get(&format!("{base}/admin/api/summary"), &[]).await;
    let json: serde_json::Value = serde_json::from_str(&summary.body).unwrap();
    assert_eq!(json["breakers"], serde_json::json!([]));
    on.shutdown().await;
}

/// Lets through requests that carry the header an SSO proxy would set.
async fn only_ops(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, axum::http::StatusCode> {
    if request.headers().get("x-ops").is_some() {
        Ok(next.run(request).await)
    } else {
        Err(axum::http::StatusCode::FORBIDDEN)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outer_layer_can_authorise_writes_instead_of_a_token() {
    let s = seed().await;
    let app = router(
        s.admin.clone(),
        DashboardConfig::default().writes_behind_layer(),
    )
    .layer(axum::middleware::from_fn(only_ops));
    let base = serve(app).await;
    let id = &s.failed[0];
    let retry = format!("{base}/admin/queues/mail/jobs/{id}/retry");

    // The layer refuses first.
    let refused = post(&retry, &[], "").await;
    assert_eq!(refused.status, 403);
    assert_eq!(state_of(&s.admin, id).await, JobState::Failed);

    // Through the layer, pages offer the actions and forms still need
    // their CSRF token.
    let page = get(
        &format!("{base}/admin/queues/mail/jobs/{id}"),
        &[("x-ops", "1")],
    )
    .await;
    assert!(page.body.contains("id=\"job-retry\""), "{}", page.body);
    assert!(page.body.contains("actions on"), "{}", page.body);
    let csrf = set_cookie(&page, "athyper_csrf").unwrap();
    let cookie = format!("athyper_csrf={csrf}");
    let no_csrf = post(&retry, &[("x-ops", "1"), ("cookie", &cookie)], "").await;
    assert_eq!(no_csrf.status, 403);
    assert_eq!(state_of(&s.admin, id).await, JobState::Failed);
    let done = post(
        &retry,
        &[("x-ops", "1"), ("cookie", &cookie)],
        &format!("_csrf={csrf}"),
    )
    .await;
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(state_of(&s.admin, id).await, JobState::Waiting);
}

#[job(queue = "digests", retry = "none")]
async fn digest(_ctx: JobContext, _week: String) -> Result<(), String> {
    Ok(())
}

/// A flow's parent lists its children with how each ended, and a child
/// links its parent; the parent waiting for children is listed in that
/// state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_shows_its_children_and_its_parent() {
    use athyper::queue::Flow;

    let backend = backend().await;
    let digests = Queue::new(backend.clone(), "digests").unwrap();
    let mail = Queue::new(backend.clone(), "mail").unwrap();
    let letter = |to: &str, fail: bool| Letter {
        to: to.to_owned(),
        fail,
    };
    let flow = digests
        .add_flow(
            Flow::new(&digest, "w49".into())
                .on_child_failure(athyper::queue::OnChildFailure::Ignore),
            [
                Flow::new(&deliver, letter("ada", false)),
                Flow::new(&deliver, letter("bob", true)),
                Flow::new(&deliver, letter("cy", false)),
            ],
        )
        .await
        .unwrap();
    // Two children complete and one fails.
    let registry = Registry::collect().unwrap();
    let worker = Worker::builder(backend.clone(), "mail")
        .registry(&registry)
        .build()
        .unwrap()
        .start();
    let give_up = tokio::time::Instant::now() + PATIENCE;
    while mail.counts().await.unwrap().pending() > 0 {
        assert!(tokio::time::Instant::now() < give_up);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown(PATIENCE).await;
    // The parent, which ignores failures, then has every child's end and
    // waits for a worker of its own queue.
    let admin = Admin::new(backend.clone());
    let base = serve(router(admin, DashboardConfig::default())).await;
    let parent = get(
        &format!("{base}/admin/queues/digests/jobs/{}", flow.id),
        &[],
    )
    .await;
    assert_eq!(parent.status, 200, "{}", parent.body);
    assert!(parent.body.contains("<h2>Flow</h2>"), "{}", parent.body);
    for child in &flow.children {
        assert!(
            parent.body.contains(&format!(
                "href=\"/admin/queues/mail/jobs/{}\"",
                child.id.as_str().replace(':', "%3A")
            )),
            "the parent links child {}: {}",
            child.id,
            parent.body
        );
    }
    assert!(
        parent.body.contains("badge-completed\">completed"),
        "{}",
        parent.body
    );
    assert!(
        parent
            .body
            .contains("failed: &lt;b&gt;bounced&lt;/b&gt; for bob"),
        "{}",
        parent.body
    );
    let child = get(
        &format!("{base}/admin/queues/mail/jobs/{}", flow.children[0].id),
        &[],
    )
    .await;
    assert!(
        child.body.contains(&format!(
            "Child 0 of <a class=\"mono\" href=\"/admin/queues/digests/jobs/{}\"",
            flow.id
        )),
        "{}",
        child.body
    );
    let digest_state = digests.get(&flow.id).await.unwrap().unwrap().state;
    assert_eq!(digest_state, JobState::Waiting);
}
