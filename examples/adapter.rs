//! A flaky HTTP service called through a protected adapter.
//!
//! ```sh
//! cargo run --example adapter
//! ```
//!
//! Starts a small quote service (axum, on a free loopback port) that fails
//! on command, then calls it three ways, printing every circuit breaker
//! transition as the service fails and recovers:
//!
//! 1. through an `#[adapter]`: each instance owns its breaker, retries by a
//!    policy, times out each attempt, and has a health check;
//! 2. by hand, with `Protected::call_method`;
//! 3. as a tower layer around a `Service`, sharing the same protection.
//!
//! Exits by itself once the service has recovered.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use athyper::observability::HealthRegistry;
use athyper::prelude::*;
use athyper::resilience::{
    Adapter, Backoff, CircuitBreakerConfig, Jitter, Layer, Protected, ProtectionConfig,
    ResilienceHooks, RetryPolicy, Service, ServiceExt, StateChange, Unavailable, health_check,
};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long an open breaker rejects calls in this example.
const OPEN_FOR: Duration = Duration::from_millis(300);

// ---- the flaky service -----------------------------------------------------

/// Serves `GET /quote/{symbol}`, failing with 503 after `POST /fail` until
/// `POST /recover`.
async fn serve() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let failing = Arc::new(AtomicBool::new(false));
    let app = Router::new()
        .route("/quote/{symbol}", get(quote))
        .route("/health", get(health))
        .route(
            "/fail",
            post(|State(f): State<Arc<AtomicBool>>| async move {
                f.store(true, Ordering::Relaxed);
            }),
        )
        .route(
            "/recover",
            post(|State(f): State<Arc<AtomicBool>>| async move {
                f.store(false, Ordering::Relaxed);
            }),
        )
        .with_state(failing);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop)
}

async fn quote(
    State(failing): State<Arc<AtomicBool>>,
    Path(symbol): Path<String>,
) -> Result<String, StatusCode> {
    if failing.load(Ordering::Relaxed) {
        Err(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        Ok(format!("{symbol} 42.00"))
    }
}

async fn health(State(failing): State<Arc<AtomicBool>>) -> StatusCode {
    if failing.load(Ordering::Relaxed) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

// ---- the adapter -----------------------------------------------------------

#[derive(Debug)]
enum QuoteError {
    Status(u16),
    Http(String),
    Unavailable(Unavailable),
}

impl fmt::Display for QuoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuoteError::Status(status) => write!(f, "quote service answered {status}"),
            QuoteError::Http(error) => write!(f, "http: {error}"),
            QuoteError::Unavailable(u) => u.fmt(f),
        }
    }
}

impl std::error::Error for QuoteError {}

/// A rejected or timed-out call is a `QuoteError` too.
impl From<Unavailable> for QuoteError {
    fn from(u: Unavailable) -> Self {
        QuoteError::Unavailable(u)
    }
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

async fn get_text(client: &HttpClient, url: String) -> Result<String, QuoteError> {
    let uri = url.parse().map_err(|e| QuoteError::Http(format!("{e}")))?;
    let response = client
        .get(uri)
        .await
        .map_err(|e| QuoteError::Http(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| QuoteError::Http(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(QuoteError::Status(status.as_u16()));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Two quick attempts: enough to ride out a blip, few enough to fail fast.
const QUOTES_RETRY: RetryPolicy = RetryPolicy::new(2)
    .with_backoff(Backoff::fixed(Duration::from_millis(20)).with_jitter(Jitter::None));

/// The quote service, as the rest of the program sees it.
#[derive(Clone)]
struct Quotes {
    client: HttpClient,
    base: String,
    resilience: AdapterState,
}

#[adapter(
    name = "quotes",
    circuit_breaker(failure_threshold = 3, open_for = "300ms", success_threshold = 2),
    retry = QUOTES_RETRY,
    timeout = "1s",
    health = "ping"
)]
impl Quotes {
    fn new(client: HttpClient, base: String, hooks: Arc<dyn ResilienceHooks>) -> Self {
        Quotes {
            client,
            base,
            resilience: AdapterState::with_hooks(hooks),
        }
    }

    /// The price of `symbol`.
    async fn price(&self, symbol: &str) -> Result<String, QuoteError> {
        get_text(&self.client, format!("{}/quote/{symbol}", self.base)).await
    }

    async fn ping(&self) -> Result<(), QuoteError> {
        get_text(&self.client, format!("{}/health", self.base))
            .await
            .map(drop)
    }
}

// ---- the tower service -----------------------------------------------------

/// The same HTTP call as a tower `Service` of symbols: requests must be
/// `Clone` to be retried, which a symbol is and an `http::Request` is not.
#[derive(Clone)]
struct QuoteClient {
    client: HttpClient,
    base: String,
}

impl Service<&'static str> for QuoteClient {
    type Response = String;
    type Error = QuoteError;
    type Future = BoxFuture<'static, Result<String, QuoteError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), QuoteError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, symbol: &'static str) -> Self::Future {
        let (client, url) = (self.client.clone(), format!("{}/quote/{symbol}", self.base));
        Box::pin(async move { get_text(&client, url).await })
    }
}

// ---- printing --------------------------------------------------------------

/// Prints every breaker transition.
struct PrintTransitions;

impl ResilienceHooks for PrintTransitions {
    fn on_state_change(&self, e: &StateChange<'_>) {
        println!(
            "    ** breaker `{}`: {} -> {} ({})",
            e.adapter, e.from, e.to, e.reason
        );
    }
}

fn show<T: fmt::Display, E: fmt::Display>(what: &str, result: &Result<T, E>) {
    match result {
        Ok(value) => println!("  {what}: ok, {value}"),
        Err(error) => println!("  {what}: error, {error}"),
    }
}

async fn command(client: &HttpClient, base: &str, what: &str) {
    let request = hyper::Request::post(format!("{base}/{what}"))
        .body(Empty::new())
        .unwrap();
    let status = client.request(request).await.unwrap().status();
    assert!(status.is_success());
    println!("-- the service is told to {what}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, stop) = serve().await;
    let base = format!("http://{addr}");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let print: Arc<dyn ResilienceHooks> = Arc::new(PrintTransitions);
    println!("quote service on {base}");

    // 1. Through the adapter.
    println!("\n1. #[adapter]");
    let quotes = Arc::new(Quotes::new(client.clone(), base.clone(), print.clone()));
    let health = HealthRegistry::new();
    health.register(health_check(quotes.clone()));
    show("price ACME", &quotes.price("ACME").await);

    command(&client, &base, "fail").await;
    for _ in 0..4 {
        show("price ACME", &quotes.price("ACME").await);
    }
    let report = health.report().await;
    println!(
        "  health: {:?} ({:?})",
        report.status, report.checks[0].error
    );

    command(&client, &base, "recover").await;
    tokio::time::sleep(OPEN_FOR + Duration::from_millis(50)).await;
    for _ in 0..2 {
        show("price ACME", &quotes.price("ACME").await);
    }
    let state = quotes.breaker().map(|b| b.state());
    println!(
        "  breaker now {state:?}; health {:?}",
        health.report().await.status
    );
    assert_eq!(state, Some(athyper::resilience::BreakerState::Closed));

    // 2. and 3. The same protection by hand and as a tower layer, sharing
    // one breaker.
    println!("\n2. Protected::call_method and 3. ProtectionLayer");
    let protected = Protected::new(
        ProtectionConfig::default()
            .with_name("quotes-by-hand")
            .with_circuit_breaker(
                CircuitBreakerConfig::default()
                    .with_failure_threshold(2)
                    .with_open_for(OPEN_FOR),
            )
            .with_retry(QUOTES_RETRY)
            .with_timeout(Duration::from_secs(1))
            .with_hooks(print.clone()),
    )?;
    let mut service = protected.layer().method("price").layer(QuoteClient {
        client: client.clone(),
        base: base.clone(),
    });

    let by_hand = protected
        .call_method("price", || get_text(&client, format!("{base}/quote/INIT")))
        .await;
    show("by hand, price INIT", &by_hand);
    show(
        "layer, price ACME",
        &service.ready().await?.call("ACME").await,
    );

    command(&client, &base, "fail").await;
    show(
        "layer, price ACME",
        &service.ready().await?.call("ACME").await,
    );
    let by_hand = protected
        .call_method("price", || get_text(&client, format!("{base}/quote/INIT")))
        .await;
    show("by hand, price INIT", &by_hand);
    show(
        "layer, price ACME",
        &service.ready().await?.call("ACME").await,
    );

    command(&client, &base, "recover").await;
    tokio::time::sleep(OPEN_FOR + Duration::from_millis(50)).await;
    show(
        "layer, price ACME",
        &service.ready().await?.call("ACME").await,
    );
    assert_eq!(
        protected.breaker().map(|b| b.state()),
        Some(athyper::resilience::BreakerState::Closed)
    );

    let _ = stop.send(());
    println!("\ndone");
    Ok(())
}
