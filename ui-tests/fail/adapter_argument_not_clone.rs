use athyper::prelude::*;

struct Card {
    number: String,
}

struct Billing {
    resilience: AdapterState,
}

#[adapter(retry = "db")]
impl Billing {
    async fn charge(&self, card: Card) -> Result<(), String> {
        let _ = card.number;
        Ok(())
    }
}

fn main() {}
