use athyper::prelude::*;

#[athyper::job(backoff = "10s", max_backoff = "5s")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
