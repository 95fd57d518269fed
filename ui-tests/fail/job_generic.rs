use athyper::prelude::*;

#[athyper::job]
async fn send_email<T: serde::de::DeserializeOwned>(
    _ctx: JobContext,
    _to: T,
) -> Result<(), String> {
    Ok(())
}

fn main() {}
