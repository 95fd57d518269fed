use athyper::prelude::*;

#[athyper::job(backoff = "2s", retry = "none")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
