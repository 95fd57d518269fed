//! The dashboard in a real browser: headless Chromium driven over
//! WebDriver, against the `dashboard` example (the embedded backend, jobs
//! in every state, served by the runtime with a demo token).
//!
//! It loads the overview and watches its numbers change without a reload,
//! opens a failed job, finds that a write without the token is refused,
//! signs in with the token, retries the job and sees it leave the failed
//! list. It saves a PNG of every page under `target/screenshots/`, and
//! also into `docs/screenshots/` when `ATHYPER_UPDATE_SCREENSHOTS=1`.
//!
//! Needs `chromium` and `chromedriver` (Debian: `chromium`,
//! `chromium-driver`; `scripts/test` installs them). Without them the test
//! fails, saying so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use athyper_test_support::{Proc, example};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const TOKEN: &str = "browser-test-token-5be2d0c4";
const PATIENCE: Duration = Duration::from_secs(60);

/// `name` on the PATH, or a failure that says what to install.
fn program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: the dashboard's browser test needs Chromium and its WebDriver; install the Debian packages `chromium` and `chromium-driver` (scripts/test installs them)"
            )
        })
}

/// A free loopback port, as far as one can tell before using it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// chromedriver on a port of its own: it cannot report a port it picked,
/// so one is chosen here, and another if it was taken meanwhile.
fn start_chromedriver(driver: &Path) -> (Proc, String) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let mut command = Command::new(driver);
        command.args([&format!("--port={port}"), "--allowed-ips=127.0.0.1"]);
        let mut proc = Proc::spawn("chromedriver", command);
        let started = Instant::now();
        loop {
            let output = proc.output().join("\n");
            if output.contains("started successfully") {
                return (proc, format!("http://127.0.0.1:{port}"));
            }
            if output.contains("bind") || output.contains("Address already in use") {
                last = output;
                break;
            }
            if started.elapsed() > PATIENCE {
                let _ = proc.wait_status(Duration::from_secs(1));
                panic!("chromedriver did not start within {PATIENCE:?}; its output:\n{output}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(proc);
    }
    panic!("chromedriver found its port taken 5 times in a row; its last output:\n{last}")
}

/// Where the screenshots go.
fn screenshot_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("target").join("screenshots")];
    if std::env::var("ATHYPER_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        dirs.push(root.join("docs").join("screenshots"));
    }
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    dirs
}

async fn screenshot(client: &Client, name: &str) {
    // Let the live refresh settle the numbers and the fonts load.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    for dir in screenshot_dirs() {
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// Waits until `condition` holds on the page, polling.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what} within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page (the next one, after a click) holds `what`.
async fn page_says(client: &Client, what: &str) {
    eventually(&format!("the page says `{what}`"), || async {
        client.source().await.unwrap().contains(what)
    })
    .await;
}

/// Clicks the element `at` once the page shows it.
async fn click(client: &Client, at: Locator<'_>) {
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(at)
        .await
        .unwrap_or_else(|e| panic!("{at:?} on the page: {e}"))
        .click()
        .await
        .unwrap();
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("`{css}` on the page: {e}"))
        .text()
        .await
        .unwrap()
}

async fn has(client: &Client, css: &str) -> bool {
    !client.find_all(Locator::Css(css)).await.unwrap().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_a_failed_job_in_a_browser() {
    let chromium = program("chromium");
    let driver = program("chromedriver");

    let mut command = Command::new(example("dashboard"));
    command
        .env("ATHYPER_HTTP_ADDR", "127.0.0.1:0")
        .env("ATHYPER_ADMIN_TOKEN", TOKEN)
        .env_remove("ATHYPER_REDIS_URL")
        .env_remove("ATHYPER_DASHBOARD_PATH")
        .env_remove("ATHYPER_TRACE_URL")
        .env_remove("ATHYPER_ADMIN_SHOW_PAYLOADS")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("RUST_LOG");
    let mut app = Proc::spawn("the dashboard example", command);
    let line = app.wait_for("its address", PATIENCE, |l| l.starts_with("dashboard on "));
    let base = line
        .strip_prefix("dashboard on ")
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/admin"),
        "{line}"
    );
    app.wait_for("the token", PATIENCE, |l| {
        l == format!("admin token: {TOKEN}")
    });

    let (_driver, webdriver) = start_chromedriver(&driver);
    let profile = std::env::temp_dir().join(format!("athyper-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1440,1240",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&webdriver)
        .await
        .expect("a Chromium session through chromedriver");

    // The overview: every queue, the chart, numbers that move by themselves.
    client.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(client.title().await.unwrap(), "Overview · athyper");
    for queue in ["emails", "imports", "payments", "reports", "webhooks"] {
        assert!(
            has(&client, &format!("a[href=\"/admin/queues/{queue}\"]")).await,
            "{queue} is listed"
        );
    }
    assert!(has(&client, "svg.chart").await);
    assert_ne!(text(&client, "[data-total=\"failed\"]").await, "0");
    let completed = text(&client, "[data-total=\"completed\"]").await;
    eventually("the completed total changes without a reload", || async {
        text(&client, "[data-total=\"completed\"]").await != completed
    })
    .await;
    eventually("the live indicator is on", || async {
        client
            .find(Locator::Id("live"))
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap()
            .is_some_and(|c| c.contains("on"))
    })
    .await;
    screenshot(&client, "overview").await;

    // A failed webhook, opened from the queue's failed list.
    click(&client, Locator::Css("a[href=\"/admin/queues/webhooks\"]")).await;
    click(&client, Locator::Css("a.tab-failed")).await;
    click(&client, Locator::Css("a[data-job=\"hook-2\"]")).await;
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#payload"))
        .await
        .unwrap();
    assert!(text(&client, "h1").await.contains("hook-2"));
    assert!(text(&client, "h1 .badge").await == "failed");
    assert!(
        text(&client, "#payload")
            .await
            .contains("\"event\": \"order.paid\"")
    );
    assert!(
        text(&client, ".attempts")
            .await
            .contains("503 Service Unavailable")
    );
    assert!(
        !has(&client, "#job-retry").await,
        "no retry button before signing in"
    );

    // A write without the token, sent from the page the way a form would:
    // refused, and the job stays failed.
    let refused = client
        .execute_async(
            r#"
            const done = arguments[arguments.length - 1];
            fetch(document.body.dataset.base + "/queues/webhooks/jobs/hook-2/retry", {
              method: "POST",
              headers: { "content-type": "application/x-www-form-urlencoded" },
              body: "back=%2Fadmin%2F",
              credentials: "same-origin",
            }).then(r => r.text().then(t => done([r.status, t])), e => done([0, String(e)]));
            "#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused[0], 401, "{refused}");
    assert!(
        refused[1]
            .as_str()
            .unwrap()
            .contains("actions need the admin token"),
        "{refused}"
    );
    client.refresh().await.unwrap();
    assert_eq!(text(&client, "h1 .badge").await, "failed");

    // Sign in with the token, and come back to the job.
    click(&client, Locator::LinkText("Sign in to act")).await;
    let password = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("input[name=\"token\"]"))
        .await
        .unwrap();
    screenshot(&client, "sign-in").await;
    password.send_keys("not-the-token").await.unwrap();
    click(&client, Locator::Id("sign-in")).await;
    page_says(&client, "That is not the admin token.").await;
    let password = client
        .find(Locator::Css("input[name=\"token\"]"))
        .await
        .unwrap();
    password.send_keys(TOKEN).await.unwrap();
    click(&client, Locator::Id("sign-in")).await;
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id("job-retry"))
        .await
        .unwrap();
    assert!(text(&client, ".flash-ok").await.contains("Signed in"));
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/jobs/hook-2")
    );
    screenshot(&client, "job").await;

    // Retry it: it leaves the failed list (the receiver is back, so it
    // completes).
    click(&client, Locator::Id("job-retry")).await;
    page_says(&client, "1 job requeued.").await;
    eventually("the retried job completes", || async {
        client.refresh().await.unwrap();
        text(&client, "h1 .badge").await == "completed"
    })
    .await;
    client
        .goto(&format!("{base}/queues/webhooks?state=failed"))
        .await
        .unwrap();
    assert!(
        !has(&client, "a[data-job=\"hook-2\"]").await,
        "hook-2 left the failed list"
    );
    for other in ["hook-1", "hook-3", "hook-4", "hook-5"] {
        assert!(
            has(&client, &format!("a[data-job=\"{other}\"]")).await,
            "{other} is still failed"
        );
    }
    assert_eq!(text(&client, "a.tab-failed .tab-count").await, "4");
    screenshot(&client, "queue").await;

    // A list that grows says so, without a reload.
    client
        .goto(&format!("{base}/queues/emails?state=completed"))
        .await
        .unwrap();
    eventually("the completed list says it has changed", || async {
        client
            .find(Locator::Id("changed"))
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap()
            .is_some_and(|c| !c.contains("hidden"))
    })
    .await;

    // The other pages.
    client.goto(&format!("{base}/workers")).await.unwrap();
    assert!(text(&client, "main").await.contains("render_report"));
    screenshot(&client, "workers").await;
    client.goto(&format!("{base}/process")).await.unwrap();
    assert!(text(&client, "main").await.contains("geocoder"));
    assert_eq!(text(&client, "[data-breaker=\"geocoder\"]").await, "open");
    assert_eq!(text(&client, "[data-breaker=\"mailer\"]").await, "closed");
    screenshot(&client, "process").await;

    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    app.signal("TERM");
    let (status, output) = app.wait(PATIENCE);
    assert!(status.success(), "{status}: {}", output.join("\n"));
}
