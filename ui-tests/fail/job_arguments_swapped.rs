use athyper::prelude::*;

#[athyper::job]
async fn send_email(to: String, ctx: JobContext) -> Result<(), String> {
    let _ = (to, ctx);
    Ok(())
}

fn main() {}
