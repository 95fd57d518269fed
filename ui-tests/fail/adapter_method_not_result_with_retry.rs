use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(retry = "db")]
impl Billing {
    pub async fn charge(&self, cents: u64) -> Option<u64> {
        Some(cents)
    }
}

fn main() {}
