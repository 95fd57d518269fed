use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(retry = "db", timeout = "1s", retry = "api")]
impl Billing {
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
