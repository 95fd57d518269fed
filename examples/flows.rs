//! Flows, results, events and cancellation on the embedded backend.
//!
//! ```sh
//! cargo run --example flows
//! ```
//!
//! A weekly digest (queue `digests`) is built from one report per section
//! (queue `reports`), each built from the pages of its section (queue
//! `pages`): three levels of jobs on three queues. Each parent runs once
//! all of its children have ended and reads their results typed. One page
//! is broken; its report is told to carry on without it
//! ([`OnChildFailure::Ignore`]). Meanwhile a subscriber prints the events
//! of the `reports` queue, the program waits for the digest's result, and
//! a second flow is cancelled while its children still wait: they are
//! cancelled with it. It exits by itself within a few seconds.
//!
//! Set `ATHYPER_REDIS_URL` to run the same program on Redis.

use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::{EventKind, EventsFrom, Flow, JobOptions, JobState, OnChildFailure};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

// ---- the bottom level: pages ------------------------------------------------

/// What fetching one page found.
#[derive(Debug, Serialize, Deserialize)]
struct Page {
    url: String,
    words: u64,
}

/// Fetches a page (here: counts the letters of its path); `broken` pages
/// fail.
#[job(queue = "pages", retry = "none")]
async fn fetch_page(_ctx: JobContext, url: String) -> Result<Page, String> {
    tokio::time::sleep(Duration::from_millis(10 * (url.len() as u64 % 5))).await;
    if url.contains("broken") {
        return Err(format!("{url}: 404 Not Found"));
    }
    let words = url.rsplit('/').next().map_or(0, |path| path.len() as u64);
    Ok(Page { url, words })
}

// ---- the middle level: reports ----------------------------------------------

/// One section's report: its pages' words, and how many pages failed.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    section: String,
    pages: usize,
    words: u64,
    failed: usize,
}

#[job(queue = "reports", retry = "none")]
async fn build_report(ctx: JobContext, section: String) -> Result<Report, String> {
    let pages = ctx
        .children_of(&fetch_page)
        .await
        .map_err(|e| e.to_string())?;
    let done: Vec<&Page> = pages.iter().filter_map(|c| c.outcome.result()).collect();
    Ok(Report {
        section,
        pages: done.len(),
        words: done.iter().map(|p| p.words).sum(),
        failed: pages.len() - done.len(),
    })
}

// ---- the top level: the digest ----------------------------------------------

#[job(queue = "digests", retry = "none")]
async fn publish_digest(ctx: JobContext, week: String) -> Result<String, String> {
    let reports = ctx
        .children_of(&build_report)
        .await
        .map_err(|e| e.to_string())?;
    let lines: Vec<String> = reports
        .iter()
        .filter_map(|c| c.outcome.result())
        .map(|r| {
            format!(
                "{}: {} pages, {} words, {} failed",
                r.section, r.pages, r.words, r.failed
            )
        })
        .collect();
    Ok(format!("digest {week}: {}", lines.join("; ")))
}

fn section(name: &str, urls: &[&str]) -> Flow {
    Flow::new(&build_report, name.to_owned())
        .children(
            urls.iter()
                .map(|url| Flow::new(&fetch_page, (*url).to_owned())),
        )
        .on_child_failure(OnChildFailure::Ignore)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().without_http().build()?;
    let digests = runtime.queue("digests")?;
    let reports = runtime.queue("reports")?;
    let pages = runtime.queue("pages")?;
    let running = runtime.start().await?;

    // Watch the reports queue from now on, from a task of its own.
    let mut events = Box::pin(reports.events(EventsFrom::Now).await?);
    let watcher = tokio::spawn(async move {
        let mut completed = 0;
        while let Some(Ok(event)) = events.next().await {
            let kind = match &event.kind {
                EventKind::Added => "added",
                EventKind::Active { .. } => "active",
                EventKind::Completed { .. } => "completed",
                EventKind::Failed { .. } => "failed",
                EventKind::Cancelled => "cancelled",
                _ => continue,
            };
            println!("[events reports] {kind} {} ({})", event.id, event.name);
            if kind == "completed" {
                completed += 1;
                if completed == 2 {
                    return completed;
                }
            }
        }
        completed
    });

    // A digest over two sections' reports over their pages.
    let flow = digests
        .add_flow(
            Flow::new(&publish_digest, "2026-W49".into()),
            [
                section(
                    "news",
                    &[
                        "https://example.com/news/elections",
                        "https://example.com/news/weather",
                    ],
                ),
                section(
                    "sport",
                    &[
                        "https://example.com/sport/football",
                        "https://example.com/sport/broken",
                        "https://example.com/sport/tennis",
                    ],
                ),
            ],
        )
        .await?;
    let page_count: usize = flow.children.iter().map(|r| r.children.len()).sum();
    println!(
        "flow added: digest {} over {} reports over {page_count} pages",
        flow.id,
        flow.children.len()
    );
    let digest = digests
        .wait(&publish_digest, &flow.id, Duration::from_secs(20))
        .await?;
    println!("result: {digest}");
    let broken = &flow.children[1].children[1];
    let info = pages
        .get(&broken.id)
        .await?
        .ok_or("the broken page's job is kept")?;
    println!(
        "page {} {}: {}",
        broken.id,
        info.state,
        info.failed_reason().unwrap_or("")
    );
    let seen = tokio::time::timeout(Duration::from_secs(20), watcher).await??;
    println!("events: the subscriber saw {seen} reports complete");

    // A second digest whose pages are not due for an hour: cancelling it
    // cancels its reports and their pages, which never run.
    let later = JobOptions::new().delay(Duration::from_secs(3600));
    let flow = digests
        .add_flow(
            Flow::new(&publish_digest, "2026-W50".into()),
            [
                Flow::new(&build_report, "news".into()).child(Flow::with_options(
                    &fetch_page,
                    "https://example.com/news/next-week".into(),
                    later,
                )),
            ],
        )
        .await?;
    let state = digests
        .get(&flow.id)
        .await?
        .map_or(JobState::Waiting, |j| j.state);
    println!("second digest {}: {state}", flow.id);
    let outcome = digests.cancel(&flow.id).await?;
    let report = &flow.children[0];
    let page = &report.children[0];
    let report_state = reports.get(&report.id).await?.map(|j| j.state);
    let page_state = pages.get(&page.id).await?.map(|j| j.state);
    println!(
        "cancel: digest {outcome:?}; report {} {}; page {} {}",
        report.id,
        report_state.map_or("gone".into(), |s| s.to_string()),
        page.id,
        page_state.map_or("gone".into(), |s| s.to_string()),
    );

    running.shutdown().await;
    println!("done");
    Ok(())
}
