use athyper::prelude::*;

#[athyper::job(max_backoff = "5M")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
