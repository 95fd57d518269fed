//! The JSON the pages poll to refresh their numbers.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{App, chart, pages, process};
use crate::admin::{MinuteView, QueueView};
use crate::queue::Chain;

/// `GET /api/summary`: every queue's counts, the last hour's totals and
/// chart (of one queue with `?queue=`), and the breakers' states.
#[derive(Serialize)]
struct Summary {
    /// Milliseconds since the Unix epoch when it was read.
    at_ms: u64,
    queues: Vec<QueueView>,
    /// Jobs per state over every queue.
    totals: HashMap<&'static str, u64>,
    /// The last hour, of `queue` or of every queue.
    hour: Hour,
    #[serde(skip_serializing_if = "Option::is_none")]
    breakers: Option<Vec<BreakerView>>,
}

#[derive(Serialize)]
struct Hour {
    completed: u64,
    failed: u64,
    minutes: Vec<MinuteView>,
    /// The chart, as the page draws it.
    svg: String,
}

#[derive(Serialize)]
struct BreakerView {
    name: String,
    state: &'static str,
}

pub(crate) async fn summary(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match read(&app, query.get("queue").filter(|q| !q.is_empty())).await {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": format!("the queue backend did not answer: {}", Chain(&error))
            })),
        )
            .into_response(),
    }
}

async fn read(app: &App, queue: Option<&String>) -> Result<Summary, crate::queue::QueueError> {
    let queues = app.admin.queues().await?;
    let mut totals = HashMap::new();
    for state in crate::queue::JobState::ALL {
        totals.insert(
            state.as_str(),
            queues.iter().map(|q| q.counts.state(state)).sum(),
        );
    }
    let (minutes, label) = match queue {
        Some(q) if queues.iter().any(|s| &s.name == q) => (
            pages::queue_hour(app, q).await?,
            format!("{q}, jobs per minute"),
        ),
        _ => {
            let mut series = Vec::with_capacity(queues.len());
            for q in &queues {
                series.push(pages::queue_hour(app, &q.name).await?);
            }
            (
                chart::sum(&series, 60),
                "All queues, jobs per minute".to_owned(),
            )
        }
    };
    let breakers = app.process.as_ref().map(|p| {
        p.observe();
        p.breakers
            .iter()
            .map(|b| BreakerView {
                name: b.name().to_owned(),
                state: process::state_name(b.state()),
            })
            .collect()
    });
    Ok(Summary {
        at_ms: crate::queue::time::to_millis(std::time::SystemTime::now()),
        totals,
        hour: Hour {
            completed: minutes.iter().map(|m| m.completed).sum(),
            failed: minutes.iter().map(|m| m.failed).sum(),
            svg: chart::throughput(&minutes, &label),
            minutes,
        },
        queues: queues.iter().map(QueueView::from).collect(),
        breakers,
    })
}
