use athyper::prelude::*;

#[adapter(circuit_breaker)]
struct Billing {
    resilience: AdapterState,
}

fn main() {}
