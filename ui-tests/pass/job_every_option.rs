//! Every option at once, each reaching the descriptor.

use std::time::Duration;

use athyper::prelude::*;
use athyper::registry::JobDefaults;
use athyper::resilience::{BackoffKind, Jitter};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Email {
    to: String,
}

/// Sends one email.
#[athyper::job(
    queue = "emails",
    name = "send-email",
    priority = "high",
    retry = "linear",
    attempts = 5,
    backoff = "2s",
    max_backoff = "1m",
    jitter = "full",
    timeout = "30s",
    concurrency = 4,
    crate = "::athyper"
)]
async fn send_email(_ctx: JobContext, _email: Email) -> Result<(), std::io::Error> {
    Ok(())
}

fn main() {
    let descriptor = send_email.descriptor();
    assert_eq!(descriptor.name, "send-email");
    assert_eq!(descriptor.queue, "emails");
    assert_eq!(
        descriptor.defaults,
        JobDefaults::DEFAULT
            .with_priority(Priority::High)
            .with_attempts(5)
            .with_backoff_kind(BackoffKind::Linear)
            .with_backoff(Duration::from_secs(2))
            .with_max_backoff(Duration::from_secs(60))
            .with_jitter(Jitter::Full)
            .with_timeout(Duration::from_secs(30))
            .with_concurrency(4)
    );
}
