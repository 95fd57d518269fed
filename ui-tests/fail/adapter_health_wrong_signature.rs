use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(health = "ping")]
impl Billing {
    async fn ping(&self, deep: bool) -> Result<(), String> {
        let _ = deep;
        Ok(())
    }
}

fn main() {}
