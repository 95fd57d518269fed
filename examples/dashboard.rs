//! The web dashboard over the embedded backend, with jobs in every state.
//!
//! ```sh
//! cargo run --example dashboard
//! ```
//!
//! Starts a runtime on the in-memory backend with the dashboard on, fills
//! its queues (emails completed with their results, payments declined
//! after three attempts, webhooks that failed during an outage that is
//! over now, reports running and waiting, a paused imports queue, jobs
//! delayed by an hour), keeps a trickle of new jobs coming so the
//! throughput chart moves, and prints the dashboard's address and the
//! demo admin token that turns its actions on. Ctrl-C stops it.
//!
//! It listens on `127.0.0.1:7070` unless `ATHYPER_HTTP_ADDR` says
//! otherwise; `ATHYPER_ADMIN_TOKEN` replaces the demo token, and
//! `ATHYPER_TRACE_URL` the demo link from a job to its trace.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use athyper::admin::dashboard::DashboardConfig;
use athyper::observability::telemetry::{self, TelemetryConfig};
use athyper::prelude::*;
use athyper::queue::{MemoryBackend, Schedule};
use serde::{Deserialize, Serialize};

/// The token printed for the demo; set `ATHYPER_ADMIN_TOKEN` for another.
const DEMO_TOKEN: &str = "athyper-demo-token-3f9c2a71";

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
    template: String,
}

/// What the mail provider answered.
#[derive(Debug, Serialize, Deserialize)]
struct Receipt {
    message_id: String,
    accepted: Vec<String>,
    provider: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Charge {
    order: u64,
    cents: u64,
    currency: String,
    card: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Webhook {
    endpoint: String,
    event: String,
    body: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct Report {
    name: String,
    month: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Import {
    file: String,
    rows: u32,
}

/// Whether the webhook receiver is down: on while the example seeds its
/// failures, off afterwards, so a retry from the dashboard succeeds.
struct Outage(AtomicBool);

#[job(queue = "emails", concurrency = 4)]
async fn send_email(ctx: JobContext, email: Email) -> Result<Receipt, String> {
    tokio::time::sleep(Duration::from_millis(120)).await;
    Ok(Receipt {
        message_id: format!("<{}@mail.example>", ctx.id()),
        accepted: vec![email.to],
        provider: "smtp.mail.example".to_owned(),
    })
}

#[job(queue = "payments", retry = "fixed", backoff = "300ms", attempts = 3)]
async fn charge_card(_ctx: JobContext, charge: Charge) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(60)).await;
    if charge.card.ends_with("0002") {
        return Err(format!(
            "card declined for order {}: insufficient funds (issuer code 51)",
            charge.order
        ));
    }
    Ok(())
}

#[job(queue = "webhooks", retry = "fixed", backoff = "200ms", attempts = 2)]
async fn deliver_webhook(ctx: JobContext, hook: Webhook) -> Result<(), String> {
    let outage = ctx.data::<Arc<Outage>>().map_err(|e| e.to_string())?;
    if outage.0.load(Ordering::SeqCst) {
        return Err(format!(
            "POST {} answered 503 Service Unavailable after 2.1s\nretry-after: 30\nbody: {{\"error\":\"upstream maintenance\"}}",
            hook.endpoint
        ));
    }
    Ok(())
}

#[job(queue = "reports", concurrency = 2, priority = "low")]
async fn render_report(ctx: JobContext, report: Report) -> Result<(), String> {
    // Long enough to be seen running.
    for page in 1..=3_600u32 {
        ctx.progress(serde_json::json!({ "report": report.name, "page": page }))
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

#[job(queue = "imports")]
async fn import_rows(_ctx: JobContext, import: Import) -> Result<u32, String> {
    Ok(import.rows)
}

/// The geocoding provider, down for the whole demo: its breaker opens.
struct Geocoder {
    resilience: AdapterState,
}

#[adapter(
    name = "geocoder",
    circuit_breaker(failure_threshold = 3, open_for = "1h"),
    retry = "none",
    optional
)]
impl Geocoder {
    async fn locate(&self, address: &str) -> Result<(f64, f64), String> {
        Err(format!(
            "geocoding `{address}`: connect to geo.example:443 timed out"
        ))
    }
}

/// The mail provider, healthy.
struct Mailer {
    resilience: AdapterState,
}

#[adapter(
    name = "mailer",
    circuit_breaker(failure_threshold = 5, open_for = "30s"),
    retry = "none",
    health = "ping",
    required
)]
impl Mailer {
    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }
}

fn email(n: u64, subject: &str) -> Email {
    Email {
        to: format!("customer{n}@example.com"),
        subject: subject.to_owned(),
        template: "transactional/v3".to_owned(),
    }
}

fn charge(order: u64) -> Charge {
    Charge {
        order,
        cents: 1_000 + (order * 739) % 20_000,
        currency: "EUR".to_owned(),
        card: if order.is_multiple_of(4) {
            "4000 0000 0000 0002".to_owned()
        } else {
            "4242 4242 4242 4242".to_owned()
        },
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("ATHYPER_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| DEMO_TOKEN.to_owned());
    let mut config = DashboardConfig::from_env()?.token(token.clone());
    if config.trace_url.is_none() {
        config = config.trace_url("https://grafana.example/explore?traceId={trace_id}");
    }
    // Spans get trace ids (exported only if OTEL_EXPORTER_OTLP_ENDPOINT is
    // set), so jobs link to their trace; logs stay quiet unless RUST_LOG
    // says otherwise.
    let mut telemetry_config = TelemetryConfig::from_env()?;
    if std::env::var_os("RUST_LOG").is_none() {
        // The demo fails jobs and trips a breaker on purpose.
        telemetry_config = telemetry_config.log_filter(
            "warn,athyper::trace=info,athyper::queue::worker=off,athyper::resilience=off",
        );
    }
    let telemetry = telemetry::init(telemetry_config)?;
    let outage = Arc::new(Outage(AtomicBool::new(true)));
    let geocoder = Arc::new(Geocoder {
        resilience: AdapterState::new(),
    });
    let mailer = Arc::new(Mailer {
        resilience: AdapterState::new(),
    });
    let mut builder = Runtime::builder()
        .backend(MemoryBackend::new())
        .data(outage.clone())
        .adapter(geocoder.clone())
        .adapter(mailer)
        .dashboard(config.clone())
        .shutdown_timeout(Duration::from_secs(2))
        .telemetry(telemetry);
    if std::env::var_os("ATHYPER_HTTP_ADDR").is_none() {
        builder = builder.http_addr("127.0.0.1:7070".parse()?);
    }
    let runtime = builder.build()?;
    let admin = runtime.admin();

    // A paused queue keeps its jobs waiting.
    let imports = runtime.queue_for(&import_rows)?;
    admin.pause("imports").await?;
    for (i, file) in ["customers.csv", "orders-2026-11.csv", "stock.xlsx"]
        .iter()
        .enumerate()
    {
        imports
            .add(
                &import_rows,
                Import {
                    file: (*file).to_owned(),
                    rows: 1_200 * (i as u32 + 1),
                },
            )
            .await?;
    }

    let running = runtime.start().await?;
    let addr = running
        .http_addr()
        .ok_or("ATHYPER_HTTP_ADDR is `off`: the dashboard needs HTTP")?;

    let emails = runtime.queue_for(&send_email)?;
    let payments = runtime.queue_for(&charge_card)?;
    let webhooks = runtime.queue_for(&deliver_webhook)?;
    let reports = runtime.queue_for(&render_report)?;

    for n in 1..=24 {
        emails
            .add(&send_email, email(n, "Your order has shipped"))
            .await?;
    }
    for (n, subject) in [(901, "Weekly digest"), (902, "Your trial ends soon")] {
        emails
            .add_with(
                &send_email,
                email(n, subject),
                JobOptions::new().delay(Duration::from_secs(3_600)),
            )
            .await?;
    }
    for order in 1_000..1_016 {
        payments.add(&charge_card, charge(order)).await?;
    }
    payments
        .add_with(
            &charge_card,
            charge(2_001),
            JobOptions::new().delay(Duration::from_secs(1_800)),
        )
        .await?;
    for (i, event) in [
        "order.created",
        "order.paid",
        "order.shipped",
        "refund.created",
        "customer.updated",
    ]
    .iter()
    .enumerate()
    {
        webhooks
            .add_with(
                &deliver_webhook,
                Webhook {
                    endpoint: format!("https://hooks.partner.example/athyper/{}", i + 1),
                    event: (*event).to_owned(),
                    body: serde_json::json!({ "event": event, "order": 1_000 + i, "amount": { "cents": 4_250, "currency": "EUR" } }),
                },
                JobOptions::new().id(format!("hook-{}", i + 1)),
            )
            .await?;
    }
    for (name, priority) in [
        ("revenue", Priority::High),
        ("churn", Priority::Normal),
        ("inventory", Priority::Normal),
        ("tax", Priority::Low),
        ("cohorts", Priority::Low),
    ] {
        reports
            .add_with(
                &render_report,
                Report {
                    name: name.to_owned(),
                    month: "2026-11".to_owned(),
                },
                JobOptions::new().priority(priority),
            )
            .await?;
    }

    // Recurring jobs, shown on their queue's page.
    reports
        .schedule(
            "monthly-revenue",
            &render_report,
            Schedule::cron("0 6 1 * *")?,
            Report {
                name: "revenue".to_owned(),
                month: "previous".to_owned(),
            },
        )
        .await?;
    emails
        .schedule(
            "daily-digest",
            &send_email,
            Schedule::every(Duration::from_secs(86_400))?,
            email(0, "Your daily digest"),
        )
        .await?;

    // Wait for the seeded work to settle: webhooks failed for good, the
    // declined payments failed, emails sent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hooks = admin.counts("webhooks").await?;
        let pay = admin.counts("payments").await?;
        if hooks.failed() == 5 && pay.failed() == 4 && pay.waiting() == 0 && pay.active() == 0 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the seeded jobs did not settle within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The geocoder keeps failing: its breaker opens.
    for address in ["1 Main St", "2 Side Rd", "3 High St"] {
        let _ = geocoder.locate(address).await;
    }

    // The receiver is back: retrying a failed webhook now succeeds.
    outage.0.store(false, Ordering::SeqCst);

    // A trickle of new work, so the chart moves while you look.
    let next = Arc::new(AtomicU64::new(3_000));
    let trickle = {
        let (emails, payments, next) = (emails.clone(), payments.clone(), next.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1_500));
            loop {
                tick.tick().await;
                let n = next.fetch_add(1, Ordering::Relaxed);
                let _ = emails.add(&send_email, email(n, "Your receipt")).await;
                if n.is_multiple_of(3) {
                    let _ = payments.add(&charge_card, charge(n)).await;
                }
            }
        })
    };

    let base = config.base_path.trim_end_matches('/');
    println!("dashboard on http://{addr}{base}/");
    println!("admin token: {token}");
    println!("Ctrl-C stops it");

    let report = running.wait_for_signal().await;
    trickle.abort();
    println!("stopped ({})", report.reason);
    Ok(())
}
