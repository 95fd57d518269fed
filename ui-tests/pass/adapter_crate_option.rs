//! `crate = "..."` lets a crate that re-exports athyper use the macro.
#![deny(warnings)]

mod sdk {
    pub use ::athyper;
}

#[derive(Default)]
struct Mailer {
    resilience: sdk::athyper::resilience::AdapterState,
}

#[sdk::athyper::adapter(crate = "sdk::athyper", retry = "api")]
impl Mailer {
    async fn send(&self, to: String) -> Result<usize, String> {
        Ok(to.len())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(Mailer::default().send("ada".into()).await, Ok(3));
}
