use athyper::prelude::*;

#[athyper::job]
async fn send_email(_ctx: JobContext, _to: String) -> () {}

fn main() {}
