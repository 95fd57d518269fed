use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(health = "pnig")]
impl Billing {
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
