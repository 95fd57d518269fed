use athyper::prelude::*;

#[athyper::job]
const fn send_email(ctx: JobContext, attempt: u32) -> Result<(), u32> {
    // Forgotten rather than dropped: a `const fn` cannot run destructors,
    // and that error is rustc's, not the one this case is about.
    std::mem::forget(ctx);
    Err(attempt)
}

fn main() {}
