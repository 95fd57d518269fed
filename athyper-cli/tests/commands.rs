//! Every subcommand as a real process against a real `redis-server`,
//! filled through the library; `--json` read back, and each action checked
//! in Redis afterwards.

mod support;

use std::time::Duration;

use athyper::admin::STEP;
use athyper::queue::{JobId, JobState, Queue, Schedule};
use serde_json::Value;

use support::*;

fn ids(jobs: &Value) -> Vec<String> {
    jobs.as_array()
        .expect("an array of jobs")
        .iter()
        .map(|j| j["id"].as_str().expect("a job has an id").to_owned())
        .collect()
}

fn strings(ids: &[JobId]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

async fn state_of(f: &Fixture, queue: &str, id: &JobId) -> Option<JobState> {
    f.admin.job(queue, id).await.unwrap().map(|j| j.state)
}

#[tokio::test]
async fn queues_lists_every_queue_with_its_counts() {
    let f = Fixture::new().await;
    let json = f.run(&["queues", "--json"]).await.expect(0).json();
    let queues = json.as_array().expect("an array of queues");
    let names: Vec<&str> = queues.iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["emails", "reports"]);
    let emails = &queues[0];
    assert_eq!(emails["waiting"], 3);
    assert_eq!(emails["delayed"], 1);
    assert_eq!(emails["active"], 0);
    assert_eq!(emails["completed"], 3);
    assert_eq!(emails["failed"], 2);
    assert_eq!(emails["paused"], false);
    assert_eq!(
        emails["pending_by_priority"],
        serde_json::json!([["critical", 1], ["high", 0], ["normal", 3], ["low", 0]])
    );
    assert_eq!(queues[1]["waiting"], 1);

    let table = f.run(&["queues"]).await.expect(0).stdout;
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "QUEUE",
                "PAUSED",
                "WAITING",
                "DELAYED",
                "WAITING-CHILDREN",
                "ACTIVE",
                "COMPLETED",
                "FAILED",
                "CANCELLED"
            ],
            vec!["emails", "no", "3", "1", "0", "0", "3", "2", "0"],
            vec!["reports", "no", "1", "0", "0", "0", "0", "0", "0"],
        ],
        "{table}"
    );
    assert!(!table.contains('\u{1b}'), "no colour in a pipe: {table:?}");
}

#[tokio::test]
async fn colour_is_used_only_when_asked_or_on_a_terminal() {
    let f = Fixture::new().await;
    let coloured = f.run(&["queues", "--color", "always"]).await.expect(0);
    assert!(coloured.stdout.contains('\u{1b}'), "{coloured:?}");
    let json = f
        .run(&["queues", "--color", "always", "--json"])
        .await
        .expect(0);
    assert!(
        !json.stdout.contains('\u{1b}'),
        "JSON is never coloured: {json:?}"
    );
}

#[tokio::test]
async fn an_empty_redis_has_no_queues() {
    let prefix = fresh_prefix();
    let env = [
        ("ATHYPER_REDIS_URL", server().url()),
        ("ATHYPER_REDIS_PREFIX", prefix.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let json = run(&["queues", "--json"], &env).await.expect(0).json();
    assert_eq!(json, serde_json::json!([]));
    let text = run(&["queues"], &env).await.expect(0).stdout;
    assert!(
        text.starts_with("no queues in Redis at 127.0.0.1:"),
        "{text}"
    );
}

#[tokio::test]
async fn jobs_pages_by_state_and_by_handler_name() {
    let f = Fixture::new().await;
    let failed = f
        .run(&["jobs", "emails", "--state", "failed", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(failed["queue"], "emails");
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["next"], Value::Null);
    let mut found = ids(&failed["jobs"]);
    found.sort();
    let mut want = strings(&f.failed);
    want.sort();
    assert_eq!(found, want);
    for job in failed["jobs"].as_array().unwrap() {
        assert_eq!(job["state"], "failed");
        assert_eq!(job["attempts_made"], 2);
        assert_eq!(job["errors"].as_array().unwrap().len(), 2, "{job}");
    }

    let digest = f
        .run(&["jobs", "emails", "--name", "send_digest", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(ids(&digest["jobs"]), [f.digest.to_string()]);
    assert_eq!(digest["jobs"][0]["payload"], "monday");

    // Pages: waiting jobs are oldest first.
    let first = f
        .run(&["jobs", "emails", "--limit", "2", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(ids(&first["jobs"]), strings(&f.waiting));
    assert_eq!(first["next"], 2);
    let second = f
        .run(&["jobs", "emails", "--limit", "2", "--offset", "2", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(ids(&second["jobs"]), [f.digest.to_string()]);
    assert_eq!(second["next"], Value::Null);

    // The table, and where the next page starts.
    let table = f
        .run(&["jobs", "emails", "--state", "failed", "--limit", "1"])
        .await
        .expect(0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", table.stdout);
    for heading in [
        "ID",
        "NAME",
        "PRIORITY",
        "ATTEMPTS",
        "ENQUEUED",
        "FAILED",
        "LAST ERROR",
    ] {
        assert!(lines[0].contains(heading), "{heading} in {}", lines[0]);
    }
    assert!(
        lines[1].contains("send_email") && lines[1].contains("2/2"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("is full"), "{}", lines[1]);
    assert_eq!(
        table.stderr.trim(),
        "more: athyper jobs emails --state failed --offset 1 --limit 1"
    );

    let delayed = f
        .run(&["jobs", "emails", "--state", "delayed"])
        .await
        .expect(0);
    assert!(delayed.stdout.contains("later") && delayed.stdout.contains("critical"));
    // Due in about an hour.
    assert!(delayed.stdout.contains(" in 5"), "{}", delayed.stdout);

    let none = f
        .run(&["jobs", "reports", "--state", "failed"])
        .await
        .expect(0);
    assert_eq!(none.stdout, "no failed jobs in queue `reports`\n");
}

#[tokio::test]
async fn job_shows_payload_errors_progress_and_times() {
    let f = Fixture::new().await;
    let id = f.failed[0].to_string();
    let json = f
        .run(&["job", "emails", &id, "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["name"], "send_email");
    assert_eq!(json["queue"], "emails");
    assert_eq!(json["state"], "failed");
    assert_eq!(json["payload"], "bad1");
    assert_eq!(
        json["progress"],
        serde_json::json!({ "step": "sending", "to": "bad1" })
    );
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    for (i, error) in errors.iter().enumerate() {
        assert_eq!(error["attempt"], i + 1);
        assert_eq!(error["error"], "mailbox bad1 is full");
        assert!(error["at"].as_str().unwrap().ends_with('Z'), "{error}");
    }
    for field in ["enqueued_at", "due_at", "started_at", "finished_at"] {
        assert!(json[field].is_string(), "{field} in {json}");
    }
    // Not traced when added: the field is there, empty.
    assert_eq!(json["trace_id"], Value::Null);

    let text = f.run(&["job", "emails", &id]).await.expect(0).stdout;
    for part in [
        format!("job {id}"),
        "state       failed".to_owned(),
        "attempts    2 of 2".to_owned(),
        "fixed from 10ms".to_owned(),
        "trace id    -".to_owned(),
        r#"progress    {"step":"sending","to":"bad1"}"#.to_owned(),
        "payload\n  \"bad1\"".to_owned(),
        "attempt 1".to_owned(),
        "attempt 2".to_owned(),
        "    mailbox bad1 is full".to_owned(),
    ] {
        assert!(text.contains(&part), "`{part}` in:\n{text}");
    }

    // A structured payload is pretty-printed.
    let report = f
        .run(&["job", "reports", f.report.as_str()])
        .await
        .expect(0)
        .stdout;
    assert!(report.contains("payload\n  7\n"), "{report}");
}

#[tokio::test]
async fn retry_requeues_named_failed_jobs_and_names_the_rest() {
    let f = Fixture::new().await;
    let failed = f.failed[0].to_string();
    let waiting = f.waiting[0].to_string();
    let ran = f
        .run(&["retry", "emails", &failed, &waiting, "nosuchjob", "--json"])
        .await
        .expect(3);
    let json = ran.json();
    assert_eq!(json["retried"], 1);
    assert_eq!(json["missing"], serde_json::json!(["nosuchjob"]));
    assert_eq!(
        json["not_failed"],
        serde_json::json!([{ "id": waiting, "state": "waiting" }])
    );
    assert_eq!(
        ran.stderr,
        format!(
            "error: 2 of 3 jobs not retried: `{waiting}` is waiting, `nosuchjob` does not exist; only failed jobs can be retried\n"
        )
    );
    let job = f.admin.job("emails", &f.failed[0]).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Waiting);
    assert_eq!(job.attempts_made, 0, "fresh attempts");
    assert_eq!(
        state_of(&f, "emails", &f.failed[1]).await,
        Some(JobState::Failed),
        "the other failed job stays failed"
    );

    // Only a job that is not failed: exit 1.
    let ran = f.run(&["retry", "emails", &waiting]).await.expect(1);
    assert_eq!(ran.stdout, "retried 0 jobs of queue `emails`\n");
    assert_eq!(
        ran.stderr,
        format!("error: not retried: `{waiting}` is waiting; only failed jobs can be retried\n")
    );
}

#[tokio::test]
async fn retry_all_failed_requeues_every_failed_job() {
    let f = Fixture::new().await;
    let ran = f.run(&["retry", "emails", "--all-failed"]).await.expect(0);
    assert_eq!(ran.stdout, "retried 2 jobs of queue `emails`\n");
    assert_eq!(ran.stderr, "", "no progress bar in a pipe");
    let counts = f.admin.counts("emails").await.unwrap();
    assert_eq!(counts.failed(), 0);
    assert_eq!(counts.waiting(), 5);
    for id in &f.failed {
        assert_eq!(state_of(&f, "emails", id).await, Some(JobState::Waiting));
    }
}

#[tokio::test]
async fn remove_deletes_jobs_and_names_the_missing() {
    let f = Fixture::new().await;
    let ids = strings(&f.waiting);
    let ran = f
        .run(&["remove", "emails", &ids[0], &ids[1], "--json"])
        .await
        .expect(0);
    let json = ran.json();
    assert_eq!(json["removed"], serde_json::json!(ids));
    assert_eq!(json["running"], serde_json::json!([]));
    assert_eq!(json["missing"], serde_json::json!([]));
    for id in &f.waiting {
        assert_eq!(state_of(&f, "emails", id).await, None, "{id} is gone");
    }
    assert_eq!(f.admin.counts("emails").await.unwrap().waiting(), 1);

    let again = f.run(&["remove", "emails", &ids[0]]).await.expect(3);
    assert_eq!(again.stdout, "removed 0 jobs of queue `emails`\n");
    assert_eq!(
        again.stderr,
        format!(
            "error: not removed: `{}` does not exist; remove a running job once it finishes\n",
            ids[0]
        )
    );
}

#[tokio::test]
async fn cancel_ends_waiting_jobs_and_names_the_ended() {
    let f = Fixture::new().await;
    let ids = strings(&f.waiting);
    let ran = f
        .run(&["cancel", "emails", &ids[0], &ids[1], "--json"])
        .await
        .expect(0);
    let json = ran.json();
    assert_eq!(json["cancelled"], serde_json::json!(ids));
    assert_eq!(json["requested"], serde_json::json!([]));
    for id in &f.waiting {
        assert_eq!(
            state_of(&f, "emails", id).await,
            Some(JobState::Cancelled),
            "{id} is cancelled"
        );
    }
    assert_eq!(
        f.admin
            .counts("emails")
            .await
            .unwrap()
            .state(JobState::Cancelled),
        2
    );

    let again = f.run(&["cancel", "emails", &ids[0]]).await.expect(1);
    assert_eq!(
        again.stderr,
        format!(
            "error: not cancelled: `{}` had ended; a job that ended stays as it is\n",
            ids[0]
        )
    );
    let cleaned = f
        .run(&[
            "clean",
            "emails",
            "--state",
            "cancelled",
            "--older-than",
            "0s",
            "--json",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(cleaned["removed"], 2);
    let missing = f.run(&["cancel", "emails", "no-such-job"]).await.expect(3);
    assert!(
        missing.stderr.contains("`no-such-job` does not exist"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn promote_makes_a_delayed_job_due() {
    let f = Fixture::new().await;
    let ran = f.run(&["promote", "emails", "later"]).await.expect(0);
    assert_eq!(ran.stdout, "job `later` of queue `emails` is due now\n");
    let job = f.admin.job("emails", &f.delayed).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Waiting);
    assert_eq!(f.admin.counts("emails").await.unwrap().delayed(), 0);

    let again = f.run(&["promote", "emails", "later"]).await.expect(1);
    assert_eq!(
        again.stderr,
        "error: job `later` of queue `emails` is waiting, not delayed; only a delayed job can be promoted\n"
    );
    let missing = f.run(&["promote", "emails", "nosuchjob"]).await.expect(3);
    assert!(
        missing
            .stderr
            .starts_with("error: no job `nosuchjob` in queue `emails`; ")
    );
}

#[tokio::test]
async fn pause_and_resume_hold_and_release_a_queue() {
    let f = Fixture::new().await;
    let ran = f.run(&["pause", "emails"]).await.expect(0);
    assert_eq!(
        ran.stdout,
        "paused queue `emails`: workers take no new jobs until `athyper resume emails`\n"
    );
    assert!(f.admin.counts("emails").await.unwrap().paused);
    let json = f.run(&["queues", "--json"]).await.expect(0).json();
    assert_eq!(json[0]["paused"], true);
    let table = f.run(&["queues"]).await.expect(0).stdout;
    assert!(
        table.lines().nth(1).unwrap().split_whitespace().nth(1) == Some("yes"),
        "{table}"
    );

    let json = f
        .run(&["resume", "emails", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(json["name"], "emails");
    assert_eq!(json["paused"], false);
    assert!(!f.admin.counts("emails").await.unwrap().paused);
}

#[tokio::test]
async fn clean_removes_finished_jobs_older_than_the_age() {
    let f = Fixture::new().await;
    let young = f
        .run(&[
            "clean",
            "emails",
            "--state",
            "completed",
            "--older-than",
            "1h",
            "--json",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(young["removed"], 0);
    assert_eq!(young["older_than_ms"], 3_600_000);
    assert_eq!(f.admin.counts("emails").await.unwrap().completed(), 3);

    let ran = f
        .run(&[
            "clean",
            "emails",
            "--state",
            "completed",
            "--older-than",
            "0s",
        ])
        .await
        .expect(0);
    assert_eq!(
        ran.stdout,
        "removed 3 completed jobs older than 0s from queue `emails`\n"
    );
    let counts = f.admin.counts("emails").await.unwrap();
    assert_eq!(counts.completed(), 0);
    assert_eq!(counts.failed(), 2, "failed jobs are kept");
    for id in &f.completed {
        assert_eq!(state_of(&f, "emails", id).await, None);
    }
}

#[tokio::test]
async fn workers_lists_leases_and_running_jobs() {
    let f = Fixture::new().await;
    let none = f.run(&["workers", "reports"]).await.expect(0);
    assert_eq!(none.stdout, "no workers on queue `reports`\n");

    let worker = start(&f.backend, "reports", |w| w.handler(&build_report));
    wait_until("the report runs", || async {
        state_of(&f, "reports", &f.report).await == Some(JobState::Active)
    })
    .await;
    // The worker lists the job once its next heartbeat or fetch has
    // recorded it, and describes itself once its first fetch has returned.
    let report = f.report.to_string();
    let give_up = std::time::Instant::now() + PATIENCE;
    let json = loop {
        let json = f
            .run(&["workers", "reports", "--json"])
            .await
            .expect(0)
            .json();
        if json[0]["running"] == serde_json::json!([report])
            && json[0]["concurrency"].as_u64().is_some_and(|c| c > 0)
        {
            break json;
        }
        assert!(std::time::Instant::now() < give_up, "not listed: {json}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let workers = json.as_array().unwrap();
    assert_eq!(workers.len(), 1);
    let w = &workers[0];
    assert_eq!(w["id"], worker.id());
    assert_eq!(w["pid"], std::process::id());
    assert_eq!(w["concurrency"], 50);
    assert_eq!(w["handlers"], serde_json::json!(["build_report"]));
    assert!(w["lease_expires_at"].is_string(), "{w}");

    let table = f.run(&["workers", "reports"]).await.expect(0).stdout;
    let row = table.lines().nth(1).expect("a row");
    assert!(row.starts_with(worker.id()), "{table}");
    assert!(
        row.contains("build_report") && row.contains("1/50"),
        "{table}"
    );
    // `expires in 4s`, or `expired 1s ago` if a heartbeat is late.
    assert!(row.contains(" expire") && row.ends_with(&report), "{table}");
    worker.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn watch_prints_one_snapshot_per_interval_in_a_pipe() {
    let f = Fixture::new().await;
    let ran = f
        .run(&["watch", "--json", "--count", "2", "--interval", "100ms"])
        .await
        .expect(0);
    let frames: Vec<Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(frames.len(), 2, "{}", ran.stdout);
    let first = &frames[0]["queues"][0];
    assert_eq!(first["name"], "emails");
    assert_eq!(first["waiting"], 3);
    assert_eq!(
        first["waiting_per_second"],
        Value::Null,
        "nothing to compare with yet"
    );
    // The fixture's jobs settled within the last two minutes.
    let minutes = first["minutes"].as_array().unwrap();
    let settled: u64 = minutes
        .iter()
        .map(|m| m["completed"].as_u64().unwrap() + m["failed"].as_u64().unwrap())
        .sum();
    assert_eq!(settled, 5, "{first}");
    assert!(
        first["completed_per_minute"].as_f64().unwrap() > 0.0,
        "{first}"
    );
    assert!(
        first["failed_per_minute"].as_f64().unwrap() > 0.0,
        "{first}"
    );
    let second = &frames[1]["queues"][0];
    assert_eq!(second["waiting_per_second"], 0.0, "{second}");

    let table = f
        .run(&["watch", "emails", "--count", "2", "--interval", "100ms"])
        .await
        .expect(0)
        .stdout;
    assert_eq!(table.matches("athyper watch").count(), 2, "{table}");
    assert!(
        !table.contains('\u{1b}'),
        "no redraw codes in a pipe: {table:?}"
    );
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("emails")).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        !table.contains("reports"),
        "only the queue asked for: {table}"
    );
    assert!(rows[1].trim_end().ends_with("+0.0"), "{table}");
}

#[tokio::test]
async fn bulk_actions_go_in_steps_and_stay_silent_in_pipes() {
    let prefix = fresh_prefix();
    let backend = backend(&prefix).await;
    let bulk = Queue::new(backend.clone(), "bulk").unwrap();
    let total = STEP + 200;
    let ids = bulk
        .add_bulk(
            &doomed,
            (0..u32::try_from(total).unwrap()).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let admin = athyper::admin::Admin::new(backend.clone());
    let worker = start(&backend, "bulk", |w| w.handler(&doomed));
    wait_until("every job fails", || async {
        admin.counts("bulk").await.unwrap().failed() == total as u64
    })
    .await;
    worker.shutdown(Duration::from_secs(10)).await;
    let env = [
        ("ATHYPER_REDIS_URL", server().url()),
        ("ATHYPER_REDIS_PREFIX", prefix.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let ran = run(&["retry", "bulk", "--all-failed"], &env)
        .await
        .expect(0);
    assert_eq!(
        ran.stdout,
        format!("retried {total} jobs of queue `bulk`\n")
    );
    assert_eq!(ran.stderr, "");
    let counts = admin.counts("bulk").await.unwrap();
    assert_eq!((counts.waiting(), counts.failed()), (total as u64, 0));

    // More ids than one step takes.
    let mut args = vec!["remove".to_owned(), "bulk".to_owned()];
    args.extend(strings(&ids));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = run(&args, &env).await.expect(0);
    assert_eq!(
        ran.stdout,
        format!("removed {total} jobs of queue `bulk`\n")
    );
    assert_eq!(ran.stderr, "");
    assert_eq!(admin.counts("bulk").await.unwrap().waiting(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_lists_recurring_jobs() {
    let f = Fixture::new().await;
    let reports = Queue::new(f.backend.clone(), "reports").unwrap();
    let cron = Schedule::cron("0 9 * * 1-5")
        .unwrap()
        .in_tz("Europe/Berlin")
        .unwrap();
    reports
        .schedule("weekday-report", &build_report, cron, 3)
        .await
        .unwrap();
    let json = f
        .run(&["schedules", "reports", "--json"])
        .await
        .expect(0)
        .json();
    let schedules = json.as_array().expect("an array of schedules");
    assert_eq!(schedules.len(), 1);
    let s = &schedules[0];
    assert_eq!(s["id"], "weekday-report");
    assert_eq!(s["name"], "build_report");
    assert_eq!(s["schedule"], "cron 0 9 * * 1-5 Europe/Berlin");
    assert_eq!(s["missed"], "skip");
    assert_eq!(s["payload"], 3);
    assert!(
        s["next_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{s}"
    );
    assert!(s["last_at"].is_null());

    let table = f.run(&["schedules", "reports"]).await.expect(0).stdout;
    assert!(table.contains("weekday-report"), "{table}");
    assert!(table.contains("cron 0 9 * * 1-5 Europe/Berlin"), "{table}");
    let none = f.run(&["schedules", "emails"]).await.expect(0).stdout;
    assert_eq!(none.trim(), "no schedules on queue `emails`");
    f.run(&["schedules", "nowhere"]).await.expect(3);
}
