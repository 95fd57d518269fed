use athyper::prelude::*;

struct Mailer;

impl Mailer {
    #[athyper::job]
    async fn send_email(&self, _ctx: JobContext, _to: String) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
