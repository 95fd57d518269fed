use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(health = "ping")]
impl Billing {
    async fn ping(&self) -> bool {
        true
    }
}

fn main() {}
