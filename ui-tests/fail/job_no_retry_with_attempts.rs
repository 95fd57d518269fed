use athyper::prelude::*;

#[athyper::job(retry = "none", attempts = 3)]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
