//! The web dashboard: server-rendered pages over [`Admin`], with its
//! stylesheet and script in the binary.
//!
//! [`router`] gives an axum [`Router`] whose routes sit under
//! [`DashboardConfig::base_path`]. The runtime merges it next to `/health`
//! when enabled (`ATHYPER_DASHBOARD=on`, or
//! [`RuntimeBuilder::dashboard`](crate::runtime::RuntimeBuilder::dashboard)),
//! adding a page of the process's circuit breakers and health checks;
//! `athyper dashboard` serves it alone against `ATHYPER_REDIS_URL`.
//!
//! | route (under the base path) | shows or does |
//! |---|---|
//! | `GET /` | every queue's counts; completed and failed jobs per minute over the last hour |
//! | `GET /queues/{queue}?state=failed&q=&offset=` | a queue's jobs in one state, by page; `q` finds a job by id or jobs by handler name |
//! | `GET /queues/{queue}/jobs/{id}` | one job: payload, result, every attempt's error, its trace |
//! | `GET /workers` | every queue's workers and the jobs they hold |
//! | `GET /process` | the serving process's breakers and health checks (runtime only) |
//! | `GET /api/summary?queue=` | the numbers pages refresh with, as JSON |
//! | `POST /queues/{queue}/{retry,remove,clean,retry-all,pause,resume}` | actions on a queue |
//! | `POST /queues/{queue}/jobs/{id}/{retry,remove,promote}` | actions on a job |
//!
//! Actions are off unless the configuration allows them (see
//! [`Writes`]); forms carry a CSRF token; every answer carries a
//! `Content-Security-Policy`.
//!
//! ```
//! use athyper::admin::Admin;
//! use athyper::admin::dashboard::{DashboardConfig, router};
//! use athyper::queue::{MemoryBackend, SharedBackend};
//!
//! let backend: SharedBackend = std::sync::Arc::new(MemoryBackend::new());
//! let config = DashboardConfig::default()
//!     .base_path("/ops")
//!     .token("a-long-random-admin-token")
//!     .show_payloads(false);
//! let app: axum::Router = router(Admin::new(backend), config);
//! # let _ = app;
//! ```

mod actions;
mod api;
mod chart;
mod config;
mod html;
mod pages;
mod process;
mod security;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use self::config::{DashboardConfig, DashboardConfigError, Writes};
use self::process::Process;
use super::Admin;
use crate::health::HealthRegistry;
use crate::resilience::CircuitBreaker;

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// A dashboard being put together: the admin API, the settings and, when
/// served by a runtime, the process's breakers and health checks.
#[derive(Debug)]
#[must_use]
pub struct Dashboard {
    admin: Admin,
    config: DashboardConfig,
    breakers: Vec<CircuitBreaker>,
    health: Option<HealthRegistry>,
    process: bool,
}

impl Dashboard {
    /// Over `admin`, served as `config` says.
    pub fn new(admin: Admin, config: DashboardConfig) -> Dashboard {
        Dashboard {
            admin,
            config,
            breakers: Vec::new(),
            health: None,
            process: false,
        }
    }

    /// Shows these breakers on the process page.
    pub fn breakers(mut self, breakers: impl IntoIterator<Item = CircuitBreaker>) -> Dashboard {
        self.breakers.extend(breakers);
        self.process = true;
        self
    }

    /// Shows these health checks on the process page.
    pub fn health(mut self, health: HealthRegistry) -> Dashboard {
        self.health = Some(health);
        self.process = true;
        self
    }

    /// The routes.
    pub fn router(self) -> Router {
        let session = match &self.config.writes {
            Writes::Token(token) => security::session_value(token),
            Writes::Off | Writes::Layer => String::new(),
        };
        let process = self
            .process
            .then(|| Process::new(self.breakers, self.health));
        let app = App {
            admin: self.admin,
            config: Arc::new(self.config),
            process,
            session: Arc::from(session),
        };
        routes(app)
    }
}

/// The dashboard's routes over `admin`, without a process page.
pub fn router(admin: Admin, config: DashboardConfig) -> Router {
    Dashboard::new(admin, config).router()
}

/// What every handler works with.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) admin: Admin,
    pub(crate) config: Arc<DashboardConfig>,
    pub(crate) process: Option<Arc<Process>>,
    /// The session cookie's value when a token is set.
    pub(crate) session: Arc<str>,
}

impl App {
    pub(crate) fn prefix(&self) -> &str {
        self.config.prefix()
    }
}

fn routes(app: App) -> Router {
    let p = app.prefix().to_owned();
    let at = |path: &str| format!("{p}{path}");
    let mut router = Router::new()
        .route(&at("/"), get(pages::overview))
        .route(&at("/queues/{queue}"), get(pages::queue))
        .route(&at("/queues/{queue}/jobs/{id}"), get(pages::job))
        .route(&at("/workers"), get(pages::workers))
        .route(&at("/process"), get(pages::process))
        .route(&at("/login"), get(pages::login).post(actions::login))
        .route(&at("/logout"), post(actions::logout))
        .route(&at("/api/summary"), get(api::summary))
        .route(&at("/queues/{queue}/{action}"), post(actions::queue_action))
        .route(
            &at("/queues/{queue}/jobs/{id}/{action}"),
            post(actions::job_action),
        )
        .route(&at("/assets/dashboard.css"), get(css))
        .route(&at("/assets/dashboard.js"), get(js))
        .route(&at("/assets/favicon.svg"), get(favicon));
    if !p.is_empty() {
        router = router.route(&p, get(pages::overview));
    }
    router
        .with_state(app)
        .layer(axum::middleware::map_response(harden))
}

async fn harden(response: Response) -> Response {
    security::harden(response)
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

async fn favicon() -> Response {
    asset(FAVICON, "image/svg+xml")
}
