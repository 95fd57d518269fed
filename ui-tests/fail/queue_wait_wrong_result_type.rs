use std::time::Duration;

use athyper::queue::{JobContext, Queue};

#[athyper::job(queue = "math")]
async fn double(_ctx: JobContext, n: u64) -> Result<u64, String> {
    Ok(n * 2)
}

async fn produce(queue: Queue) -> Result<(), Box<dyn std::error::Error>> {
    let id = queue.add(&double, 21).await?.into_id();
    // `double` returns a number: its result does not read as text.
    let text: String = queue.wait(&double, &id, Duration::from_secs(5)).await?;
    println!("{text}");
    Ok(())
}

fn main() {
    let _ = produce;
}
