use athyper::prelude::*;

#[athyper::job(cron = "*/5 * * * *", every = "5m")]
async fn rollup(_ctx: JobContext, _payload: ()) -> Result<(), String> {
    Ok(())
}

fn main() {}
