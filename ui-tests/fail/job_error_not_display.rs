use athyper::prelude::*;

#[derive(Debug)]
struct MailError;

#[athyper::job]
async fn send_email(_ctx: JobContext, _to: String) -> std::result::Result<(), MailError> {
    Err(MailError)
}

fn main() {}
