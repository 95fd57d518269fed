//! `examples/flows.rs` as a real process, on the embedded backend and on a
//! private `redis-server`: it exits 0 by itself, the digest's result sums
//! its reports, which sum their pages, the broken page fails without
//! failing its report, the subscriber sees both reports, and cancelling
//! the second digest cancels its report and page.

use std::time::Duration;

use athyper_test_support::{RedisServer, run_example};

fn run(redis_url: Option<&str>) -> Vec<String> {
    // The example bounds each wait itself (20 s); this only bounds a
    // process that hangs.
    run_example("flows", Duration::from_secs(120), |command| {
        if let Some(url) = redis_url {
            command.env("ATHYPER_REDIS_URL", url);
        }
    })
}

fn line<'a>(output: &'a [String], prefix: &str) -> &'a str {
    output
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting `{prefix}`:\n{}", output.join("\n")))
}

fn check(output: &[String]) {
    let flow = line(output, "flow added: ");
    assert!(flow.ends_with("over 2 reports over 5 pages"), "{flow}");
    assert_eq!(
        line(output, "result: "),
        "result: digest 2026-W49: news: 2 pages, 16 words, 0 failed; sport: 2 pages, 14 words, 1 failed"
    );
    let broken = line(output, "page reports:");
    assert!(
        broken.ends_with("failed: https://example.com/sport/broken: 404 Not Found"),
        "{broken}"
    );
    assert_eq!(
        line(output, "events: "),
        "events: the subscriber saw 2 reports complete"
    );
    // Each report was added, ran and completed, in that order.
    for report in [":0 (build_report)", ":1 (build_report)"] {
        let kinds: Vec<&str> = output
            .iter()
            .filter(|l| l.starts_with("[events reports] ") && l.ends_with(report))
            .map(|l| l.split(' ').nth(2).unwrap())
            .collect();
        assert_eq!(kinds, ["added", "active", "completed"], "report {report}");
    }
    assert!(line(output, "second digest ").ends_with(": waiting-children"));
    let cancel = line(output, "cancel: ");
    assert!(
        cancel.starts_with("cancel: digest Cancelled; report "),
        "{cancel}"
    );
    assert_eq!(cancel.matches(" cancelled").count(), 2, "{cancel}");
    assert_eq!(output.last().map(String::as_str), Some("done"));
}

#[test]
fn flows_example_runs_on_the_embedded_backend() {
    check(&run(None));
}

#[test]
fn flows_example_runs_on_redis() {
    let server = RedisServer::start();
    check(&run(Some(&server.url())));
}
