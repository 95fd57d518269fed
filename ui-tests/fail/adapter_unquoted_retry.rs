use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(retry = db)]
impl Billing {
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
