//! `Runtime::run` against a real SIGTERM: the test re-runs its own binary as
//! a child process, signals it mid-job and reads what it printed. The
//! child's lines carry a `@@ ` marker, since the test harness prints its own
//! text on the same lines.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use athyper::prelude::*;

const CHILD: &str = "ATHYPER_SIGNAL_TEST_CHILD";

/// Runs until the test writes a line to the child's stdin, so it is still
/// running when the shutdown begins, however slowly the test gets there.
#[job(queue = "signals", retry = "none")]
async fn slow_job(ctx: JobContext, _n: u64) -> Result<(), String> {
    println!("@@ started {}", ctx.id());
    tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    println!("@@ finished {}", ctx.id());
    Ok(())
}

/// The child: runs the runtime until a signal, then reports the drain. Its
/// log goes to stdout too, where the test reads when the shutdown began.
fn child() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let runtime = Runtime::builder()
            .mode(Mode::All)
            .http_addr("127.0.0.1:0".parse().unwrap())
            .build()
            .unwrap();
        let queue = runtime.queue_for(&slow_job).unwrap();
        queue.add(&slow_job, 1).await.unwrap();
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
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut logged = Vec::new();
    let mut read_until = |what: &str, found: &dyn Fn(&str) -> bool| {
        for line in lines.by_ref() {
            let done = found(&line);
            logged.push(line);
            if done {
                return;
            }
        }
        panic!("the child ended its output before {what}: {logged:#?}");
    };
    read_until("the job started", &|l| l.contains("@@ started "));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    read_until("the worker's drain", &|l| l.contains("worker draining"));
    // Only now may the job end: in the drain.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"finish\n").unwrap();
    drop(stdin);
    logged.extend(lines);
    let seen: Vec<String> = logged
        .iter()
        .filter_map(|line| line.split_once("@@ ").map(|(_, text)| text.to_owned()))
        .collect();
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
