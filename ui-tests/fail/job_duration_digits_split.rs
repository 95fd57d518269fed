use athyper::prelude::*;

#[athyper::job(backoff = "1 0s")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
