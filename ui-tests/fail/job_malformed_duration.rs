use athyper::prelude::*;

#[athyper::job(backoff = "5 sex")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
