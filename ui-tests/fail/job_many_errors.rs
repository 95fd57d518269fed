use athyper::prelude::*;

#[athyper::job(
    queue = "emails",
    prority = "high",
    attempts = 0,
    retry = "expo",
    attempts = 2,
    timeout = "soon"
)]
fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
