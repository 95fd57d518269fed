use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter]
impl Billing {
    #[adapter(skp)]
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
