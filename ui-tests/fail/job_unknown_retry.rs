use athyper::prelude::*;

#[athyper::job(retry = "expo")]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
