use athyper::prelude::*;

#[athyper::job(rate = "0/s")]
async fn call_partner(_ctx: JobContext, _order: u64) -> Result<(), String> {
    Ok(())
}

fn main() {}
