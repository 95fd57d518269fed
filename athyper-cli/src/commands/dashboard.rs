//! `dashboard`: the web dashboard served alone against this Redis.
//!
//! Its settings come from the environment
//! ([`DashboardConfig::from_env`]): read-only unless `ATHYPER_ADMIN_TOKEN`
//! is set, served at the root unless `ATHYPER_DASHBOARD_PATH` says
//! otherwise.

use std::net::SocketAddr;

use athyper::admin::dashboard::{DashboardConfig, router};
use serde::Serialize;

use super::Ctx;
use crate::error::CliError;

/// `dashboard --json`: where it listens.
#[derive(Serialize)]
struct Listening {
    url: String,
    address: String,
}

pub async fn serve(ctx: &Ctx, bind: SocketAddr) -> Result<(), CliError> {
    let mut config = DashboardConfig::from_env().map_err(|e| CliError::Usage(e.to_string()))?;
    if std::env::var_os("ATHYPER_DASHBOARD_PATH").is_none_or(|p| p.is_empty()) {
        config = config.base_path("/");
    }
    let listener = tokio::net::TcpListener::bind(bind).await.map_err(|e| {
        CliError::Other(format!(
            "cannot listen on {bind}: {}; choose another address with --bind",
            io_cause(&e)
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::Other(format!("cannot read the address listened on: {e}")))?;
    if !local.ip().is_loopback() {
        ctx.out.warn(&if config.writes_enabled() {
            format!(
                "the dashboard on {local} is reachable from other machines, and whoever has the admin token can retry and remove jobs there"
            )
        } else {
            format!("the dashboard on {local} is reachable from other machines (read-only)")
        });
    }
    let path = config.base_path.trim_end_matches('/').to_owned();
    let app = router(ctx.admin.clone(), config);
    let url = format!("http://{local}{path}/");
    if ctx.out.json {
        ctx.out.print(&format!(
            "{}\n",
            serde_json::to_string(&Listening {
                url: url.clone(),
                address: local.to_string(),
            })
            .map_err(|e| CliError::Other(format!("cannot encode JSON: {e}")))?
        ))?;
    } else {
        ctx.out.print(&format!(
            "dashboard on {url} for Redis at {} (prefix `{}`); Ctrl-C stops it\n",
            ctx.target.address, ctx.target.prefix
        ))?;
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped())
        .await
        .map_err(|e| CliError::Other(format!("the dashboard stopped: {e}")))?;
    ctx.out.note("dashboard stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn stopped() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// `address in use`, `permission denied`: the kind in words.
fn io_cause(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        kind @ (AddrInUse | AddrNotAvailable | PermissionDenied) => kind.to_string(),
        _ => e.to_string(),
    }
}
