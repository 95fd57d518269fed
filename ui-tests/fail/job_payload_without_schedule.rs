use athyper::prelude::*;

#[athyper::job(queue = "reports", payload = 7)]
async fn rollup(_ctx: JobContext, _days: u32) -> Result<(), String> {
    Ok(())
}

fn main() {}
