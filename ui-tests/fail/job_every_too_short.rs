use athyper::prelude::*;

#[athyper::job(every = "500ms")]
async fn poll(_ctx: JobContext, _payload: ()) -> Result<(), String> {
    Ok(())
}

fn main() {}
