use athyper::prelude::*;

#[athyper::job(queue = "my emails")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
