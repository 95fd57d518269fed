//! `handle.call(ctx, payload)` runs the body directly, as a unit test would.
#![deny(warnings)]

use athyper::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Email {
    to: String,
}

#[athyper::job(queue = "emails")]
async fn send_email(ctx: JobContext, email: Email) -> Result<(), String> {
    ctx.progress(50).await.map_err(|e| e.to_string())?;
    if email.to.contains('@') {
        Ok(())
    } else {
        Err(format!("`{}` is not an address", email.to))
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ctx = JobContext::detached("send_email");
        let ok = send_email
            .call(
                ctx.clone(),
                Email {
                    to: "ada@example.com".into(),
                },
            )
            .await;
        assert_eq!(ok, Ok(()));
        assert_eq!(ctx.last_progress().as_deref(), Some("50"));
        let err = send_email
            .call(
                JobContext::detached("send_email"),
                Email {
                    to: "nobody".into(),
                },
            )
            .await;
        assert_eq!(err, Err("`nobody` is not an address".to_owned()));
    });
}
