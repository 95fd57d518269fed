//! Attributes on the function: docs go to the handle, `#[cfg]` to every
//! generated item, the rest to the body.
#![deny(warnings)]

use athyper::prelude::*;

/// Documented.
#[athyper::job]
#[allow(unused_variables)]
#[cfg(all())]
async fn kept(ctx: JobContext, unused: u32) -> Result<(), String> {
    Ok(())
}

#[athyper::job]
#[cfg(any())]
async fn removed(_ctx: JobContext, _n: u32) -> Result<(), String> {
    Ok(())
}

#[athyper::job]
async fn r#type(_ctx: JobContext, _n: u32) -> Result<(), String> {
    Ok(())
}

fn main() {
    assert_eq!(kept.descriptor().name, "kept");
    assert_eq!(r#type.descriptor().name, "type");
    let registry = athyper::registry::Registry::collect().unwrap();
    assert!(registry.get("kept").is_some());
    assert!(registry.get("removed").is_none());
}
