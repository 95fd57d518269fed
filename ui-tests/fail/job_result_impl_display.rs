use athyper::prelude::*;

#[athyper::job]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), impl std::fmt::Display> {
    Ok::<(), String>(())
}

fn main() {}
