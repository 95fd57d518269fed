use athyper::prelude::*;

#[athyper::job(every = "1h", tz = "Europe/Berlin")]
async fn rollup(_ctx: JobContext, _payload: ()) -> Result<(), String> {
    Ok(())
}

fn main() {}
