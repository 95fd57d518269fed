use athyper::prelude::*;

#[athyper::job]
async fn envoyer_à(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
