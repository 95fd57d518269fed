use athyper::prelude::*;

#[derive(serde::Serialize)]
struct Email {
    to: String,
}

#[athyper::job]
async fn send_email(_ctx: JobContext, email: Email) -> Result<(), String> {
    let _ = email.to;
    Ok(())
}

fn main() {}
