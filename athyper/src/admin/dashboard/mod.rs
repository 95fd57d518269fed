//! The web dashboard: server-rendered pages over [`Admin`], with its
//! assets in the binary.
//!
//! [`router`] gives an axum [`Router`] whose routes sit under
//! [`DashboardConfig::base_path`]. The runtime merges it next to `/health`
//! when enabled; `athyper dashboard` serves it alone against
//! `ATHYPER_REDIS_URL`.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::{Admin, QueueView};

/// How the dashboard is served.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DashboardConfig {
    /// Where its pages live, such as `/admin` (the default) or `/`.
    pub base_path: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            base_path: "/admin".to_owned(),
        }
    }
}

impl DashboardConfig {
    /// Serves the pages under `path` (`/` for the root).
    #[must_use]
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        let path: String = path.into();
        self.base_path = format!("/{}", path.trim_matches('/'));
        self
    }
}

#[derive(Clone)]
struct App {
    admin: Admin,
    config: DashboardConfig,
}

/// The dashboard's routes over `admin`.
pub fn router(admin: Admin, config: DashboardConfig) -> Router {
    let base = config.base_path.trim_end_matches('/').to_owned();
    let app = App { admin, config };
    let root = if base.is_empty() {
        "/".to_owned()
    } else {
        base
    };
    Router::new().route(&root, get(overview)).with_state(app)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn overview(State(app): State<App>) -> Response {
    match app.admin.queues().await {
        Ok(queues) => {
            let mut rows = String::new();
            for queue in &queues {
                let view = QueueView::from(queue);
                let _ = write!(
                    rows,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&view.name),
                    view.waiting,
                    view.delayed,
                    view.active,
                    view.completed,
                    view.failed
                );
            }
            let _ = &app.config;
            Html(format!(
                "<!doctype html><title>athyper</title><h1>Queues</h1><table><tr><th>queue</th><th>waiting</th><th>delayed</th><th>active</th><th>completed</th><th>failed</th></tr>{rows}</table>"
            ))
            .into_response()
        }
        Err(error) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Html(format!(
                "<!doctype html><title>athyper</title><p>the backend did not answer: {}</p>",
                escape(&crate::queue::Chain(&error).to_string())
            )),
        )
            .into_response(),
    }
}
