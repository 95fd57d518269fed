use athyper::prelude::*;

#[athyper::job(every = "1h", payload = "seven")]
async fn rollup(_ctx: JobContext, _days: u32) -> Result<(), String> {
    Ok(())
}

fn main() {}
