//! `Runtime::run` against a real SIGTERM: the test re-runs its own binary as
//! a child process, signals it mid-job and reads what it printed. The
//! child's lines carry a `@@ ` marker, since the test harness prints its own
//! text on the same lines.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use athyper::prelude::*;

const CHILD: &str = "ATHYPER_SIGNAL_TEST_CHILD";

#[job(queue = "signals", retry = "none")]
async fn slow_job(ctx: JobContext, ms: u64) -> Result<(), String> {
    println!("@@ started {}", ctx.id());
    tokio::time::sleep(Duration::from_millis(ms)).await;
    println!("@@ finished {}", ctx.id());
    Ok(())
}

/// The child: runs the runtime until a signal, then reports the drain.
fn child() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let runtime = Runtime::builder()
            .mode(Mode::All)
            .http_addr("127.0.0.1:0".parse().unwrap())
            .build()
            .unwrap();
        let queue = runtime.queue_for(&slow_job).unwrap();
        queue.add(&slow_job, 500).await.unwrap();
        let report = runtime.run().await.unwrap();
        let (name, drain) = &report.queues[0];
        println!(
            "@@ drained {name}: finished {} released {}",
            drain.finished,
            drain.released.len()
        );
        println!("@@ counts {}", queue.counts().await.unwrap());
    });
}

#[test]
fn sigterm_drains_running_jobs_then_returns() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigterm_drains_running_jobs_then_returns",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let marked = |line: String| line.split_once("@@ ").map(|(_, text)| text.to_owned());
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter_map(marked);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let started = line.starts_with("started ");
        seen.push(line);
        if started {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.starts_with("started ")),
        "child output: {seen:?}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    seen.extend(lines);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "child exited with {exit}; output: {seen:?}");
    let position = |prefix: &str| {
        seen.iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {seen:?}"))
    };
    // The running job finished before the runtime reported the drain.
    assert!(position("finished ") < position("drained signals: finished 1 released 0"));
    assert!(
        seen[position("counts ")].contains("completed 1"),
        "{seen:?}"
    );
}
