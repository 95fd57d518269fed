use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(
    nmae = "billing",
    circuit_breaker(failure_threshold = 0, failure_rate = 2.0),
    retry = "expo",
    timeout = "soon",
    required,
    optional,
    health = "ping"
)]
impl Billing {
    fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
