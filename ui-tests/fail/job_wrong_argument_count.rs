use athyper::prelude::*;

#[athyper::job]
async fn send_email(_ctx: JobContext) -> Result<(), String> {
    Ok(())
}

fn main() {}
