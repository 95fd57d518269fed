struct Mailer;

impl Mailer {
    #[athyper::job]
    async fn send_email(_ctx: athyper::queue::JobContext, _to: String) -> Result<(), String> {
        Ok(())
    }
}

fn main() {
    let _ = Mailer;
}
