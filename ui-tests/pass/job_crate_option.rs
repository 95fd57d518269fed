//! `crate = "..."` lets a crate that re-exports athyper expand the macro
//! without its users depending on athyper by name.
#![deny(warnings)]

mod sdk {
    pub use ::athyper;
}

#[::athyper::job(crate = "sdk::athyper", queue = "emails")]
async fn send_email(_ctx: sdk::athyper::queue::JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {
    use sdk::athyper::registry::Job;
    assert_eq!(send_email.descriptor().queue, "emails");
}
