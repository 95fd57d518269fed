use athyper::prelude::*;

#[athyper::job(cron = "61 * * * *")]
async fn rollup(_ctx: JobContext, _payload: ()) -> Result<(), String> {
    Ok(())
}

fn main() {}
