//! The return type only has to be `Result<(), E>` with `E: Display`, however
//! it is spelled.
#![deny(warnings)]

use athyper::prelude::*;

type R = Result<(), std::io::Error>;

#[athyper::job]
async fn through_alias(_ctx: JobContext, _n: u32) -> R {
    Ok(())
}

#[athyper::job]
async fn boxed(_ctx: JobContext, n: u32) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if n == 0 { Err("zero".into()) } else { Ok(()) }
}

#[athyper::job]
async fn full_path(
    _ctx: athyper::queue::JobContext,
    _n: u32,
) -> ::core::result::Result<(), String> {
    Ok(())
}

#[athyper::job]
async fn anyhow_like(_ctx: JobContext, _n: u32) -> Result<(), std::fmt::Error> {
    Ok(())
}

fn main() {
    let _ = (through_alias, boxed, full_path, anyhow_like);
}
