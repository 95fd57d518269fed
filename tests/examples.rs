//! The quickstart and adapter examples as real processes: they exit 0 by
//! themselves and print what they promise.

use std::process::Command;
use std::time::Duration;

use athyper_test_support::{Proc, example};

fn run(name: &str) -> Vec<String> {
    let mut command = Command::new(example(name));
    command
        .env_remove("ATHYPER_REDIS_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("ATHYPER_HTTP_ADDR", "127.0.0.1:0")
        .env("ATHYPER_LOG_FORMAT", "pretty")
        .env("RUST_LOG", "warn");
    let (status, output) = Proc::spawn(name, command).wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "{name} exited with {status}:\n{}",
        output.join("\n")
    );
    output
}

#[test]
fn quickstart_runs_jobs_by_priority_and_retries_the_flaky_one() {
    let output = run("quickstart");
    let shown = output.join("\n");
    let order: Vec<&String> = output
        .iter()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains(". "))
        .collect();
    let position = |needle: &str| {
        order
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` did not run:\n{shown}"))
    };
    // Strict priority while everything waits; the delayed job and the
    // retries run when due.
    assert!(
        position("fraud alert") < position("password reset"),
        "{shown}"
    );
    assert!(
        position("password reset") < position("order shipped"),
        "{shown}"
    );
    assert!(
        position("order shipped") < position("weekly digest"),
        "{shown}"
    );
    assert!(
        position("weekly digest") < position("photo-1.jpg"),
        "{shown}"
    );
    assert!(position("photo-1.jpg") < position("photo-3.jpg"), "{shown}");
    assert!(shown.contains("SKU-1042: synced"), "{shown}");
    assert!(shown.contains("completed after 3 attempts"), "{shown}");
    let counts = output
        .iter()
        .find(|l| l.starts_with("final counts: "))
        .unwrap_or_else(|| panic!("no final counts:\n{shown}"));
    assert!(
        counts.contains("failed 0") || counts.contains("failed=0"),
        "{counts}"
    );
}

#[test]
fn adapter_example_shows_the_breaker_open_and_close_again() {
    let output = run("adapter");
    let shown = output.join("\n");
    for transition in ["closed -> open", "open -> half_open", "half_open -> closed"] {
        assert!(
            output
                .iter()
                .any(|l| l.contains("** breaker") && l.contains(transition)),
            "no `{transition}` transition:\n{shown}"
        );
    }
    assert_eq!(output.last().map(String::as_str), Some("done"), "{shown}");
}
