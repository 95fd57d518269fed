use athyper::prelude::*;

#[athyper::job(cron = "0 * * * *", queue = "reports", cron = "30 * * * *")]
async fn rollup(_ctx: JobContext, _payload: ()) -> Result<(), String> {
    Ok(())
}

fn main() {}
