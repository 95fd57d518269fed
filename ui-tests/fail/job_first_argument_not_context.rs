#[athyper::job]
async fn send_email(_ctx: String, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
