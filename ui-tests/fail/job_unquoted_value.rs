use athyper::prelude::*;

#[athyper::job(priority = high)]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
