use athyper::prelude::*;

#[athyper::job(queue = "emails")]
#[athyper::job(attempts = 5)]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
