use athyper::prelude::*;

#[athyper::job(name = "send/email")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
