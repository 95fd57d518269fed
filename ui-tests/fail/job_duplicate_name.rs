use athyper::prelude::*;

#[athyper::job(queue = "emails")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

#[athyper::job(queue = "newsletters")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
