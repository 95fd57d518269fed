//! What goes wrong reads as one line naming the cause and the fix, with an
//! exit code scripts can rely on, and never as a panic.

mod support;

use athyper_test_support::{RedisOptions, RedisServer, RefusingPort};

use support::*;

#[tokio::test]
async fn unreachable_redis_is_one_line_naming_the_fix() {
    let refusing = RefusingPort::bind();
    let port = refusing.port();
    let url = refusing.redis_url();
    let ran = run(&["--redis-url", &url, "queues"], &[]).await.expect(1);
    assert_eq!(
        ran.stderr,
        format!(
            "error: cannot reach Redis at 127.0.0.1:{port}: connection refused; set ATHYPER_REDIS_URL or --redis-url\n"
        )
    );
    assert_eq!(ran.stdout, "");

    // Through the environment, with a password that no message shows.
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let ran = run(&["jobs", "emails"], &[("ATHYPER_REDIS_URL", &url)])
        .await
        .expect(1);
    assert_eq!(
        ran.stderr,
        format!(
            "error: cannot reach Redis at 127.0.0.1:{port}: connection refused; set ATHYPER_REDIS_URL or --redis-url\n"
        )
    );
    let bad = run(
        &["queues"],
        &[("ATHYPER_REDIS_URL", "http://:hunter2@host")],
    )
    .await
    .expect(2);
    assert!(
        bad.stderr
            .starts_with("error: invalid Redis URL `http://:***@host`: "),
        "{bad:?}"
    );
    assert!(!bad.stderr.contains("hunter2"), "{bad:?}");
}

#[tokio::test]
async fn a_wrong_password_names_the_fix() {
    let server = RedisServer::start_with(RedisOptions {
        password: Some("right-one".into()),
        ..RedisOptions::default()
    });
    let port = server.port();
    let without = format!("redis://127.0.0.1:{port}");
    let wrong = format!("redis://:wrong-one@127.0.0.1:{port}");
    for url in [&without, &wrong] {
        let ran = run(&["--redis-url", url, "queues"], &[]).await.expect(1);
        assert!(
            ran.stderr.starts_with(&format!(
                "error: Redis at 127.0.0.1:{port} refused the login: "
            )),
            "{ran:?}"
        );
        assert!(
            ran.stderr.ends_with(
                "; put the password in ATHYPER_REDIS_URL or --redis-url (redis://:PASSWORD@HOST:PORT)\n"
            ),
            "{ran:?}"
        );
        assert_eq!(ran.stderr.lines().count(), 1, "{ran:?}");
        assert!(!ran.stderr.contains("wrong-one"), "{ran:?}");
    }
    let ran = run(&["--redis-url", &server.url(), "queues", "--json"], &[])
        .await
        .expect(0);
    assert_eq!(ran.json(), serde_json::json!([]));
}

#[tokio::test]
async fn an_unknown_queue_exits_with_3() {
    let f = Fixture::new().await;
    for args in [
        vec!["jobs", "nowhere"],
        vec!["job", "nowhere", "1"],
        vec!["workers", "nowhere"],
        vec!["retry", "nowhere", "--all-failed"],
        vec!["pause", "nowhere"],
        vec!["watch", "nowhere", "--count", "1"],
    ] {
        let ran = f.run(&args).await.expect(3);
        assert_eq!(
            ran.stderr,
            format!(
                "error: no queue `nowhere` in Redis at 127.0.0.1:{} (prefix `{}`): no job or worker was ever seen on it; `athyper queues` lists the queues\n",
                server().port(),
                f.prefix
            ),
            "{args:?}"
        );
    }
    let paused = f.admin.counts("nowhere").await.unwrap().paused;
    assert!(
        !paused,
        "nothing was written for a queue that does not exist"
    );
}

#[tokio::test]
async fn an_unknown_job_exits_with_3() {
    let f = Fixture::new().await;
    let ran = f.run(&["job", "emails", "nosuchjob"]).await.expect(3);
    assert_eq!(
        ran.stderr,
        "error: no job `nosuchjob` in queue `emails`; `athyper jobs emails --state STATE` lists its jobs\n"
    );
}

#[tokio::test]
async fn usage_errors_exit_with_2() {
    let f = Fixture::new().await;
    for (args, says) in [
        (vec!["jobs"], "required"),
        (
            vec!["jobs", "emails", "--state", "lost"],
            "invalid value 'lost'",
        ),
        (vec!["jobs", "emails", "--limit", "0"], "--limit"),
        (vec!["retry", "emails"], "required"),
        (
            vec![
                "clean",
                "emails",
                "--state",
                "completed",
                "--older-than",
                "soon",
            ],
            "write a duration such as 30s, 15m, 1h or 7days",
        ),
        (vec!["clean", "emails", "--older-than", "1h"], "--state"),
        (vec!["watch", "--interval", "1ms"], "must be at least 100ms"),
        (vec!["dashboard", "--bind", "nowhere"], "--bind"),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (vec!["jobs", "bad name{"], "invalid queue name"),
    ] {
        let ran = f.run(&args).await.expect(2);
        assert!(ran.stderr.contains(says), "{args:?}: {ran:?}");
    }
    let bad_env = run(
        &["queues"],
        &[
            ("ATHYPER_REDIS_URL", server().url().as_str()),
            ("ATHYPER_REDIS_TIMEOUT", "soon"),
        ],
    )
    .await
    .expect(2);
    assert!(
        bad_env
            .stderr
            .starts_with("error: ATHYPER_REDIS_TIMEOUT `soon`: "),
        "{bad_env:?}"
    );
}

#[tokio::test]
async fn help_has_examples_and_exit_codes() {
    let main = run(&["--help"], &[]).await.expect(0).stdout;
    assert!(main.contains("Exit codes:"), "{main}");
    assert!(main.contains("ATHYPER_REDIS_URL"), "{main}");
    for sub in [
        "queues",
        "jobs",
        "job",
        "retry",
        "remove",
        "promote",
        "pause",
        "resume",
        "clean",
        "watch",
        "workers",
        "dashboard",
    ] {
        let help = run(&[sub, "--help"], &[]).await.expect(0).stdout;
        assert!(
            help.contains(&format!("Examples:\n  athyper {sub}")),
            "{sub}: {help}"
        );
    }
    let secret = run(
        &["--help"],
        &[("ATHYPER_REDIS_URL", "redis://:hunter2@10.0.0.5:6379")],
    )
    .await
    .expect(0);
    assert!(!secret.stdout.contains("hunter2"), "{}", secret.stdout);
    let version = run(&["--version"], &[]).await.expect(0).stdout;
    assert!(version.starts_with("athyper "), "{version}");
}
