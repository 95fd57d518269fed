//! `examples/scheduling.rs` as a real process on the embedded backend: it
//! exits 0 by itself and shows each scheduling and flow-control feature
//! doing what it promises.

use std::time::Duration;

use athyper_test_support::run_example;

fn run() -> Vec<String> {
    // The example waits for each step with deadlines of its own (20 s);
    // this one only bounds a process that hangs.
    run_example("scheduling", Duration::from_secs(120), |_| {})
}

/// The one line starting with `prefix`.
fn line<'a>(output: &'a [String], prefix: &str) -> &'a str {
    output
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting `{prefix}`:\n{}", output.join("\n")))
}

/// The number right after `before` in `line`.
fn number_after(line: &str, before: &str) -> u64 {
    let rest = &line[line
        .find(before)
        .unwrap_or_else(|| panic!("`{before}` in {line}"))
        + before.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after `{before}` in {line}"))
}

#[test]
fn scheduling_example_shows_schedules_rates_uniqueness_and_breaker_deferral() {
    let output = run();
    let shown = output.join("\n");

    // Declared schedules, stored at start with what the attributes say.
    assert_eq!(
        line(&output, "schedule heartbeat:"),
        "schedule heartbeat: every 1s (missed ticks: skip)"
    );
    assert_eq!(
        line(&output, "schedule rollup:"),
        "schedule rollup: cron */2 * * * * * Europe/Berlin (missed ticks: catch-up 2)"
    );
    let ticks = line(&output, "ticks seen: ");
    assert!(number_after(ticks, "ticks seen: ") >= 3, "{ticks}");
    assert!(number_after(ticks, "heartbeats, ") >= 1, "{ticks}");
    // Tick jobs are named after their schedule and tick time.
    assert!(
        output
            .iter()
            .any(|l| l.starts_with("[every 1s] heartbeat 1 (job heartbeat@")),
        "{shown}"
    );
    assert!(
        output
            .iter()
            .any(|l| l == "[cron */2 * * * * * Europe/Berlin] rollup of eu-central"),
        "{shown}"
    );

    // The second unique add found the first job; the digest went once.
    let unique = line(&output, "unique: ");
    assert!(
        unique.ends_with("second add found it (duplicate)"),
        "{unique}"
    );
    assert_eq!(
        output
            .iter()
            .filter(|l| l.as_str() == "[unique] digest sent to ada@example.com")
            .count(),
        1,
        "{shown}"
    );

    // Six calls at two per second: the last starts at least a window
    // after the first (half a second keeps a loaded machine's delays out).
    let calls = output
        .iter()
        .filter(|l| l.starts_with("[rate 2/s] partner call for order "))
        .count();
    assert_eq!(calls, 6, "{shown}");
    let spread = line(&output, "rate 2/s: ");
    assert!(spread.starts_with("rate 2/s: 6 partner calls"), "{spread}");
    assert!(number_after(spread, "spread over ") >= 500, "{spread}");

    // The open breaker deferred the job's only attempt instead of failing it.
    assert_eq!(
        line(&output, "breaker inventory: "),
        "breaker inventory: open after 2 failures"
    );
    let deferred = line(&output, "reserve_stock deferred: ");
    assert!(
        deferred.contains("circuit breaker `inventory` is open"),
        "{deferred}"
    );
    assert!(deferred.ends_with("attempts made: 0"), "{deferred}");
    let finished = line(&output, "reserve_stock Completed");
    assert!(finished.contains("after 1 attempt(s)"), "{finished}");
    assert!(number_after(finished, "and ") >= 1, "{finished}");

    assert_eq!(output.last().map(String::as_str), Some("done"), "{shown}");
}
