use athyper::prelude::*;

#[athyper::job]
async unsafe fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
