use athyper::prelude::*;

#[athyper::job]
struct SendEmail {
    _ctx: JobContext,
}

fn main() {}
