use athyper::prelude::*;

#[athyper::job(priority = "high", queue = "emails", priority = "low")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
