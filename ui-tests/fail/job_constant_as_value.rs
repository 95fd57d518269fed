use athyper::prelude::*;

const QUEUE: &str = "emails";

#[athyper::job(queue = QUEUE)]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
