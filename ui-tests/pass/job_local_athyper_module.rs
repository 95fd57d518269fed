//! A local `mod athyper` does not capture the expansion's
//! `::athyper::__private` paths.
#![deny(warnings)]

mod athyper {}

#[::athyper::job]
async fn send_email(_ctx: ::athyper::prelude::JobContext, _to: String) -> Result<(), String> {
    Ok(())
}

fn main() {
    use ::athyper::prelude::Job;
    assert_eq!(send_email.descriptor().name, "send_email");
}
