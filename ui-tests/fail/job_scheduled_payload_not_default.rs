use athyper::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Report {
    days: u32,
}

#[athyper::job(every = "1h")]
async fn rollup(_ctx: JobContext, _report: Report) -> Result<(), String> {
    Ok(())
}

fn main() {}
