use athyper::prelude::*;

#[athyper::job(timeout = "30")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
